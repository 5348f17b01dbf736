"""Check processed folds: every rule of the fold reader on every fold, and a summary of each.

The library half of ``python -m selfcross.check`` (and of the preparation's final check):
:func:`check_root` collects every problem instead of stopping at the first, and reports, per
fold, the utterances per class id beside the dataset's published counts, the utterances dropped
for having no video, and per split and modality the valid lengths and feature statistics.
Feature files are read block by block, so memory stays bounded at any fold size.

(About 430 lines: the statistics, the checks and the report they print read best together.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfcross.data.datasets import dataset, published_counts
from selfcross.data.npy import SPLITS, fold_dir, split_file
from selfcross.data.reader import (
    FoldReader,
    OpenedFold,
    OpenedSplit,
    ReaderOptions,
    missing_classes,
    missing_classes_problem,
)
from selfcross.errors import DataError


class Moments:
    """Count, mean, variance, min and max of a stream of values (Chan et al.'s pairwise update)."""

    def __init__(self):
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, values: np.ndarray) -> None:
        """Add every value of ``values`` (any shape)."""
        if values.size:
            x = values.ravel()
            mean = float(x.sum(dtype=np.float64)) / x.size
            deviation = x - np.asarray(mean, dtype=x.dtype)  # one temporary of x's size
            np.square(deviation, out=deviation)
            self._merge(x.size, mean, float(deviation.sum(dtype=np.float64)), x.min(), x.max())

    def add_rows(self, rows: np.ndarray, repeats: np.ndarray) -> None:
        """Add each row of ``rows`` [K, D] ``repeats`` [K] times (token counts x GloVe rows)."""
        used = repeats > 0
        rows, repeats = rows[used].astype(np.float64), repeats[used]
        if len(rows):
            count = int(repeats.sum()) * rows.shape[1]
            mean = float(repeats @ rows.sum(axis=1)) / count
            m2 = float(repeats @ ((rows - mean) ** 2).sum(axis=1))
            self._merge(count, mean, m2, rows.min(), rows.max())

    def _merge(self, count: int, mean: float, m2: float, low, high) -> None:
        total = self.count + count
        delta = mean - self.mean
        self.m2 += m2 + delta**2 * self.count * count / total
        self.mean += delta * count / total
        self.count = total
        self.min = min(self.min, float(low))
        self.max = max(self.max, float(high))

    @property
    def std(self) -> float:
        """Population standard deviation (numpy's default, ddof=0)."""
        return math.sqrt(self.m2 / self.count) if self.count else math.nan


@dataclass
class FeatureStats:
    """One modality of one split, over the utterances used (after dropping)."""

    utterances: int
    length_min: int
    length_mean: float
    length_max: int
    """Valid length: from ``*_seqN`` (A, V); non-padding tokens (T ids) or non-zero frames."""
    padding: float
    """Share of padded frames or tokens (token id 0) among all positions."""
    values: int
    """Feature values over valid frames (text as ids: the GloVe vectors of non-padding tokens)."""
    mean: float
    std: float
    min: float
    max: float
    vocab_size: int | None = None
    tokens_used: int | None = None
    """Distinct non-padding token ids that occur."""


@dataclass
class SplitReport:
    n: int | None
    """Utterances in the files."""
    dropped: int
    """Utterances dropped for having no video (data.drop_zero_video)."""
    class_counts: list[int] | None
    """Utterances per class id, before dropping."""
    used_class_counts: list[int] | None
    """Utterances per class id, after dropping."""
    features: dict[str, FeatureStats] = field(default_factory=dict)


@dataclass
class FoldReport:
    fold: int
    path: Path
    found: bool
    splits: dict[str, SplitReport] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """One ``<path>: <problem>`` line each; any makes the fold invalid."""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def totals(self) -> list[int] | None:
        """Utterances per class id over the three splits, before dropping."""
        counts = [s.class_counts for s in self.splits.values()]
        if len(counts) != len(SPLITS) or any(c is None for c in counts):
            return None
        return np.sum(counts, axis=0).tolist()


