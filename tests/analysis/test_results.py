"""Loading result.json files: what is refused, skipped or set aside (selfcross.tables)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from selfcross import fusion_problem
from selfcross.analysis.results import load_results
from selfcross.config import model_fusion
from selfcross.report.select import applicable
from selfcross.training.record import RESULT_FILE, SCHEMA_VERSION
from tests.helpers.reportkit import (
    GRID,
    KEYS,
    TA_SELF,
    TV_SELF,
    expect_error,
    read_csv,
    run_main,
    write_cell,
    write_result,
)

# -- refusing what must not be aggregated ----------------------------------------------------


def test_mixed_data_sources_are_refused_unless_allowed(tmp_path, capsys):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_cell(root, "self", "TV", TV_SELF)
    other = write_result(root, "cross", "TV", 1, 1, 0.5, data={"preset": "tiny"})
    first = root / "self/TV/fold1/seed1/result.json"
    line = expect_error(capsys, "table1", "--results", str(root), "--out", str(out), *GRID)
    assert line == (  # files are read in sorted order: cross/... first
        f"error: {first}: data synthetic/small at data/synthetic/small differs from "
        f"synthetic/tiny at data/synthetic/small in {other}; "
        "pass --allow-mixed-data to aggregate them anyway"
    )
    assert not out.exists()
    run_main("table1", "--results", str(root), "--out", str(out), *GRID, "--allow-mixed-data")
    assert "MIXED DATA" in (out / "table1.md").read_text()


WAVLM = {"A": {"encoder": "wavlm-base-plus", "weights": "1a2b3c4d5e6f7a8b", "layer": "last",
               "width": 768, "rate": 50.0}}  # fmt: skip


def test_runs_of_different_feature_sets_are_refused_even_when_mixing_data(tmp_path, capsys):
    """A table compares runs of one feature set (data.feature_set of result.json): a mix is an
    error naming both; one other than the paper's is named in the provenance."""
    root = tmp_path / "multirun"
    for fold, seed in KEYS:
        write_result(root, "self", "TV", fold, seed, 0.5, data={"feature_set": WAVLM})
    run_main("table1", "--results", str(root), "--out", str(tmp_path / "a"), *GRID)
    assert (
        "Features: T=glove V=resnet101 A=wavlm-base-plus@1a2b3c4d/last"
        in (tmp_path / "a" / "table1.md").read_text()
    )
    capsys.readouterr()
    paper = write_result(root, "cross", "TV", 1, 1, 0.5)
    line = expect_error(capsys, "table1", "--results", str(root), "--out", str(tmp_path / "b"),
                        *GRID, "--allow-mixed-data")  # fmt: skip
    assert line == (  # files are read in sorted order: cross/... first
        f"error: {root / 'self/TV/fold1/seed1/result.json'}: feature set "
        "T=glove V=resnet101 A=wavlm-base-plus@1a2b3c4d/last differs from paper in "
        f"{paper}: a table compares runs of one feature set; give it the runs of one "
        "(--results <their folder>)"
    )


def test_different_fold_fingerprints_are_refused(tmp_path, capsys):
    root = tmp_path / "multirun"
    write_cell(root, "self", "TA", TA_SELF)
    # the fingerprint covers the whole fold directory, so every modality subset agrees
    write_result(root, "self", "T", 1, 1, 0.5)
    run_main("table1", "--results", str(root), "--out", str(tmp_path / "a"), *GRID)
    capsys.readouterr()
    changed = write_result(root, "cross", "TV", 2, 1, 0.5, data={"fingerprint": "changed"})
    line = expect_error(capsys, "table1", "--results", str(root), "--out", str(tmp_path / "b"))
    assert line == (  # files are read in sorted order: cross/... first
        f"error: {root / 'self/TA/fold2/seed1/result.json'}: fold 2 data fingerprint fold2 "
        f"differs from changed in {changed} (the fold's files changed between the runs); "
        "pass --allow-mixed-data to aggregate them anyway"
    )


def test_the_same_run_twice_is_refused_even_when_mixing_is_allowed(tmp_path, capsys):
    root = tmp_path / "multirun"
    write_cell(root, "self", "TV", TV_SELF)
    again = write_result(root, "self", "TV", 2, 3, 0.7, folder="rerun/self-TV-2-3")
    first = root / "self/TV/fold2/seed3/result.json"
    args = ("table1", "--results", str(root), "--out", str(tmp_path / "t"), "--allow-mixed-data")
    line = expect_error(capsys, *args)
    assert line == (  # files are read in sorted order: rerun/... first
        f"error: {first}: the same run (model self, modality TV, fold 2, seed 3) as {again}; "
        "remove one of them"
    )


