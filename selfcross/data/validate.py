"""Check processed folds: every rule of the fold reader on every fold, and a summary of each.

The library half of ``python -m selfcross.check`` (and of the preparation's final check):
:func:`check_root` collects every problem instead of stopping at the first, and reports, per
fold, the utterances per class id beside the dataset's published counts, the utterances dropped
for having no video, and per split and modality the valid lengths and feature statistics
(:mod:`selfcross.data.feature_stats`); the report and its printing are
:mod:`selfcross.data.check_report`. Feature files are read block by block, so memory stays
bounded at any fold size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from selfcross.data.check_report import CheckReport, FoldReport, SplitReport
from selfcross.data.datasets import dataset, published_counts
from selfcross.data.feature_stats import sequence_stats, token_stats
from selfcross.data.fold import (
    OpenedFold,
    OpenedSplit,
    ReaderOptions,
    missing_classes,
    missing_classes_problem,
)
from selfcross.data.npy import fold_dir, split_file
from selfcross.data.reader import FoldReader
from selfcross.errors import DataError


def _split_report(
    reader: FoldReader, opened: OpenedFold, split: OpenedSplit, num_classes: int
) -> SplitReport:
    n = None if split.n is None else split.n - split.n_outside_set  # the class set's rows
    report = SplitReport(n=n, dropped=split.n_dropped, class_counts=None, used_class_counts=None)
    rows = split.keep if split.keep is not None else np.arange(split.n or 0)
    if split.labels is not None:  # a class set's outside classes (-1) are not counted
        inside = split.labels[split.labels >= 0]
        report.class_counts = np.bincount(inside, minlength=num_classes).tolist()
        report.used_class_counts = np.bincount(split.labels[rows], minlength=num_classes).tolist()
    if not len(rows):
        return report
    for modality in reader.opt.modalities:
        if modality not in split.features:
            continue
        if modality == "T" and opened.text_source == "ids":
            stats = token_stats(split.features["T"][rows], opened.embedding)
        else:
            stats = reader.attempt(sequence_stats, reader, split, modality, rows)
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