@dataclass
class CheckReport:
    root: Path
    modalities: tuple[str, ...]
    class_names: tuple[str, ...]
    drop_zero_video: bool
    folds: list[FoldReport]
    published: dict[str, int] = field(default_factory=dict)
    """Class name -> the dataset's published utterances over the whole corpus."""
    problems: list[str] = field(default_factory=list)
    """Problems outside any fold (an unusable root)."""

    @property
    def ok(self) -> bool:
        return not self.problems and all(f.ok for f in self.folds)

    def all_problems(self) -> list[str]:
        return [*self.problems, *(p for f in self.folds for p in f.problems)]

    def all_warnings(self) -> list[str]:
        return [w for f in self.folds for w in f.warnings]

    def format(self) -> str:
        return "\n".join(_format_report(self))


# -- statistics ------------------------------------------------------------------------------
def _length_stats(lengths: np.ndarray, padded: int, moments: Moments, **extra) -> FeatureStats:
    return FeatureStats(
        utterances=len(lengths),
        length_min=int(lengths.min()),
        length_mean=float(lengths.mean(dtype=np.float64)),
        length_max=int(lengths.max()),
        padding=1.0 - float(lengths.sum(dtype=np.int64)) / (len(lengths) * padded),
        values=moments.count,
        mean=moments.mean if moments.count else math.nan,
        std=moments.std,
        min=moments.min if moments.count else math.nan,
        max=moments.max if moments.count else math.nan,
        **extra,
    )


def _sequence_stats(reader: FoldReader, split: OpenedSplit, modality: str, rows) -> FeatureStats:
    """Values of the frames inside each utterance's valid length.

    Without lengths (text given as vectors, or a bad lengths file already reported), a frame is
    valid when any of its values is non-zero.
    """
    array, lengths = split.features[modality], split.lengths.get(modality)
    moments = Moments()
    seen = np.zeros(len(rows), dtype=np.int64)
    start = 0
    for idx, block in reader.scan(split.paths[modality], array, rows, split.name):
        if lengths is None:
            valid = block.any(axis=2)
        else:
            valid = np.arange(block.shape[1])[None, :] < lengths[idx][:, None]
        seen[start : start + len(idx)] = valid.sum(axis=1)
        start += len(idx)
        moments.add(block[valid])
    return _length_stats(seen, array.shape[1], moments)


def _token_stats(ids: np.ndarray, embedding: np.ndarray | None) -> FeatureStats:
    """Token ids [N, T]: lengths are non-padding tokens; values are their GloVe vectors."""
    moments = Moments()
    if embedding is None:  # W_embedding is unusable (reported): no vector to describe
        vocab, used = None, int(np.unique(ids[ids != 0]).size)
    else:
        vocab = len(embedding)
        counts = np.bincount(ids.ravel(), minlength=vocab)  # ids are checked to be < vocab
        counts[0] = 0  # padding
        moments.add_rows(embedding, counts)
        used = int((counts > 0).sum())
    return _length_stats(
        (ids != 0).sum(axis=1),
        ids.shape[1],
        moments,
        vocab_size=vocab,
        tokens_used=used,
    )


# -- one fold ---------------------------------------------------------------------------------
def _split_report(
    reader: FoldReader, opened: OpenedFold, split: OpenedSplit, num_classes: int
) -> SplitReport:
    report = SplitReport(
        n=split.n, dropped=split.n_dropped, class_counts=None, used_class_counts=None
    )
    rows = split.keep if split.keep is not None else np.arange(split.n or 0)
    if split.labels is not None:
        report.class_counts = np.bincount(split.labels, minlength=num_classes).tolist()
        report.used_class_counts = np.bincount(split.labels[rows], minlength=num_classes).tolist()
    if not len(rows):
        return report
    for modality in reader.opt.modalities:
        if modality not in split.features:
            continue
        if modality == "T" and opened.text_source == "ids":
            stats = _token_stats(split.features["T"][rows], opened.embedding)
        else:
            stats = reader.attempt(_sequence_stats, reader, split, modality, rows)
        if stats is not None:
            report.features[modality] = stats
    return report


