"""The numbers of a table cell and the tests between two cells (the paper's and the paired one).

A cell's runs are keyed by (fold, seed), so two cells' runs can be matched for the paired test.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from selfcross.analysis.results import RunResult

ALPHA = 0.05
"""Significance level of the ``*`` marks (the paper's)."""

Runs = Mapping[tuple[int, int], RunResult]
"""One cell's runs by (fold, seed)."""


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (ddof=1) and count of one cell's values; None where undefined."""

    mean: float | None
    std: float | None
    n: int


def summarize(values: Sequence[float]) -> Summary:
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    mean = float(values.mean()) if n else None
    std = float(values.std(ddof=1)) if n >= 2 else None
    return Summary(mean, std, n)


def metric_values(runs: Runs, metric: str) -> np.ndarray:
    """The runs' ``metric`` in (fold, seed) order."""
    return np.array([runs[k].metric(metric) for k in sorted(runs)])


@dataclass(frozen=True)
class Comparison:
    """Two cells compared on one metric: the paper's test and the paired one."""

    p_ind: float | None
    """Student's two-sample t-test (equal variances, two-tailed) over all runs: the paper's."""
    p_rel: float | None
    """Paired t-test over the runs matched by (fold, seed)."""
    n_pairs: int

    @property
    def significant(self) -> bool:
        return self.p_ind is not None and self.p_ind < ALPHA


def _finite(p: float) -> float | None:
    return float(p) if math.isfinite(p) else None


def compare(a: Runs, b: Runs, metric: str) -> Comparison:
    """t-tests of ``a`` vs ``b``; p is None where a side has fewer than 2 runs (or pairs)."""
    from scipy import stats  # slow to import: only when a table is built

    pairs = sorted(set(a) & set(b))
    with warnings.catch_warnings():  # constant samples give NaN with a warning: shown as "-"
        warnings.simplefilter("ignore", RuntimeWarning)
        p_ind = None
        if len(a) >= 2 and len(b) >= 2:
            p_ind = _finite(
                stats.ttest_ind(metric_values(a, metric), metric_values(b, metric)).pvalue
            )
        p_rel = None
        if len(pairs) >= 2:
            x = [a[k].metric(metric) for k in pairs]
            y = [b[k].metric(metric) for k in pairs]
            p_rel = _finite(stats.ttest_rel(x, y).pvalue)
    return Comparison(p_ind, p_rel, len(pairs))
