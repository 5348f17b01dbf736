"""A killed seed group resumes each unfinished member from its last epoch: the same histories,
best epochs and test scores as the uninterrupted group; finished members are skipped."""

from __future__ import annotations

import re

import pytest
import torch

from selfcross.analysis.reload import load_module
from selfcross.training import groupstate
from selfcross.training.grouprun import run_group
from selfcross.training.resume import BEST_CHECKPOINT, CHECKPOINT_DIR

SEEDS = (1, 2)


def member_cfgs(make_cfg, data_dir, root, seeds=SEEDS, *extra):
    return [
        make_cfg(f"paths.data_dir={data_dir}", "debug=fast", "trainer.max_epochs=4",
                 "model=cross", "modality=TV", f"seed={s}",
                 f"paths.output_dir={root / f'seed{s}'}", *extra)
        for s in seeds
    ]  # fmt: skip


class Killed(Exception):
    pass


def kill_after(monkeypatch, epoch: int) -> list[int]:
    """``save_member`` raises once every member has saved ``epoch``: the process dies there."""
    original, saved = groupstate.save_member, []

    def save_then_die(out_dir, member, k, net, optimizer, at):
        path = original(out_dir, member, k, net, optimizer, at)
        saved.append(at)
        if at == epoch and k == len(net.streams) - 1:
            raise Killed(f"killed after epoch {at}")
        return path

    monkeypatch.setattr(groupstate, "save_member", save_then_die)
    return saved


def assert_same_runs(expected, got):
    for a, b in zip(expected, got, strict=True):
        assert a.seed == b.seed and a.best_epoch == b.best_epoch
        assert [h["epoch"] for h in a.history] == [h["epoch"] for h in b.history]
        for x, y in zip(a.history, b.history, strict=True):
            assert y == pytest.approx(x, abs=1e-5, rel=0)
        assert b.test_uwa == pytest.approx(a.test_uwa, abs=1e-5) and a.confusion == b.confusion


def test_a_killed_group_resumes_every_member_from_its_last_epoch(
    make_cfg, data_dir, tmp_path, monkeypatch
):
    whole = [o.record for o in run_group(member_cfgs(make_cfg, data_dir, tmp_path / "whole"))]
    assert all(len(r.history) == 4 for r in whole)
    assert whole[0].history[-1]["train/loss"] < whole[0].history[0]["train/loss"]

    cfgs = member_cfgs(make_cfg, data_dir, tmp_path / "killed")
    saved = kill_after(monkeypatch, 2)
    with pytest.raises(Killed):
        run_group(cfgs)
    assert saved == [1, 1, 2, 2]
    for s in SEEDS:  # each member's folder holds its state after epoch 2, no record
        state = torch.load(groupstate.last_path(tmp_path / "killed" / f"seed{s}"),
                           weights_only=True)  # fmt: skip
        assert state["epoch"] == 2 and len(state["seed_group"]["history"]) == 2
        assert not (tmp_path / "killed" / f"seed{s}" / "result.json").exists()
    monkeypatch.undo()
    saved = kill_after(monkeypatch, 99)  # records the epochs saved by the rerun
    resumed = [o.record for o in run_group(cfgs)]
    assert saved == [3, 3, 4, 4]  # epochs 1-2 are not trained again
    assert_same_runs(whole, resumed)
    for cfg, record in zip(cfgs, resumed, strict=True):
        folder = tmp_path / "killed" / f"seed{cfg.seed}"
        assert record.resumed_from == str(groupstate.last_path(folder))
        # keep_checkpoints=best: the best weights stay, loadable as a single run's
        assert sorted(p.name for p in (folder / CHECKPOINT_DIR).iterdir()) == [BEST_CHECKPOINT]
        module = load_module(cfg, folder / CHECKPOINT_DIR / BEST_CHECKPOINT)
        assert module.network.classifier is not None


def test_a_partly_done_group_trains_only_the_rest_from_where_it_stopped(
    make_cfg, data_dir, tmp_path, monkeypatch
):
    whole = [o.record for o in run_group(member_cfgs(make_cfg, data_dir, tmp_path / "whole"))]
    cfgs = member_cfgs(make_cfg, data_dir, tmp_path / "part")
    run_group(cfgs[:1])  # seed 1 finished on its own
    kill_after(monkeypatch, 1)
    with pytest.raises(Killed):
        run_group(cfgs[1:])  # seed 2 killed after epoch 1
    monkeypatch.undo()
    saved = kill_after(monkeypatch, 99)
    outcomes = run_group(cfgs)
    assert [o.status for o in outcomes] == ["skipped", "done"]
    assert saved == [2, 3, 4]
    assert outcomes[1].record.seed_group == [2]
    assert_same_runs(whole[1:], [outcomes[1].record])


def test_a_group_checkpoint_is_values_only_and_a_foreign_one_starts_over(tmp_path):
    folder = tmp_path / "run"
    (folder / CHECKPOINT_DIR).mkdir(parents=True)
    (folder / "checkpoints.hash").write_text("abc\n")
    groupstate.last_path(folder).write_bytes(b"not a checkpoint")
    assert groupstate.load_member(folder, "abc", "fp") is None
    (aside,) = [p.name for p in groupstate.last_path(folder).parent.iterdir()
                if p.name.startswith("group-last.ckpt.corrupt")]  # fmt: skip
    assert re.fullmatch(r"group-last\.ckpt\.corrupt-\d{8}T\d{6}Z", aside), aside
    assert groupstate.load_member(folder, "other", "fp") is None
