"""Weighted and macro F1 in the missing-modality evaluation: recorded per condition
(ablation.json version 2), shown with ``--metrics``, absent ("-") in older files that cannot
give them, derived from an older file's confusion matrix where it has one."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from selfcross.ablate import main
from selfcross.analysis.ablation import ablate_results, present_subsets
from selfcross.analysis.records import ABLATION_FILE, read_ablation
from selfcross.models.metrics import weighted_f1
from selfcross.training.record import read_record
from tests.helpers.modelkit import train_tiny_run
from tests.helpers.recordkit import write_run
from tests.helpers.reportkit import md_tables, rate

KEYS = [(f, s) for f in (1, 2) for s in (1, 2, 3)]
SUBSETS = present_subsets("TVA")
INDEX = {"wa": 0, "uwa": 1, "mf1": 2, "wf1": 3}


def write_ablated(root: Path, model: str, fold: int, seed: int, scores: dict, version: int = 2,
                  confusion=None) -> Path:  # fmt: skip
    """A hand-made run and its ablation.json, as a literal dict: scores[present] = (wa, uwa,
    mf1, wf1); version 1 has no test_wf1 key (the layout selfcross wrote before it)."""
    run_dir = root / model / "TVA" / f"fold{fold}" / f"seed{seed}"
    full = scores["TVA"]
    write_run(run_dir, model, "TVA", fold, seed, full[0], full[1])
    entries = []
    for present, (wa, uwa, mf1, wf1) in scores.items():
        entry = {"present": present, "absent": "", "test_wa": wa, "test_uwa": uwa,
                 "test_f1": mf1, "test_loss": 1.0, "confusion": confusion or []}  # fmt: skip
        if version >= 2:
            entry["test_wf1"] = wf1
        entries.append(entry)
    record = read_record(run_dir / "result.json")
    raw = {
        "schema_version": version, "model": model, "modality": "TVA", "fold": fold,
        "seed": seed, "modality_dropout": 0.0, "config_hash": record.config_hash,
        "finished": record.finished, "data_fingerprint": record.data.fingerprint,
        "checkpoint": {"file": "checkpoints/best.ckpt", "sha256": "x"},
        "fills": {"zeros": {"entries": entries, "scored": "2026-01-01T00:00:00+00:00"}},
    }  # fmt: skip
    (run_dir / ABLATION_FILE).write_text(json.dumps(raw, indent=2))
    return run_dir


def table(tmp_path: Path, *metrics: str) -> tuple[dict, dict, str]:
    out = tmp_path / "out"
    main(["--results", str(tmp_path / "runs"), "--out", str(out),
          *(["--metrics", ",".join(metrics)] if metrics else [])])  # fmt: skip
    with (out / "ablation.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    cells = {(r["model"], r["present"], r["metric"]): r for r in rows if r["table"] == "ablation"}
    tests = {(r["present"], r["metric"]): r for r in rows if r["table"] == "ablation-test"}
    return cells, tests, (out / "ablation.md").read_text()


def test_weighted_and_macro_f1_cells_and_tests_recomputed_from_the_files(tmp_path):
    rng = np.random.default_rng(7)
    truth = {}
    for model in ("self", "cross"):
        for fold, seed in KEYS:
            scores = {s: tuple(float(x) for x in rng.uniform(0.2, 0.7, size=4)) for s in SUBSETS}
            truth[(model, fold, seed)] = scores
            write_ablated(tmp_path / "runs", model, fold, seed, scores)
    cells, tests, md = table(tmp_path, "wf1", "mf1")
    assert {metric for _, _, metric in cells} == {"wf1", "mf1"}
    assert len(cells) == 2 * 7 * 2 and len(tests) == 6 * 2
    for (model, present, metric), row in cells.items():
        i = INDEX[metric]
        values = [truth[(model, *k)][present][i] for k in KEYS]
        drops = [truth[(model, *k)]["TVA"][i] - truth[(model, *k)][present][i] for k in KEYS]
        assert float(row["mean"]) == pytest.approx(np.mean(values))
        assert float(row["std"]) == pytest.approx(np.std(values, ddof=1))
        assert row["n"] == "6"
        if present != "TVA":
            assert float(row["drop_mean"]) == pytest.approx(np.mean(drops))
    for (present, metric), row in tests.items():
        i = INDEX[metric]
        drop = {m: [truth[(m, *k)]["TVA"][i] - truth[(m, *k)][present][i] for k in KEYS]
                for m in ("self", "cross")}  # fmt: skip
        expected = stats.ttest_ind(drop["self"], drop["cross"]).pvalue
        assert float(row["p_ttest_ind"]) == pytest.approx(expected)
    assert "### WF1, trained on" in md or "WF1, trained on" in md
    assert "WF1: weighted F1 (per-class F1 weighted by class support)" in md
    # the default for IEMOCAP-like runs stays the paper's two
    cells, _, _ = table(tmp_path)
    assert {metric for _, _, metric in cells} == {"wa", "uwa"}


def test_the_markdown_table_shows_every_cell_and_the_csv_its_fill_and_comparison(tmp_path):
    """Self loses .3 without text and video (present A), Cross nothing: that row's t-test is
    significant and starred; every cell of both metrics' tables is recomputed from the files."""
    rng = np.random.default_rng(5)
    truth = {}
    for model in ("self", "cross"):
        for fold, seed in KEYS:
            scores = {}
            for present in SUBSETS:
                values = rng.uniform(0.4, 0.6, size=4)
                values -= 0.3 if (model, present) == ("self", "A") else 0.0
                scores[present] = tuple(float(x) for x in values)
            truth[(model, fold, seed)] = scores
            write_ablated(tmp_path / "runs", model, fold, seed, scores)
    cells, tests, md = table(tmp_path)
    sections = md_tables(md)
    labels = {"TVA": "T+V+A (full)", "TV": "T+V", "TA": "T+A", "VA": "V+A"}
    for metric, name in (("wa", "WA"), ("uwa", "UWA")):
        i = INDEX[metric]
        rows = sections[f"{name}, trained on T+V+A, modality dropout p=0"]
        assert [r["Present"] for r in rows] == [labels.get(s, s) for s in SUBSETS]
        for row, present in zip(rows, SUBSETS, strict=True):
            drops = {}
            for model, label in (("self", "Self"), ("cross", "Cross")):
                values = [truth[(model, *k)][present][i] for k in KEYS]
                drops[model] = [truth[(model, *k)]["TVA"][i] - v
                                for k, v in zip(KEYS, values, strict=True)]  # fmt: skip
                mean, std = np.mean(values), np.std(values, ddof=1)
                assert row[label] == f"{rate(mean)} ± {rate(std)} (6)"
                drop = f"{rate(np.mean(drops[model]))} ± {rate(np.std(drops[model], ddof=1))}"
                assert row[f"{label} drop"] == ("-" if present == "TVA" else drop)
            csv_test = tests.get((present, metric))
            if present == "TVA":
                assert csv_test is None
                assert [row[c] for c in ("p t-test (drops)", "p paired", "pairs")] == ["-"] * 3
                continue
            p_ind = stats.ttest_ind(drops["self"], drops["cross"]).pvalue
            p_rel = stats.ttest_rel(drops["self"], drops["cross"]).pvalue
            star = "*" if p_ind < 0.05 else ""
            assert row["p t-test (drops)"] == f"{p_ind:.4f}".removeprefix("0") + star
            assert row["p paired"] == f"{p_rel:.4f}".removeprefix("0") and row["pairs"] == "6"
            assert (present == "A") == (p_ind < 0.05)  # the planted difference, and only it
            assert (csv_test["model"], csv_test["compared_with"]) == ("self", "cross")
            assert csv_test["significant"] == str(p_ind < 0.05) and csv_test["fill"] == "zeros"
    every = [*cells.values(), *tests.values()]
    assert {(r["fill"], r["trained"], r["modality_dropout"]) for r in every} == {
        ("zeros", "TVA", "0.0")
    }