def _facts(
    class_names: Sequence[str] | None, published: Mapping[str, int] | None
) -> tuple[tuple[str, ...], dict[str, int]]:
    """The class names and published counts given, or else IEMOCAP's (conf/data/iemocap.yaml)."""
    if class_names is None:
        class_names = dataset().class_names
    return tuple(class_names), dict(published_counts() if published is None else published)


def check_fold(
    directory: str | Path,
    options: ReaderOptions | None = None,
    class_names: Sequence[str] | None = None,
    fold: int = 0,
    published: Mapping[str, int] | None = None,
) -> FoldReport:
    """Every check of the reader on one fold directory, collecting all problems, plus its summary.

    ``class_names`` name the class ids; ``published`` gives, per class name, the dataset's
    published utterances over the whole corpus (default: IEMOCAP's, from conf/data/). Feature
    values are read block by block (the reader's chunked path), never whole.
    """
    class_names, published = _facts(class_names, published)
    options = options or ReaderOptions(num_classes=len(class_names))
    directory = Path(directory)
    problems: list[DataError] = []
    reader = FoldReader(directory, options, problems=problems)
    report = FoldReport(fold=fold, path=directory, found=directory.is_dir())
    if not report.found:
        report.problems.append(str(DataError(directory, "fold directory is missing")))
        return report
    opened = reader.open()
    for name, split in opened.splits.items():
        report.splits[name] = _split_report(reader, opened, split, options.num_classes)
    report.problems = [str(p) for p in problems]

    for path, count in reader.nonfinite_zeroed.items():
        report.warnings.append(
            f"{path}: replaced {count} NaN or infinite values with 0 (data.on_nonfinite=zero)"
        )
    train = opened.splits["train"]
    if train.labels is not None and train.keep is not None and len(train.keep):
        missing = missing_classes(train.labels[train.keep], options.num_classes)
        if missing:
            names = list(class_names) if len(class_names) == options.num_classes else None
            report.warnings.append(
                f"{split_file(directory, 'train', 'label')}: "
                + missing_classes_problem(missing, names)
            )
    mapping = _mapping_warning(report.totals(), class_names, published)
    if mapping:
        report.warnings.append(f"{directory}: {mapping}")
    return report


def _mapping_warning(
    totals: list[int] | None, class_names: Sequence[str], published: Mapping[str, int]
) -> str | None:
    """When the per-id totals are the published counts in another order, say which names fit."""
    if totals is None or not published or sorted(totals) != sorted(published.values()):
        return None
    by_count = {count: name for name, count in published.items()}
    fitting = [by_count[t] for t in totals]
    if fitting == list(class_names):
        return None
    return (
        "the utterances per class id are IEMOCAP's class sizes for data.class_names="
        f"[{', '.join(fitting)}], not the configured [{', '.join(class_names)}]"
    )


def check_root(
    root: str | Path,
    options: ReaderOptions | None = None,
    class_names: Sequence[str] | None = None,
    folds: Sequence[int] | None = None,
    published: Mapping[str, int] | None = None,
) -> CheckReport:
    """Check ``root``/fold01 ... fold05 and summarise them; ``report.ok`` says all are valid.

    ``options`` are the reader's (modalities, shapes, dropping, text source, non-finite
    handling); by default all modalities with the shapes the files have. ``folds``: by default
    all of IEMOCAP's (data.n_folds); ``class_names`` and ``published`` as for check_fold.
    """
    class_names, published = _facts(class_names, published)
    if folds is None:
        folds = range(1, dataset().n_folds + 1)
    options = options or ReaderOptions(num_classes=len(class_names))
    root = Path(root)
    report = CheckReport(
        root,
        tuple(options.modalities),
        class_names,
        options.drop_zero_video,
        [],
        published,
    )
    if not root.is_dir():
        report.problems.append(str(DataError(root, "no such directory")))
        return report
    for fold in folds:
        report.folds.append(
            check_fold(fold_dir(root, fold), options, class_names, fold, published)
        )
    return report


