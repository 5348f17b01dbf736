"""Missing-modality evaluation (``selfcross.ablate``): the ablation of a real tiny run (its full
set reproduces result.json), the table built from ablation.json files, and the ablation.json
record read and written back.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from selfcross.ablate import main
from selfcross.analysis.ablation import BlankedSplit, ablate_results, present_subsets
from selfcross.analysis.records import (
    ABLATION_FILE,
    ABLATION_SCHEMA,
    AblationRecord,
    read_ablation,
)
from selfcross.report.ablation import make_ablation_report
from selfcross.training.record import read_record
from tests.helpers.modelkit import train_tiny_run
from tests.helpers.recordkit import write_run


def expect_error(capsys, *args: str) -> str:
    """Run ``selfcross.ablate`` expecting exit status 2; its one stderr line."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# -- ablation of a real tiny run -----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    """One tiny T+V cross run (3 subsets), trained once for this module."""
    tmp = tmp_path_factory.mktemp("ablation")
    run_dir = tmp / "sweep" / "cross" / "TV" / "fold1" / "seed1"
    return train_tiny_run(tmp, run_dir, data_dir, "model=cross", "modality=TV")


def copy_run(run_dir: Path, dest: Path) -> Path:
    target = dest / "cross" / "TV" / "fold1" / "seed1"
    shutil.copytree(run_dir, target)
    (target / ABLATION_FILE).unlink(missing_ok=True)
    return target


def test_full_set_reproduces_result_json_and_subsets_are_blanked(trained_run):
    outcome = ablate_results(trained_run.parents[3], "zeros")
    assert [r.status for r in outcome.runs] == ["scored"]
    record = read_record(trained_run / "result.json")
    stored = json.loads((trained_run / ABLATION_FILE).read_text())
    entries = stored["fills"]["zeros"]["entries"]
    assert [e["present"] for e in entries] == ["TV", "T", "V"]
    assert [e["absent"] for e in entries] == ["", "V", "T"]
    full = entries[0]
    assert full["test_wa"] == record.test_wa and full["test_uwa"] == record.test_uwa
    assert full["confusion"] == record.confusion
    assert stored["data_fingerprint"] == record.data.fingerprint
    assert len(stored["checkpoint"]["sha256"]) == 64
    # Present T: the network sees V as zeros. Recompute by hand from the checkpoint.
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(record.config)
    dm = instantiate(cfg.data)
    dm.setup("test")
    module = instantiate(cfg.model)
    state = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    module.load_state_dict(state["state_dict"])
    module.eval()
    test = dm.datasets["test"]
    batch = test.__getitems__(list(range(len(test))))
    with torch.no_grad():
        preds = module({**batch, "V": torch.zeros_like(batch["V"])}).argmax(-1)
    labels = batch["label"]
    assert entries[1]["test_uwa"] == pytest.approx((preds == labels).float().mean().item())
    confusion = np.zeros((7, 7), dtype=int)
    np.add.at(confusion, (labels.numpy(), preds.numpy()), 1)
    assert entries[1]["confusion"] == confusion.tolist()
    # The blanked split passes labels through and blanks only V.
    blanked = BlankedSplit(test, ["V"], "zeros").__getitems__([0, 1])
    assert torch.equal(blanked["label"], labels[:2]) and torch.equal(blanked["T"], batch["T"][:2])
    assert not blanked["V"].any()


def test_rerun_reuses_and_a_second_fill_is_added(trained_run, capsys, tmp_path):
    root = trained_run.parents[3]
    ablate_results(root, "zeros")
    before = (trained_run / ABLATION_FILE).read_text()
    assert [r.status for r in ablate_results(root, "zeros").runs] == ["reused"]
    assert (trained_run / ABLATION_FILE).read_text() == before
    main(["--results", str(root), "--out", str(tmp_path / "t"), "--fill", "train_mean"])
    out = capsys.readouterr().out
    assert "1 runs scored" in out
    stored = json.loads((trained_run / ABLATION_FILE).read_text())
    assert set(stored["fills"]) == {"zeros", "train_mean"}
    record = read_record(trained_run / "result.json")
    assert stored["fills"]["train_mean"]["entries"][0]["test_uwa"] == record.test_uwa
    assert (tmp_path / "t" / "ablation.png").stat().st_size > 10000


def test_mismatching_full_set_is_an_error_naming_the_run(trained_run, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path / "r")
    raw = json.loads((run / "result.json").read_text())
    raw["test_uwa"] = raw["test_uwa"] + 0.01
    (run / "result.json").write_text(json.dumps(raw))
    line = expect_error(capsys, "--results", str(tmp_path / "r"), "--out", str(tmp_path / "t"))
    assert str(run) in line and "checkpoint or the data changed" in line
    assert not (run / ABLATION_FILE).exists()


def test_corrupted_checkpoint_is_an_error_naming_the_run(trained_run, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path / "r")
    ckpt = run / "checkpoints" / "best.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:300])
    line = expect_error(capsys, "--results", str(tmp_path / "r"), "--out", str(tmp_path / "t"))
    assert str(run) in line and "best.ckpt: cannot be loaded into the run's model" in line


def test_pruned_checkpoint_is_listed_as_skipped(trained_run, tmp_path, capsys):
    kept = copy_run(trained_run, tmp_path / "r")
    pruned = tmp_path / "r" / "cross" / "TV" / "fold1" / "seed2"
    shutil.copytree(kept, pruned)
    shutil.rmtree(pruned / "checkpoints")
    raw = json.loads((pruned / "result.json").read_text())
    (pruned / "result.json").write_text(json.dumps({**raw, "seed": 2}))
    main(["--results", str(tmp_path / "r"), "--out", str(tmp_path / "t")])
    out = capsys.readouterr().out
    assert f"skipped  {pruned}: no best checkpoint" in out
    assert "1 runs scored, 0 reused, 1 skipped" in out
    md = (tmp_path / "t" / "ablation.md").read_text()
    assert f"skipped: {pruned}: no best checkpoint (pruned)" in md
    assert not (pruned / ABLATION_FILE).exists()


# -- the table from ablation.json files --------------------------------------------------------


def write_ablated(
    root: Path, model: str, fold: int, seed: int, scores: dict, p: float = 0.0, **change
) -> Path:
    """A hand-made run (result.json) with its ablation.json: scores[present] = (wa, uwa).

    The file is written as a literal dict in the layout selfcross has always written (schema
    1), not through the record class, so that the reader is held to old files; ``change``
    replaces top-level keys (None drops one)."""
    run_dir = root / model / "TVA" / f"p{p}" / f"fold{fold}" / f"seed{seed}"
    full = scores["TVA"]
    config = {"model": {"modality_dropout": p}}
    write_run(run_dir, model, "TVA", fold, seed, full[0], full[1], config=config)
    entries = [
        {"present": s, "absent": "", "test_wa": wa, "test_uwa": uwa, "test_f1": wa,
         "test_loss": 1.0, "confusion": []}
        for s, (wa, uwa) in scores.items()
    ]  # fmt: skip
    record = read_record(run_dir / "result.json")
    raw = {
        "schema_version": 1,
        "model": model,
        "modality": "TVA",
        "fold": fold,
        "seed": seed,
        "modality_dropout": p,
        "config_hash": record.config_hash,
        "finished": record.finished,
        "data_fingerprint": record.data.fingerprint,
        "checkpoint": {"file": "checkpoints/best.ckpt", "sha256": "x"},
        "fills": {"zeros": {"entries": entries, "scored": "2026-01-01T00:00:00+00:00"}},
    }
    raw.update(change)
    raw = {k: v for k, v in raw.items() if v is not None}
    (run_dir / ABLATION_FILE).write_text(json.dumps(raw, indent=2))
    return run_dir


def test_table_cells_and_drop_tests_recomputed_from_ablation_files(tmp_path):
    rng = np.random.default_rng(3)
    keys = [(f, s) for f in (1, 2) for s in (1, 2, 3)]
    subsets = present_subsets("TVA")
    truth = {}
    for model, shift in (("self", 0.0), ("cross", 0.05)):
        for fold, seed in keys:
            scores = {
                s: (
                    float(rng.uniform(0.2, 0.6) - shift * (s != "TVA")),
                    float(rng.uniform(0.3, 0.7)),
                )
                for s in subsets
            }
            truth[(model, fold, seed)] = scores
            write_ablated(tmp_path / "runs", model, fold, seed, scores)
    # A multi-modal run without ablation.json or checkpoint: listed, not used.
    write_run(tmp_path / "runs" / "self" / "TV" / "fold1" / "seed1", "self", "TV", 1, 1, 0.5, 0.5)
    make_ablation_report(tmp_path / "runs", tmp_path / "out", "zeros")
    with (tmp_path / "out" / "ablation.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    cells = {(r["model"], r["present"], r["metric"]): r for r in rows if r["table"] == "ablation"}
    tests = {(r["present"], r["metric"]): r for r in rows if r["table"] == "ablation-test"}
    assert len(cells) == 2 * 7 * 2 and len(tests) == 6 * 2
    index = {"wa": 0, "uwa": 1}
    for (model, present, metric), row in cells.items():
        values = [truth[(model, *k)][present][index[metric]] for k in keys]
        drops = [
            truth[(model, *k)]["TVA"][index[metric]] - truth[(model, *k)][present][index[metric]]
            for k in keys
        ]
        assert float(row["mean"]) == pytest.approx(np.mean(values))
        assert float(row["std"]) == pytest.approx(np.std(values, ddof=1))
        assert row["n"] == "6"
        if present == "TVA":
            assert row["drop_mean"] == ""
        else:
            assert float(row["drop_mean"]) == pytest.approx(np.mean(drops))
            assert float(row["drop_std"]) == pytest.approx(np.std(drops, ddof=1))
    for (present, metric), row in tests.items():
        i = index[metric]
        drop = {
            m: [truth[(m, *k)]["TVA"][i] - truth[(m, *k)][present][i] for k in keys]
            for m in ("self", "cross")
        }
        assert float(row["p_ttest_ind"]) == pytest.approx(
            stats.ttest_ind(drop["self"], drop["cross"]).pvalue
        )
        assert float(row["p_ttest_rel"]) == pytest.approx(
            stats.ttest_rel(drop["self"], drop["cross"]).pvalue
        )
        assert row["n_pairs"] == "6"
    md = (tmp_path / "out" / "ablation.md").read_text()
    assert "skipped: " + str(tmp_path / "runs" / "self" / "TV" / "fold1" / "seed1") in md
    assert "no best checkpoint (pruned)" in md
    assert (tmp_path / "out" / "ablation.png").is_file()


# -- the ablation.json record -----------------------------------------------------------------

TVA_SCORES = {s: (0.5, 0.6) for s in ("TVA", "TV", "TA", "VA", "T", "V", "A")}


def test_old_ablation_files_read_and_write_back_key_for_key(tmp_path):
    run_dir = write_ablated(tmp_path, "self", 1, 1, TVA_SCORES)
    raw = json.loads((run_dir / ABLATION_FILE).read_text())
    record = read_ablation(run_dir / ABLATION_FILE)
    assert record.schema_version == 1 and record.fills["zeros"].entries[0].present == "TVA"
    assert json.dumps(record.to_dict()) == json.dumps(raw)  # same keys, same order
    assert record.belongs_to(read_record(run_dir / "result.json"))
    unversioned = write_ablated(tmp_path, "self", 1, 2, TVA_SCORES, schema_version=None)
    assert read_ablation(unversioned / ABLATION_FILE).schema_version == 1
    assert read_ablation(tmp_path / "nowhere.json") is None
    with pytest.raises(ValueError, match="missing key fills.zeros.entries\\[0\\].absent"):
        AblationRecord.from_dict({**raw, "fills": {"zeros": {"entries": [{"present": "T"}]}}})
    with pytest.raises(ValueError, match="unknown key checkpoint.size"):
        AblationRecord.from_dict({**raw, "checkpoint": {"file": "f", "sha256": "x", "size": 1}})
    with pytest.raises(ValueError, match="test_wa is 'high', expected a number"):
        bad = [{**raw["fills"]["zeros"]["entries"][0], "test_wa": "high"}]
        AblationRecord.from_dict({**raw, "fills": {"zeros": {"entries": bad, "scored": ""}}})


def test_newer_or_corrupt_ablation_files_are_named_and_left_out(tmp_path):
    root = tmp_path / "runs"
    keys = [(1, 1), (1, 2), (2, 1)]
    for model in ("self", "cross"):
        for fold, seed in keys:
            write_ablated(root, model, fold, seed, TVA_SCORES)
    newer = write_ablated(root, "self", 2, 2, TVA_SCORES, schema_version=ABLATION_SCHEMA + 1)
    corrupt = write_ablated(root, "cross", 2, 2, TVA_SCORES)
    (corrupt / ABLATION_FILE).write_text('{"schema_version": 1, "fills": {')
    keyless = write_ablated(root, "cross", 3, 1, TVA_SCORES, modality_dropout=None)
    report = make_ablation_report(root, tmp_path / "out", "zeros")
    assert len(report.missing) == 3
    md = (tmp_path / "out" / "ablation.md").read_text()
    assert (
        f"skipped: {newer}: {ABLATION_FILE} schema_version {ABLATION_SCHEMA + 1} is newer than "
        "this selfcross reads" in md
    )
    assert f"skipped: {corrupt}: {ABLATION_FILE} cannot be read (not valid JSON" in md
    unread = f"skipped: {keyless}: {ABLATION_FILE} cannot be read"
    assert f"{unread} (missing key modality_dropout)" in md
    # Without a checkpoint to score again, scoring leaves a newer file alone (with a warning).
    before = (newer / ABLATION_FILE).read_text()
    outcome = ablate_results(root, "zeros")
    by_dir = {r.run_dir: r for r in outcome.runs}
    assert (
        by_dir[newer].status == "skipped" and "newer than this selfcross" in by_dir[newer].reason
    )
    assert (newer / ABLATION_FILE).read_text() == before
    assert by_dir[corrupt].status == "skipped"  # no checkpoint to score it again
    assert by_dir[corrupt].reason.endswith("(pruned: resume.keep_checkpoints)")
    assert by_dir[root / "self/TVA/p0.0/fold1/seed1"].status == "reused"


def test_an_unusable_ablation_file_is_set_aside_with_a_warning_not_overwritten(
    trained_run, tmp_path, capsys
):
    """A corrupt or newer-schema ablation.json of a run that can be scored again is kept under
    another name, with a warning line, before the new one is written (before, a corrupt file
    was replaced silently and a newer one left the run unscored)."""
    for name, text, problem in (
        ("corrupt", '{"schema_version": 1, "fills": {', "cannot be read (not valid JSON"),
        ("newer", json.dumps({"schema_version": 9}), "schema_version 9 is newer than this"),
    ):
        run = copy_run(trained_run, tmp_path / name)
        (run / ABLATION_FILE).write_text(text)
        outcome = ablate_results(tmp_path / name, "zeros")
        assert [r.status for r in outcome.runs] == ["scored"]
        aside = [p for p in run.iterdir() if p.name.startswith(f"{ABLATION_FILE}.unusable-")]
        assert len(aside) == 1 and aside[0].read_text() == text
        assert read_ablation(run / ABLATION_FILE).fills["zeros"].entries[0].present == "TV"
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"warning: {run / ABLATION_FILE}: {problem}")
        assert err[0].endswith(f"; kept as {aside[0].name}, the run is scored again")
