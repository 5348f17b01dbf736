"""The cross-corpus table (``tables crosscorpus``) from hand-made result.json and
cross_corpus-*.json files: its numbers recomputed from the files, the paper's t-test, and the
refusals (several targets, different target data, a file of an earlier run)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from scipy import stats

from selfcross.analysis.records import CrossCorpusRecord, cross_corpus_file, write_cross_corpus
from tests.helpers.reportkit import (
    GRID,
    KEYS,
    expect_error,
    md_tables,
    mean_std,
    run_main,
    write_result,
)

SELF_IN = [0.60, 0.62, 0.64, 0.66, 0.68, 0.70]
CROSS_IN = [0.61, 0.60, 0.66, 0.65, 0.67, 0.69]
SELF_XC = [0.30, 0.31, 0.29, 0.33, 0.32, 0.30]  # Self far above Cross across corpora
CROSS_XC = [0.20, 0.22, 0.21, 0.19, 0.23, 0.20]
SHARED = ["angry", "happy", "sad", "neutral", "surprise"]


def write_scores(run: Path, wa: float, target="meld", fingerprint="f" * 16, **fields) -> Path:
    record = CrossCorpusRecord(
        model="x", modality="TVA", fold=1, seed=1, config_hash="0" * 16,
        finished="2024-01-01T00:00:00+00:00", source={"name": "synthetic"},
        target={"label": target, "fingerprint": fingerprint, "root": "/data/meld"},
        class_map="iemocap_meld", shared=SHARED, masked=["frustrated"], masked_argmax=3,
        left_out={"disgust": 2, "fear": 1}, n_utterances=100, wa=wa, uwa=wa + 0.1,
        mf1=wa, wf1=wa - 0.05, recall=dict.fromkeys(SHARED, wa), confusion=[[20] * 5] * 5,
        evaluated="2024-01-02T00:00:00+00:00",
    )  # fmt: skip
    for key, value in fields.items():
        setattr(record, key, value)
    return write_cross_corpus(run, record, cross_corpus_file("iemocap_meld", target))


def write_runs(root: Path, **scores) -> None:
    for model, inside, across in (("self", SELF_IN, SELF_XC), ("cross", CROSS_IN, CROSS_XC)):
        for (fold, seed), a, b in zip(KEYS, inside, across, strict=True):
            path = write_result(root, model, "TVA", fold, seed, a)
            write_scores(path.parent, b, **scores)


def test_the_table_recomputes_from_the_files(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "out"
    write_runs(root)
    run_main("crosscorpus", "--results", str(root), "--out", str(out), *GRID,
             "--metrics", "wa,wf1")  # fmt: skip
    tables = md_tables((out / "crosscorpus.md").read_text())
    wa = tables["WA"][0]
    assert wa["Modality"] == "T+V+A"
    assert wa["Self in-corpus"] == mean_std(SELF_IN) + " (6)"
    assert wa["Cross in-corpus"] == mean_std(CROSS_IN) + " (6)"
    assert (
        wa["Self cross-corpus"] == mean_std(SELF_XC) + "\\* (6)"
    )  # p < .05 (Markdown-escaped star)
    assert wa["Cross cross-corpus"] == mean_std(CROSS_XC) + " (6)"
    with (out / "crosscorpus.csv").open() as handle:
        rows = {(r["table"], r["metric"]): r for r in csv.DictReader(handle)
                if r["table"].endswith("-test")}  # fmt: skip
    for side, a, b in (("in-corpus", SELF_IN, CROSS_IN), ("cross-corpus", SELF_XC, CROSS_XC)):
        test = rows[(f"crosscorpus/{side}-test", "wa")]
        assert float(test["p_ttest_ind"]) == pytest.approx(stats.ttest_ind(a, b).pvalue)
        assert float(test["p_ttest_rel"]) == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert float(rows[("crosscorpus/in-corpus-test", "wa")]["p_ttest_ind"]) > 0.05
    wf1 = tables["WF1"][0]
    assert wf1["Cross cross-corpus"] == mean_std([v - 0.05 for v in CROSS_XC]) + " (6)"
    assert wf1["Self in-corpus"] == mean_std(SELF_IN) + " (6)"  # result.json's test_wf1: WA


def test_several_targets_different_data_and_stale_files_are_refused_or_said(tmp_path, capsys):
    root = tmp_path / "runs"
    write_runs(root)
    write_scores(root / "self/TVA/fold1/seed1", 0.5, target="other")
    line = expect_error(capsys, "crosscorpus", "--results", str(root), *GRID)
    assert "on several targets (meld, other): choose one with --target" in line
    write_scores(root / "self/TVA/fold1/seed2", 0.5, fingerprint="e" * 16)
    line = expect_error(capsys, "crosscorpus", "--results", str(root), "--target", "meld",
                        *GRID)  # fmt: skip
    assert "runs scored on meld with different data" in line
    write_scores(root / "self/TVA/fold1/seed2", 0.5, config_hash="1" * 16)
    out = tmp_path / "out"
    run_main("crosscorpus", "--results", str(root), "--target", "meld", "--out", str(out), *GRID)
    text = (out / "crosscorpus.md").read_text()
    assert "fold1/seed2/cross_corpus-iemocap_meld-meld.json: belongs to an earlier run" in text
    assert "cross-corpus: Self T+V+A: 5 of 6 runs" in text


RANDOM = {"split": "random", "seed": 0, "class_set": None}
MELD = {"name": "meld", "root": "/data/meld", "fingerprint": "m",
        "scheme": {"split": "official", "seed": None, "class_set": None}}  # fmt: skip
KEYS_T5 = [(1, 1), (1, 2), (1, 3)]


def write_block(root: Path, self_wa, cross_wa, data=None, scores=None) -> None:
    for model, values in (("self", self_wa), ("cross", cross_wa)):
        for (fold, seed), wa in zip(KEYS_T5, values, strict=True):
            path = write_result(root, model, "TA", fold, seed, wa, data=data or {"scheme": RANDOM},
                                test_wf1=wa - 0.1)  # fmt: skip
            if scores is not None:
                write_scores(path.parent, scores[model][seed - 1])


def test_table5_blocks_each_with_its_scheme_metrics_and_tests(tmp_path):
    """The random block (IEMOCAP: WA, UWA) and the MELD block (weighted F1, UWA) beside
    --results, the IEMOCAP -> MELD block from the random runs' cross_corpus files; every value
    recomputed from the files; the blocks without runs are said."""
    base = tmp_path / "t5"
    xc = {"self": [0.30, 0.32, 0.31], "cross": [0.20, 0.21, 0.22]}
    write_block(tmp_path / "t5-random", [0.60, 0.61, 0.62], [0.50, 0.52, 0.49], scores=xc)
    write_block(base / "meld", [0.40, 0.41, 0.39], [0.40, 0.42, 0.41], data=MELD)
    out = tmp_path / "out"
    run_main("table5", "--results", str(base), "--out", str(out), "--folds", "1",
             "--seeds", "1-3")  # fmt: skip
    tables = md_tables((out / "table5.md").read_text())
    titles = list(tables)
    assert titles == [
        "7-class IEMOCAP, random folds (Table 1's runs); split random (seed 0), all classes — WA",
        "7-class IEMOCAP, random folds (Table 1's runs); split random (seed 0), all classes — UWA",
        "MELD, the official split; split official, all classes — WF1",
        "MELD, the official split; split official, all classes — UWA",
        "cross-corpus IEMOCAP -> MELD, shared classes (meld, class_map=iemocap_meld); split "
        "random (seed 0), all classes — WA",
        "cross-corpus IEMOCAP -> MELD, shared classes (meld, class_map=iemocap_meld); split "
        "random (seed 0), all classes — UWA",
    ]
    random_wa = tables[titles[0]][0]
    assert random_wa["Self"] == mean_std([0.60, 0.61, 0.62]) + "\\* (3)"
    assert float(random_wa["p t-test"].rstrip("*")) == pytest.approx(
        stats.ttest_ind([0.60, 0.61, 0.62], [0.50, 0.52, 0.49]).pvalue, abs=5e-5
    )
    meld_wf1 = tables[titles[2]][0]
    assert meld_wf1["Cross"] == mean_std([0.30, 0.32, 0.31]) + " (3)"  # test_wf1 = WA - .1
    cross_uwa = tables[titles[5]][0]
    assert cross_uwa["Cross"] == mean_std([v + 0.1 for v in xc["cross"]]) + " (3)"
    text = (out / "table5.md").read_text()
    assert "Blocks without runs, left out: 4class, session, meld_iemocap (no cross_corpus-" in text


def test_table5_refuses_a_block_of_mixed_schemes(tmp_path, capsys):
    base = tmp_path / "t5"
    write_block(base / "session", [0.6, 0.6, 0.6], [0.5, 0.5, 0.5])
    session = {"scheme": {"split": "session", "seed": 0, "class_set": None}}
    write_result(base / "session", "self", "TA", 1, 4, 0.5, data=session, folder="x/seed4")
    line = expect_error(capsys, "table5", "--results", str(base), "--folds", "1",
                        "--seeds", "1-4")  # fmt: skip
    assert "evaluation scheme" in line