def test_truncated_and_incomplete_results_are_skipped_with_a_warning(tmp_path, capsys):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_cell(root, "self", "TV", TV_SELF)
    truncated = root / "self/TV/fold1/seed2/result.json"
    truncated.write_text(truncated.read_text()[:40])
    no_score = root / "self/TV/fold2/seed1/result.json"
    raw = json.loads(no_score.read_text())
    del raw["test_wa"]
    no_score.write_text(json.dumps(raw))
    (root / "self/TV/fold1/seed3/.result.json.x1y2.tmp").write_text("{")  # a job still writing
    run_main("table1", "--results", str(root), "--out", str(out), *GRID)
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 2
    assert warnings[0].startswith(f"warning: {truncated}: not valid JSON (truncated?)")
    assert warnings[1] == f"warning: {no_score}: missing key test_wa; not used, counted as missing"
    rows = read_csv(out / "table1.csv")
    kept = [v for k, v in zip(KEYS, TV_SELF, strict=True) if k not in ((1, 2), (2, 1))]
    assert rows[("TV", "wa", "self")]["n"] == "4"
    assert float(rows[("TV", "wa", "self")]["mean"]) == pytest.approx(np.mean(kept))
    assert rows[("TV", "wa", "self")]["missing_runs"] == "f1s2 f2s1"
    assert "Self T+V: 4 of 6 runs; missing fold 1 seed 2; fold 2 seed 1" in captured.out
    assert f"Skipped, counted as missing: {truncated}" in (out / "table1.md").read_text()


def test_hostile_results_are_skipped_with_a_warning_not_a_traceback(tmp_path, capsys):
    """A result.json nested very deeply (a RecursionError in the JSON decoder or in anything
    walking it) or holding an integer too large to convert (Python's digit limit) is skipped
    like any other corrupt record, by tables and by every reader of records (run's skip and
    resume, ablate, attention: read_record)."""
    from selfcross.training.record import read_record

    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_cell(root, "self", "TV", TV_SELF)
    deep = root / "self/TV/fold1/seed2/result.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    nested = root / "self/TV/fold1/seed3/result.json"
    raw = json.loads(nested.read_text())
    raw["config"]["extra"] = json.loads("[" * 40 + "]" * 40)  # loads, but too deep to walk
    nested.write_text(json.dumps(raw))
    huge = root / "self/TV/fold2/seed1/result.json"
    huge.write_text(huge.read_text().replace('"seed": 1', '"seed": ' + "9" * 5000, 1))
    for path in (deep, nested, huge):
        assert read_record(path) is None
    run_main("table1", "--results", str(root), "--out", str(out), *GRID)
    warnings = capsys.readouterr().err.strip().splitlines()
    assert warnings == [
        f"warning: {deep}: nested more than 32 levels deep; not used, counted as missing",
        f"warning: {nested}: nested more than 32 levels deep; not used, counted as missing",
        f"warning: {huge}: holds an integer of 5000 digits (at most 19 are read); not used, "
        "counted as missing",
    ]
    assert read_csv(out / "table1.csv")[("TV", "wa", "self")]["n"] == "3"


def test_folds_start_at_one(tmp_path, capsys):
    root = tmp_path / "multirun"
    write_cell(root, "self", "TV", TV_SELF)
    for folds, shown in (("0", "0"), ("0-2", "0,1,2")):
        line = expect_error(capsys, "table1", "--results", str(root), "--folds", folds)
        assert line == f"error: --folds {shown}: folds are numbered from 1 (fold 1 is fold01)"


def test_runs_outside_the_grid_are_reported_not_averaged(tmp_path, capsys):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_cell(root, "self", "TV", TV_SELF)
    extra = write_result(root, "self", "TV", 1, 11, 0.90)
    run_main("table1", "--results", str(root), "--out", str(out), *GRID)
    rows = read_csv(out / "table1.csv")
    assert rows[("TV", "wa", "self")]["n"] == "6"
    assert float(rows[("TV", "wa", "self")]["mean"]) == pytest.approx(np.mean(TV_SELF))
    assert f"outside the grid; set --folds/--seeds): {extra}" in capsys.readouterr().out


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_no_results_is_a_one_line_error(tmp_path, capsys, make):
    root = tmp_path / "multirun"
    if make == "empty":
        (root / "self").mkdir(parents=True)
    line = expect_error(capsys, "table2", "--results", str(root), "--out", str(tmp_path / "t"))
    problem = "no such results directory" if make == "missing" else "no result.json under"
    assert line.startswith(f"error: {root}: {problem}")


