"""Table 3 from hand-made result.json files: cells, parameter counts and p-values recomputed."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import stats

from tests.helpers.reportkit import GRID, KEYS, md_tables, mean_std, run_main, uwa_of, write_result

WA_TITLE = "WA (weighted accuracy: mean per-class recall)"
UWA_TITLE = "UWA (unweighted accuracy: share classified correctly)"
WA = {  # (model, modality) -> WA of the six runs in KEYS order
    ("self", "TV"): [0.60, 0.62, 0.64, 0.66, 0.68, 0.70],
    ("cross", "TV"): [0.51, 0.50, 0.55, 0.53, 0.58, 0.57],
    ("self_transformer", "TV"): [0.63, 0.61, 0.66, 0.70, 0.69, 0.72],
    ("cross_transformer", "TV"): [0.40, 0.44, 0.41, 0.47, 0.45, 0.43],
    ("self", "TA"): [0.50, 0.53, 0.49, 0.52, 0.51, 0.48],
    ("self_transformer", "TA"): [0.52, 0.50, 0.55, 0.49, 0.56],  # no fold 2 seed 3
}
PARAMS = {"self": 1000, "cross": 1200, "self_transformer": 3000, "cross_transformer": 3600}


@pytest.fixture
def table3_results(tmp_path):
    root = tmp_path / "runs"
    for (model, modality), wa in WA.items():
        for (fold, seed), value in zip(KEYS, wa, strict=False):
            write_result(
                root, model, modality, fold, seed, value, uwa=value + 0.05 + 0.01 * seed,
                n_params=PARAMS[model] + len(modality),
            )  # fmt: skip
    # A run with another count: both counts are shown, never one silently.
    write_result(root, "cross", "VA", 1, 1, 0.5, n_params=7)
    write_result(root, "cross", "VA", 1, 2, 0.5, n_params=8)
    return root


def build(root, out):
    run_main("table3", "--results", str(root), "--out", str(out), *GRID)
    return md_tables((out / "table3.md").read_text())


def test_cells_are_mean_std_n_of_the_files(table3_results, tmp_path):
    tables = build(table3_results, tmp_path / "t")
    wa = {r["Modality"]: r for r in tables[WA_TITLE]}
    uwa = {r["Modality"]: r for r in tables[UWA_TITLE]}
    assert wa["T+V"]["Self"].startswith(mean_std(WA[("self", "TV")]) + " (6)")
    assert wa["T+V"]["Cross-Transformer"] == mean_std(WA[("cross_transformer", "TV")]) + " (6)"
    assert uwa["T+V"]["Self-Transformer"] == (  # bold: the row's best
        f"**{mean_std(uwa_of(WA[('self_transformer', 'TV')]))}** (6)"
    )
    assert wa["T+A"]["Self-Transformer"].endswith("(5)†")  # short of the 6-run grid
    assert wa["T+A"]["Cross"] == "-" and wa["T+V+A"]["Self"] == "-"
    assert set(wa) == {"T+V", "T+A", "V+A", "T+V+A"}


def test_parameter_counts_come_from_the_records(table3_results, tmp_path):
    tables = build(table3_results, tmp_path / "t")
    params = {r["Modality"]: r for r in tables["Trainable parameters (n_params of result.json)"]}
    assert params["T+V"]["Self"] == "1,002"
    assert params["T+V"]["Cross-Transformer"] == "3,602"
    assert params["V+A"]["Cross"] == "7 / 8"
    assert params["T+V+A"]["Self"] == "-"


def test_p_values_recomputed_with_scipy(table3_results, tmp_path):
    out = tmp_path / "t"
    tables = build(table3_results, out)
    tests = {
        (r["Comparison"], r["Modality"], r["Metric"]): r
        for r in tables[
            "t-tests: transformer vs bare attention, and Self vs Cross within the transformers"
        ]
    }
    st, s = WA[("self_transformer", "TV")], WA[("self", "TV")]
    ct = WA[("cross_transformer", "TV")]
    row = tests[("Self-Transformer vs Self", "T+V", "WA")]
    assert row["p t-test"].rstrip("*") == f"{stats.ttest_ind(st, s).pvalue:.4f}".lstrip("0")
    assert row["p paired"] == f"{stats.ttest_rel(st, s).pvalue:.4f}".lstrip("0")
    row = tests[("Self-Transformer vs Cross-Transformer", "T+V", "UWA")]
    p = stats.ttest_ind(uwa_of(st), uwa_of(ct)).pvalue
    assert p < 1e-4 and row["p t-test"] == "<.0001*" and row["pairs"] == "6"
    # T+A: the five matched pairs only.
    row = tests[("Self-Transformer vs Self", "T+A", "WA")]
    paired = stats.ttest_rel(WA[("self_transformer", "TA")], WA[("self", "TA")][:5]).pvalue
    assert row["p paired"] == f"{paired:.4f}".lstrip("0") and row["pairs"] == "5"
    assert tests[("Cross-Transformer vs Cross", "T+A", "WA")]["p t-test"] == "-"
    with (out / "table3.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    test_csv = {
        (r["model"], r["compared_with"], r["modality"], r["metric"]): r
        for r in rows
        if r["table"] == "table3-test"
    }
    got = float(test_csv[("cross_transformer", "cross", "TV", "wa")]["p_ttest_ind"])
    assert got == pytest.approx(stats.ttest_ind(ct, WA[("cross", "TV")]).pvalue)
    cells = {(r["model"], r["modality"], r["metric"]): r for r in rows if r["table"] == "table3"}
    assert float(cells[("self", "TV", "wa")]["mean"]) == pytest.approx(np.mean(s))
    assert cells[("self_transformer", "TA", "wa")]["missing_runs"] == "f2s3"
    for ext in ("md", "tex", "csv"):
        assert (out / f"table3.{ext}").is_file()


def test_star_marks_a_significant_transformer_vs_bare_difference(table3_results, tmp_path):
    tables = build(table3_results, tmp_path / "t")
    wa = {r["Modality"]: r for r in tables[WA_TITLE]}
    # Cross-Transformer is far below Cross on T+V: the higher one, Cross, carries the star.
    assert stats.ttest_ind(WA[("cross_transformer", "TV")], WA[("cross", "TV")]).pvalue < 0.05
    assert "\\*" in wa["T+V"]["Cross"] and "\\*" not in wa["T+V"]["Cross-Transformer"]
    assert wa["T+V"]["Self-Transformer"].startswith("**")  # the best mean of the row


def test_a_transformer_significantly_above_its_bare_model_carries_the_star(tmp_path):
    """The first of a tested pair is the transformer: when it is the higher one, the star is
    its (the T+V case above has the bare model higher), and the CSV keeps each parameter
    count as the Markdown shows it."""
    root = tmp_path / "runs"
    wa = {"self": [0.50, 0.52, 0.51, 0.49, 0.50, 0.52],
          "self_transformer": [0.58, 0.60, 0.59, 0.61, 0.60, 0.58]}  # fmt: skip
    for model, values in wa.items():
        for (fold, seed), value in zip(KEYS, values, strict=True):
            write_result(root, model, "VA", fold, seed, value, n_params=PARAMS[model])
    out = tmp_path / "t"
    row = {r["Modality"]: r for r in build(root, out)[WA_TITLE]}["V+A"]
    assert stats.ttest_ind(wa["self_transformer"], wa["self"]).pvalue < 0.05
    assert "\\*" in row["Self-Transformer"] and "\\*" not in row["Self"]
    with (out / "table3.csv").open() as handle:
        params = {(r["model"], r["modality"]): r for r in csv.DictReader(handle)
                  if r["table"] == "table3-params" and r["metric"] == "n_params"}  # fmt: skip
    assert params[("self_transformer", "VA")]["mean"] == "3,000"
    assert params[("self", "VA")]["mean"] == "1,000"
    assert params[("cross", "VA")]["mean"] == "-"


def test_metrics_option_chooses_the_blocks(table3_results, tmp_path):
    """``--metrics wf1`` shows one block, weighted F1 (the records' test_wf1, here their WA),
    and tests on it alone."""
    out = tmp_path / "m"
    run_main("table3", "--results", str(table3_results), "--out", str(out), *GRID,
             "--metrics", "wf1")  # fmt: skip
    tables = md_tables((out / "table3.md").read_text())
    title = "WF1 (weighted F1: per-class F1 weighted by class support)"
    assert WA_TITLE not in tables and UWA_TITLE not in tables
    row = {r["Modality"]: r for r in tables[title]}["T+V"]
    assert row["Cross-Transformer"] == mean_std(WA[("cross_transformer", "TV")]) + " (6)"
    tests = [r for section, rows in tables.items() if section.startswith("t-tests") for r in rows]
    assert tests and {r["Metric"] for r in tests} == {"WF1"}
