"""What ``selfcross.check`` found, per split, per fold and over a root, and how it is printed."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfcross.data.feature_stats import FeatureStats
from selfcross.data.npy import SPLITS


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