# -- printing ---------------------------------------------------------------------------------
def _num(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _format_fold(
    fold: FoldReport, class_names: Sequence[str], published: Mapping[str, int]
) -> list[str]:
    status = "valid" if fold.ok else f"{len(fold.problems)} problem(s)"
    if not fold.found:
        status = "missing"
    lines = [f"fold{fold.fold:02d}  {fold.path}: {status}"]
    if not fold.splits:
        return lines
    reports = [fold.splits[s] for s in SPLITS]
    totals = fold.totals()
    lines.append(
        f"  {'class':<20}" + "".join(f"{s:>8}" for s in SPLITS) + f"{'total':>8}{'paper':>8}"
    )
    for c, name in enumerate(class_names):
        cells = [r.class_counts[c] if r.class_counts else "-" for r in reports]
        paper = published.get(name, "-")
        total = totals[c] if totals else "-"
        lines.append(
            f"  {f'{c} {name}':<20}" + "".join(f"{x:>8}" for x in cells) + f"{total:>8}{paper:>8}"
        )
    n = [r.n if r.n is not None else "-" for r in reports]
    n_total = sum(n) if all(isinstance(x, int) for x in n) else "-"
    lines.append(
        f"  {'all':<20}"
        + "".join(f"{x:>8}" for x in n)
        + f"{n_total:>8}{sum(published.values()) if published else '-':>8}"
    )
    dropped = [r.dropped for r in reports]
    lines.append(
        f"  {'dropped (no video)':<20}"
        + "".join(f"{x:>8}" for x in dropped)
        + f"{sum(dropped):>8}"
    )
    used = [r.n - r.dropped if r.n is not None else "-" for r in reports]
    used_total = sum(used) if all(isinstance(x, int) for x in used) else "-"
    lines.append(f"  {'used':<20}" + "".join(f"{x:>8}" for x in used) + f"{used_total:>8}")

    lines.append(
        f"  {'':<4}{'split':<7}{'used':>6}{'length min':>12}{'mean':>8}{'max':>6}{'padding':>9}"
        f"{'value mean':>12}{'std':>10}{'min':>10}{'max':>10}  vocabulary"
    )
    for modality in ("T", "V", "A"):
        for split, r in zip(SPLITS, reports, strict=True):
            st = r.features.get(modality)
            if st is None:
                continue
            values = "".join(f"{_num(v):>10}" for v in (st.std, st.min, st.max))
            vocab = (
                f"{st.vocab_size} ({st.tokens_used} used)" if st.tokens_used is not None else ""
            )
            lines.append(
                f"  {modality:<4}{split:<7}{st.utterances:>6}{st.length_min:>12}"
                f"{st.length_mean:>8.1f}{st.length_max:>6}{st.padding:>9.1%}"
                f"{_num(st.mean):>12}{values}  {vocab}".rstrip()
            )
    return lines


def _format_report(report: CheckReport) -> list[str]:
    names = ", ".join(f"{i} {n}" for i, n in enumerate(report.class_names))
    lines = [
        f"selfcross check of {report.root}: modalities {''.join(report.modalities)}; "
        f"utterances with no video {'dropped' if report.drop_zero_video else 'kept'}; "
        f"class ids {names}",
        "",
    ]
    for fold in report.folds:
        lines += _format_fold(fold, report.class_names, report.published)
        lines += [f"warning: {w}" for w in fold.warnings]
        lines += [f"error: {p}" for p in fold.problems]
        lines.append("")
    lines += [f"error: {p}" for p in report.problems]
    valid = sum(f.ok for f in report.folds)
    n_warn = len(report.all_warnings())
    lines.append(
        f"{valid} of {len(report.folds)} folds valid; "
        f"{len(report.all_problems())} problem(s), {n_warn} warning(s)"
    )
    return lines