def test_older_files_show_weighted_f1_as_absent_or_derive_it_from_their_confusion(tmp_path):
    """Version-1 files: no confusion matrix -> weighted F1 absent (never a number, no test);
    a confusion matrix -> weighted F1 derived from it, equal to scikit-learn's."""
    scores = {s: (0.5, 0.6, 0.4, None) for s in SUBSETS}
    for model in ("self", "cross"):
        for fold, seed in KEYS:
            write_ablated(tmp_path / "runs", model, fold, seed, scores, version=1)
    cells, tests, md = table(tmp_path, "wf1", "mf1")
    for (_, _, metric), row in cells.items():
        if metric == "wf1":
            assert row["mean"] == row["std"] == row["n"] == row["drop_mean"] == ""
        else:
            assert float(row["mean"]) == pytest.approx(0.4)
    assert not [k for k in tests if k[1] == "wf1"]
    wf1_block = md.split("WF1, trained on")[1].split("MF1, trained on")[0]
    rows = [line for line in wf1_block.splitlines() if line.startswith("| T") or
            line.startswith("| V") or line.startswith("| A")]  # fmt: skip
    assert len(rows) == 7
    assert all(set(cell.strip() for cell in row.split("|")[2:-1]) == {"-"} for row in rows)

    confusion = [[5, 1, 0], [2, 3, 1], [0, 0, 4]]
    y_true = [t for t, row in enumerate(confusion) for p, n in enumerate(row) for _ in range(n)]
    y_pred = [p for t, row in enumerate(confusion) for p, n in enumerate(row) for _ in range(n)]
    expected = f1_score(y_true, y_pred, average="weighted")
    run_dir = write_ablated(tmp_path / "one", "self", 1, 1, scores, version=1,
                            confusion=confusion)  # fmt: skip
    record = read_ablation(run_dir / ABLATION_FILE)
    assert record.scores("zeros")["TVA"]["wf1"] == pytest.approx(expected)
    assert record.scores("zeros")["TVA"]["mf1"] == 0.4
    raw = json.loads((run_dir / ABLATION_FILE).read_text())
    assert json.dumps(record.to_dict()) == json.dumps(raw)  # written back key for key


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("ablation_f1")
    run_dir = tmp / "sweep" / "cross" / "TV" / "fold1" / "seed1"
    return train_tiny_run(tmp, run_dir, data_dir, "model=cross", "modality=TV")


def test_scoring_records_weighted_f1_per_condition(trained_run):
    """Each entry's test_wf1 is the weighted F1 of its own confusion matrix; the full set's is
    result.json's, and its macro-F1 too."""
    ablate_results(trained_run.parents[3], "zeros")
    stored = json.loads((trained_run / ABLATION_FILE).read_text())
    assert stored["schema_version"] == 2
    entries = stored["fills"]["zeros"]["entries"]
    result = read_record(trained_run / "result.json")
    assert entries[0]["test_wf1"] == pytest.approx(result.test_wf1)
    assert entries[0]["test_f1"] == pytest.approx(result.test_f1)
    for entry in entries:
        assert entry["test_wf1"] == pytest.approx(float(weighted_f1(entry["confusion"])))