def test_expected_runs_sets_the_seed_grid(tmp_path, capsys):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_cell(root, "self", "TV", TV_SELF)
    run_main("table1", "--results", str(root), "--out", str(out), "--folds", "1-2",
             "--expected-runs", "6")  # fmt: skip
    assert read_csv(out / "table1.csv")[("TV", "wa", "self")]["complete"] == "True"
    capsys.readouterr()
    line = expect_error(capsys, "table1", "--results", str(root), "--expected-runs", "7")
    assert line == (
        "error: --expected-runs 7 is not a positive multiple of the 5 folds; give --seeds"
    )
    run_main("table1", "--results", str(root), "--out", str(out))  # default: 5 x 10 expected
    row = read_csv(out / "table1.csv")[("TV", "wa", "self")]
    assert row["expected_runs"] == "50" and row["complete"] == "False"
    assert not math.isnan(float(row["mean"]))


# -- the run record's versions and the values the tables use ---------------------------------


def test_a_version_1_file_without_schema_version_is_read(tmp_path, capsys):
    """Files written before the record had ``schema_version`` are version 1, and read alike."""
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_cell(root, "self", "TV", TV_SELF)
    for path in root.rglob(RESULT_FILE):
        raw = json.loads(path.read_text())
        del raw["schema_version"]
        path.write_text(json.dumps(raw))
    runs, skipped = load_results(root)
    assert skipped == [] and len(runs) == 6
    run_main("table1", "--results", str(root), "--out", str(out), *GRID)
    assert capsys.readouterr().err == ""
    row = read_csv(out / "table1.csv")[("TV", "wa", "self")]
    assert row["n"] == "6" and row["complete"] == "True"
    assert float(row["mean"]) == pytest.approx(np.mean(TV_SELF))


def test_a_file_of_a_newer_schema_version_is_skipped_naming_the_version(tmp_path, capsys):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_cell(root, "self", "TV", TV_SELF)
    newer = root / "self/TV/fold2/seed2/result.json"
    raw = json.loads(newer.read_text())
    raw["schema_version"] = SCHEMA_VERSION + 1
    newer.write_text(json.dumps(raw))
    run_main("table1", "--results", str(root), "--out", str(out), *GRID)
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 1
    assert warnings[0].startswith(
        f"warning: {newer}: schema_version {SCHEMA_VERSION + 1} is newer than this selfcross "
        f"reads ({SCHEMA_VERSION})"
    )
    assert warnings[0].endswith("; not used, counted as missing")
    assert read_csv(out / "table1.csv")[("TV", "wa", "self")]["missing_runs"] == "f2s2"


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("test_wa", 1.5, "test_wa is 1.5, expected a rate in [0, 1]"),
        ("test_uwa", float("nan"), "test_uwa is nan, expected a rate in [0, 1]"),
        ("test_wa", True, "test_wa is True, expected a number"),
        ("fold", "2", "fold is '2', expected an integer"),
        ("seed", 1.0, "seed is 1.0, expected an integer"),
        ("model", 3, "model is 3, expected a string"),
        ("data", {"root": 7}, "data.root is 7, expected a string"),
        ("confusion", [[1, 2], [3, 4]], "confusion has shape [2, 2], expected [7, 7]"),
        ("confusion", [[-1] * 7] * 7, "confusion holds values that are not non-negative counts"),
        ("class_names", [1] * 7, "class_names is not a list of strings"),
    ],
)
def test_values_the_tables_cannot_use_are_skipped_with_the_reason(tmp_path, field, value, problem):
    root = tmp_path / "multirun"
    path = write_result(root, "self", "TV", 1, 1, 0.5)
    raw = json.loads(path.read_text())
    if field == "data":
        raw["data"].update(value)
    else:
        raw[field] = value
    path.write_text(json.dumps(raw))
    write_result(root, "self", "TV", 1, 2, 0.5)
    runs, skipped = load_results(root)
    assert [r.seed for r in runs] == [2]
    assert [(s.path, s.problem) for s in skipped] == [(path, problem)]


def test_a_record_without_confusion_values_has_no_matrix(tmp_path):
    root = tmp_path / "multirun"
    write_result(root, "self", "TVA", 1, 1, 0.5, confusion=None, class_names=None)
    (run,), skipped = load_results(root)
    assert skipped == [] and run.confusion is None and run.class_names is None


def test_which_cells_exist_follows_the_package_rule():
    """A cell expects runs exactly where selfcross.fusion_problem allows the model."""
    for model in ("self", "cross", "self_nosp", "cross_nosp", "cross_self"):
        for modality in ("T", "V", "A", "TV", "TA", "VA", "TVA"):
            allowed = fusion_problem(model_fusion(model), modality) is None
            assert applicable(model, modality) == allowed
            assert allowed == (model.startswith("self") or len(modality) >= 2)


