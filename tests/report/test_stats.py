"""A cell's summary and the t-tests between two cells, on hand-made runs."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest

from selfcross.analysis.results import RunResult
from selfcross.report.stats import compare, summarize


def runs(wa_by_key: dict[tuple[int, int], float]) -> dict[tuple[int, int], RunResult]:
    return {
        (fold, seed): RunResult(
            Path("r"), "self", "TV", fold, seed, wa, wa, ("synthetic", "tiny", "d"), "f"
        )
        for (fold, seed), wa in wa_by_key.items()
    }


def test_summary_of_two_values_has_a_sample_std_and_one_value_has_none():
    two = summarize([0.5, 0.7])
    assert two.n == 2 and two.mean == pytest.approx(0.6)
    assert two.std == pytest.approx(0.1414213562)  # sqrt(((0.1)^2 + (0.1)^2) / (2 - 1))
    one = summarize([0.5])
    assert (one.mean, one.std, one.n) == (0.5, None, 1)
    assert summarize([]) == summarize(()) and summarize([]).mean is None


def test_two_runs_a_side_are_enough_for_both_tests():
    # Two matched pairs, differences 0.1 and 0.3: paired t = 0.2 / (0.1414 / sqrt 2) = 2.0;
    # with 1 degree of freedom t is Cauchy: p = 1 - 2 atan(2) / pi = 0.2952.
    a = runs({(1, 1): 0.6, (1, 2): 0.8})
    b = runs({(1, 1): 0.5, (1, 2): 0.5})
    result = compare(a, b, "wa")
    assert result.n_pairs == 2
    assert result.p_rel == pytest.approx(1 - 2 * math.atan(2) / math.pi)
    # Student's t, equal variances: t = 0.2 / sqrt(0.01 * (1/2 + 1/2)) = 2.0, 2 dof: p = 0.1835
    assert result.p_ind == pytest.approx(0.1835, abs=1e-3)
    assert not result.significant


def test_one_run_a_side_gives_no_test():
    result = compare(runs({(1, 1): 0.6}), runs({(1, 1): 0.5, (1, 2): 0.4}), "wa")
    assert (result.p_ind, result.p_rel, result.n_pairs) == (None, None, 1)
    result = compare(runs({(1, 1): 0.6, (1, 2): 0.4}), runs({(1, 1): 0.5}), "wa")
    assert result.p_ind is None


def test_constant_samples_give_no_p_value_and_no_warning():
    a = runs({(1, 1): 0.5, (1, 2): 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compare(a, a, "wa")
    assert (result.p_ind, result.p_rel) == (None, None)
    assert not result.significant
