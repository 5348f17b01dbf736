"""A seed group member's folder holds what its single run's holds: the same files (Hydra's job
files, the log, the CSV log with the same columns and rows, inputs.json, best.ckpt) and a W&B run
of its own."""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import pytest
import wandb

from selfcross.training import groupstate
from selfcross.training.grouplog import epoch_rows, member_overrides
from selfcross.training.grouprun import run_group
from tests.conftest import base_overrides, run_cli
from tests.helpers.wandb_records import logged_values

ARGS = ["model=self", "modality=TV", "debug=fast", "logger=csv",
        "trainer.enable_progress_bar=false"]  # fmt: skip


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def csv_rows(folder: Path) -> tuple[list[str], list[dict]]:
    with (folder / "csv" / "metrics.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_each_members_folder_holds_what_its_single_runs_holds(tmp_path):
    data = f"paths.data_dir={tmp_path / 'data'}"
    single = run_cli("selfcross.run", "seed=3", *ARGS, data, cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    group = run_cli("selfcross.run", "seed=5", "seed_group=2", *ARGS, data, cwd=tmp_path)
    assert group.returncode == 0, group.stderr[-2000:]
    (single_dir,) = (tmp_path / "outputs" / "self-TV-fold1-seed3").iterdir()
    expected = files(single_dir)
    assert {".hydra/config.yaml", "csv/metrics.csv", "inputs.json", "run.log"} <= expected
    header, rows = csv_rows(single_dir)
    for seed in (5, 6):
        (member_dir,) = (tmp_path / "outputs" / f"self-TV-fold1-seed{seed}").iterdir()
        assert files(member_dir) == expected, seed
        member_header, member_rows = csv_rows(member_dir)
        assert member_header == header
        assert [(r["epoch"], r["step"]) for r in member_rows] == [
            (r["epoch"], r["step"]) for r in rows
        ]
        log = (member_dir / "run.log").read_text()
        assert "Fold" in log
        assert [line.split("group epoch ")[1][:2] for line in log.splitlines()
                if "group epoch " in line] == ["1:", "2:", "3:"]  # fmt: skip
        overrides = (member_dir / ".hydra" / "overrides.yaml").read_text()
        assert f"- seed={seed}" in overrides  # the job's own folder: the command's overrides
        assert ("seed_group" in overrides) == (seed == 5)


def test_epoch_rows_are_lightnings():
    history = [
        {"epoch": 1, "lr": 0.1, "train/loss": 2.0, "val/uwa": 0.3, "val/loss": 1.0},
        {"epoch": 2, "lr": 0.1, "train/loss": 1.5, "val/uwa": 0.2, "val/loss": 0.9},
    ]
    train = [{"train/loss": 2.0, "train/wa": 0.1}, {"train/loss": 1.5, "train/wa": 0.2}]
    rows = list(epoch_rows(history, train, 10, "val/uwa"))
    assert rows == [
        (9, {"val/uwa": 0.3, "val/loss": 1.0, "val/uwa_best": 0.3, "epoch": 0}),
        (9, {"lr": 0.1, "train/loss": 2.0, "train/wa": 0.1, "epoch": 0}),
        (19, {"val/uwa": 0.2, "val/loss": 0.9, "val/uwa_best": 0.3, "epoch": 1}),
        (19, {"lr": 0.1, "train/loss": 1.5, "train/wa": 0.2, "epoch": 1}),
    ]
    assert member_overrides(["seed=1", "model=x", "seed_group=[1,2]"], 2) == ["model=x", "seed=2"]


def test_each_member_has_its_own_offline_wandb_run(make_cfg, data_dir, tmp_path):
    cfgs = [
        make_cfg(*base_overrides(tmp_path), f"paths.data_dir={data_dir}", "debug=fast",
                 "trainer.max_epochs=2", "logger=wandb", "logger.wandb.mode=offline",
                 f"seed={s}", f"paths.output_dir={tmp_path / f'seed{s}'}")
        for s in (1, 2)
    ]  # fmt: skip
    outcomes = run_group(cfgs)
    wandb.teardown()  # W&B's service writes the closed runs' files after finish() returns
    for outcome in outcomes:
        record = outcome.record
        runs = list((tmp_path / f"seed{record.seed}" / "wandb").glob("offline-run-*"))
        assert len(runs) == 1
        (run_file,) = runs[0].glob("run-*.wandb")
        values = logged_values(run_file)
        assert values["test/uwa"] == pytest.approx(record.test_uwa)
        assert values["n_params"] == record.n_params
        assert "val/uwa" in values and "lr" in values
        assert "test/confusion_matrix_table/_type" in values


def test_a_members_csv_grows_every_epoch_and_a_rerun_writes_no_row_twice(
    make_cfg, data_dir, tmp_path, monkeypatch, caplog
):
    def cfgs(root):
        return [
            make_cfg(f"paths.data_dir={data_dir}", "debug=fast", "logger=csv", f"seed={s}",
                     f"paths.output_dir={root / f'seed{s}'}")
            for s in (1, 2)
        ]  # fmt: skip

    whole = run_group(cfgs(tmp_path / "whole"))
    killed = cfgs(tmp_path / "killed")
    original = groupstate.save_member

    def die_at_epoch_2(out_dir, member, k, net, optimizer, epoch):
        if epoch == 2:  # member 0 has logged epoch 2, its checkpoint still holds epoch 1
            raise RuntimeError("killed")
        return original(out_dir, member, k, net, optimizer, epoch)

    monkeypatch.setattr(groupstate, "save_member", die_at_epoch_2)
    with caplog.at_level(logging.INFO, logger="selfcross"), pytest.raises(RuntimeError):
        run_group(killed)
    (line,) = [r.getMessage() for r in caplog.records if "group epoch" in r.getMessage()]
    assert re.fullmatch(r"group epoch 1: val/uwa seed 1 \d\.\d{4}; seed 2 \d\.\d{4}", line)
    # live: no member finished, yet each CSV holds its logged epochs (0-based in the CSV)
    assert [r["epoch"] for r in csv_rows(tmp_path / "killed" / "seed1")[1]] == ["0", "0", "1", "1"]
    assert [r["epoch"] for r in csv_rows(tmp_path / "killed" / "seed2")[1]] == ["0", "0"]
    monkeypatch.undo()
    resumed = run_group(killed)
    for a, b in zip(whole, resumed, strict=True):
        assert b.record.resumed_from is not None
        header, rows = csv_rows(a.path.parent)
        got_header, got = csv_rows(b.path.parent)
        assert got_header == header
        assert [(r["epoch"], r["step"]) for r in got] == [(r["epoch"], r["step"]) for r in rows]
        assert len(rows) == 2 * 3 + 1  # per epoch a validation and a training row; the test row
        for x, y in zip(rows, got, strict=True):
            assert {k for k, v in y.items() if v} == {k for k, v in x.items() if v}
            for key, value in x.items():
                if value:
                    assert float(y[key]) == pytest.approx(float(value), abs=1e-5), key


def test_a_killed_members_wandb_run_holds_the_epochs_it_trained(
    make_cfg, data_dir, tmp_path, monkeypatch
):
    cfgs = [
        make_cfg(*base_overrides(tmp_path), f"paths.data_dir={data_dir}", "debug=fast",
                 "logger=wandb", "logger.wandb.mode=offline", f"seed={s}",
                 f"paths.output_dir={tmp_path / f'seed{s}'}")
        for s in (1, 2)
    ]  # fmt: skip
    original = groupstate.save_member

    def die_after_epoch_1(out_dir, member, k, net, optimizer, epoch):
        path = original(out_dir, member, k, net, optimizer, epoch)
        if epoch == 1 and k == 1:
            raise RuntimeError("killed")
        return path

    monkeypatch.setattr(groupstate, "save_member", die_after_epoch_1)
    with pytest.raises(RuntimeError):
        run_group(cfgs)
    wandb.teardown()  # W&B's service writes the closed runs' files after finish() returns
    for s in (1, 2):  # both runs were open at once, each fed its member's first epoch
        (run_dir,) = (tmp_path / f"seed{s}" / "wandb").glob("offline-run-*")
        (run_file,) = run_dir.glob("run-*.wandb")
        values = logged_values(run_file)
        assert values["epoch"] == 0 and "val/uwa" in values and "lr" in values
        assert "test/uwa" not in values
