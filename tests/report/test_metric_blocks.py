"""The metrics a table shows: ``--metrics``, the dataset's default, weighted F1 of old records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selfcross.analysis.results import load_results
from selfcross.report.table1 import METRIC_TITLES
from tests.helpers.reportkit import (
    GRID,
    KEYS,
    TV_CROSS,
    TV_SELF,
    expect_error,
    md_tables,
    read_csv,
    run_main,
    write_result,
)

CONFUSION = [[3, 1, 0], [0, 1, 1], [1, 0, 2]]
"""A hand-made 3-class test confusion (rows true, columns predicted)."""
CONFUSION_WF1 = (4 * 0.75 + 2 * 0.5 + 3 * (2 / 3)) / 9
"""Its weighted F1 by hand: per class F1 = 2 TP / (support + predicted) = 6/8, 2/4, 4/6, with
supports 4, 2, 3."""


def write_scored_cell(root, model, modality, values, data=None):
    """A cell whose WF1 and macro-F1 differ from WA (WF1 = WA - .1, MF1 = WA - .2)."""
    for (fold, seed), wa in zip(KEYS, values, strict=True):
        fields = {"data": data} if data else {}
        write_result(
            root, model, modality, fold, seed, wa, test_wf1=wa - 0.1, test_f1=wa - 0.2, **fields
        )


def test_metrics_option_shows_one_block_per_metric_in_the_order_given(tmp_path):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_scored_cell(root, "self", "TV", TV_SELF)
    write_scored_cell(root, "cross", "TV", TV_CROSS)
    run_main("table1", "--results", str(root), "--out", str(out), *GRID,
             "--metrics", "wf1,mf1,wa")  # fmt: skip
    rows = read_csv(out / "table1.csv")
    assert {metric for _, metric, _ in rows} == {"wf1", "mf1", "wa"}
    for metric, shift in (("wf1", 0.1), ("mf1", 0.2), ("wa", 0.0)):
        mean = float(rows[("TV", metric, "self")]["mean"])
        assert mean == pytest.approx(np.mean(TV_SELF) - shift)
        assert rows[("TV", metric, "self")]["n"] == "6"
    # the paper reports WA and UWA only: no reference values in the other blocks
    assert rows[("TV", "wf1", "self")]["paper_mean"] == ""
    assert rows[("TV", "wa", "self")]["paper_mean"] != ""
    titles = list(md_tables((out / "table1.md").read_text()))
    assert titles == [METRIC_TITLES["wf1"], METRIC_TITLES["mf1"], METRIC_TITLES["wa"]]


def test_the_dataset_names_the_default_metrics(tmp_path):
    """IEMOCAP (and its synthetic stand-in) show the paper's WA and UWA; MELD weighted F1 and
    accuracy (conf/data/meld.yaml: metrics)."""
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_scored_cell(root / "synthetic", "self", "TV", TV_SELF)
    run_main("table1", "--results", str(root / "synthetic"), "--out", str(out), *GRID)
    assert {metric for _, metric, _ in read_csv(out / "table1.csv")} == {"wa", "uwa"}
    meld = {"name": "meld", "preset": None, "root": "/data/meld"}
    write_scored_cell(root / "meld", "self", "TV", TV_SELF, meld)
    run_main("table1", "--results", str(root / "meld"), "--out", str(out), *GRID)
    rows = read_csv(out / "table1.csv")
    assert {metric for _, metric, _ in rows} == {"wf1", "uwa"}
    assert float(rows[("TV", "wf1", "self")]["mean"]) == pytest.approx(np.mean(TV_SELF) - 0.1)


def test_an_unknown_metric_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_main("table1", "--results", str(tmp_path), "--metrics", "wa,ua")
    assert exit_info.value.code == 2
    assert "'wa,ua': expected metric names among wa,uwa,wf1,mf1" in capsys.readouterr().err


def _as_version_1(path, **changes):
    raw = json.loads(path.read_text())
    for key in ("schema_version", "test_wf1", "val_wf1"):
        del raw[key]
    raw.update(changes)
    path.write_text(json.dumps(raw))


def test_a_version_1_record_gets_test_wf1_from_its_confusion_matrix(tmp_path):
    """The hand-computed value (:data:`CONFUSION_WF1`), which is scikit-learn's too."""
    from sklearn.metrics import f1_score

    path = write_result(tmp_path, "self", "TV", 1, 1, 0.5)
    _as_version_1(path, confusion=CONFUSION, class_names=["a", "b", "c"])
    (run,), skipped = load_results(tmp_path)
    assert skipped == []
    y_true = [t for t, row in enumerate(CONFUSION) for p, n in enumerate(row) for _ in range(n)]
    y_pred = [p for row in CONFUSION for p, n in enumerate(row) for _ in range(n)]
    assert run.wf1 == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert run.wf1 == pytest.approx(CONFUSION_WF1)
    assert run.val_wf1 is None  # absent: an old record cannot tell it
    assert run.metric("wf1") == run.wf1


def test_a_current_record_keeps_its_own_weighted_f1(tmp_path):
    write_result(tmp_path, "self", "TV", 1, 1, 0.5, test_wf1=0.42, val_wf1=0.4)
    (run,), _ = load_results(tmp_path)
    assert (run.wf1, run.val_wf1) == (0.42, 0.4)


def test_weighted_f1_of_a_record_that_cannot_have_it_is_a_one_line_error(tmp_path, capsys):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_scored_cell(root, "self", "TV", TV_SELF)
    old = write_result(root, "cross", "TV", 1, 1, 0.5)
    _as_version_1(old, confusion=None, class_names=None)
    line = expect_error(capsys, "table1", "--results", str(root), "--out", str(out), *GRID,
                        "--metrics", "wa,wf1")  # fmt: skip
    assert line == (
        f"error: {old}: holds no test_wf1 (nor a confusion matrix to derive it from): "
        "leave wf1 out of --metrics"
    )
    # without weighted F1 the same runs make a table
    run_main("table1", "--results", str(root), "--out", str(out), *GRID, "--metrics", "wa")


def test_table2_takes_metrics_too(tmp_path):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_scored_cell(root, "self", "TVA", TV_SELF)
    write_scored_cell(root, "cross", "TVA", TV_CROSS)
    run_main("table2", "--results", str(root), "--out", str(out), *GRID, "--metrics", "uwa,wf1")
    rows = read_csv(out / "table2.csv")
    assert {metric for _, metric, _ in rows} == {"uwa", "wf1"}
    assert float(rows[("TVA", "wf1", "self")]["mean"]) == pytest.approx(np.mean(TV_SELF) - 0.1)
    assert rows[("TVA", "wf1", "self")]["paper_mean"] == ""
    assert rows[("TVA", "uwa", "self")]["paper_mean"] != ""
    (section, *_), = [v for k, v in md_tables((out / "table2.md").read_text()).items()
                      if k == "Tri-modal (T+V+A) models: UWA and WF1"]  # fmt: skip
    assert list(section) == ["Model", "UWA (paper)", "UWA (ours)", "WF1 (paper)", "WF1 (ours)"]