def test_the_report_imports_neither_torch_nor_a_command():
    """The report renders records; it never builds a network (no torch, no models), and the
    drawings of the analysis commands (ablation, attention) are no exception."""
    code = (
        "import sys, selfcross.report.figure3, selfcross.report.table1, selfcross.report.table2,"
        " selfcross.report.masking, selfcross.report.ablation, selfcross.report.attention;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning')"
        " or m.startswith('selfcross.models')"
        " or m in ('selfcross.tables', 'selfcross.run', 'selfcross.ablate',"
        " 'selfcross.attention')]; print(bad)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def run_config(root, fold, seed, lr, generator_seed=0, epochs=6) -> dict:
    """A resolved configuration as a run records it: its own folder, fold, seed and logger
    differ from run to run without making it another configuration."""
    out = str(root / f"self/TV/fold{fold}/seed{seed}")
    return {
        "fold": fold,
        "seed": seed,
        "sweep_name": f"sweep{seed}",
        "logger": {"csv": {"save_dir": out}},
        "paths": {"output_dir": out, "cache_dir": "/c"},
        "trainer": {"max_epochs": epochs, "default_root_dir": out},
        "callbacks": {"checkpoint": {"dirpath": f"{out}/checkpoints"}},
        "model": {"name": "self", "optimizer": {"lr": lr}},
        "data": {"synthetic": {"seed": generator_seed}, "cache_dir": f"/cache{seed}"},
    }


def test_runs_of_different_configurations_in_one_cell_are_refused(tmp_path, capsys):
    root = tmp_path / "multirun"
    for fold, seed in KEYS[:3]:
        write_result(
            root, "self", "TV", fold, seed, 0.5, config=run_config(root, fold, seed, 1e-3)
        )
    run_main("table1", "--results", str(root), "--out", str(tmp_path / "a"), *GRID)
    capsys.readouterr()
    config = run_config(root, 2, 1, 1e-2, generator_seed=3, epochs=2)
    odd = write_result(root, "self", "TV", 2, 1, 0.6, config=config)
    first = root / "self/TV/fold1/seed1/result.json"
    line = expect_error(capsys, "table1", "--results", str(root), "--out", str(tmp_path / "b"))
    assert line == (
        f"error: {odd}: configuration differs from {first} (data.synthetic.seed: 3 vs 0; "
        "model.optimizer.lr: 0.01 vs 0.001; trainer.max_epochs: 2 vs 6): a cell averages runs "
        "of one configuration; pass --split-configs to show each configuration as its own cell"
    )


def test_split_configs_gives_each_configuration_its_own_labelled_cell(tmp_path, capsys):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    lrs = {KEYS[0]: 1e-3, KEYS[1]: 1e-3, KEYS[2]: 1e-2, KEYS[3]: 1e-2, KEYS[4]: 1e-2}
    wa = {KEYS[0]: 0.40, KEYS[1]: 0.44, KEYS[2]: 0.60, KEYS[3]: 0.62, KEYS[4]: 0.67}
    for (fold, seed), lr in lrs.items():
        write_result(root, "self", "TV", fold, seed, wa[(fold, seed)],
                     config=run_config(root, fold, seed, lr))  # fmt: skip
    run_main("table1", "--results", str(root), "--out", str(out), *GRID, "--split-configs")
    for label, keys in (("0.001", KEYS[:2]), ("0.01", KEYS[2:5])):
        folder = out / f"model.optimizer.lr={label}"
        assert f"[model.optimizer.lr={label}]" in (folder / "table1.md").read_text()
        row = read_csv(folder / "table1.csv")[("TV", "wa", "self")]
        assert int(row["n"]) == len(keys)
        assert float(row["mean"]) == pytest.approx(np.mean([wa[k] for k in keys]))
    assert not (out / "table1.md").exists()  # never one table averaging both


def test_real_configurations_of_one_cell_differ_only_in_fold_and_seed(tmp_path, capsys):
    """Resolved configurations as runs record them (composed from conf/, each with its own
    output folder): other folds, seeds and sweep names are one configuration; a batch size
    is not."""
    from selfcross.config import compose, resolved

    root = tmp_path / "multirun"

    def real(fold, seed, *extra):
        out = root / f"self/TV/fold{fold}/seed{seed}"
        return resolved(compose([f"paths.output_dir={out}", "modality=TV", f"fold={fold}",
                                 f"seed={seed}", f"sweep_name=s{seed}", *extra]))  # fmt: skip

    for fold, seed in KEYS[:4]:
        write_result(root, "self", "TV", fold, seed, 0.5, config=real(fold, seed))
    run_main("table1", "--results", str(root), "--out", str(tmp_path / "a"), *GRID)
    capsys.readouterr()
    odd = write_result(root, "self", "TV", 2, 2, 0.5, config=real(2, 2, "data.batch_size=8"))
    line = expect_error(capsys, "table1", "--results", str(root), "--out", str(tmp_path / "b"))
    assert line.startswith(f"error: {odd}: configuration differs from ")
    assert "(data.batch_size: 8 vs 32)" in line
