"""A seed group's members write the run folders and records their single runs would write."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from selfcross.errors import ConfigError
from selfcross.training import resume
from selfcross.training.grouprun import check_one_cell, run_group
from selfcross.training.record import RESULT_FILE


def member_cfgs(make_cfg, data_dir, tmp_path, seeds=(1, 2), *extra):
    return [
        make_cfg(f"paths.data_dir={data_dir}", "debug=fast", "trainer.max_epochs=2",
                 f"seed={s}", f"paths.output_dir={tmp_path / f'seed{s}'}", *extra)
        for s in seeds
    ]  # fmt: skip


def test_each_member_writes_its_own_record_and_a_rerun_trains_only_what_is_missing(
    make_cfg, data_dir, tmp_path
):
    cfgs = member_cfgs(make_cfg, data_dir, tmp_path)
    outcomes = run_group(cfgs)
    assert [o.status for o in outcomes] == ["done", "done"]
    for cfg, outcome in zip(cfgs, outcomes, strict=True):
        assert outcome.path == tmp_path / f"seed{cfg.seed}" / RESULT_FILE
        on_disk = json.loads(outcome.path.read_text())
        assert on_disk["seed"] == cfg.seed and on_disk["seed_group"] == [1, 2]
        assert on_disk["config_hash"] == resume.config_hash(cfg)  # a single run's hash
        assert len(on_disk["history"]) == 2 and on_disk["test_uwa"] > on_disk["majority_rate"]
        assert on_disk["history"][1]["train/loss"] < on_disk["history"][0]["train/loss"]
    first, second = (o.record for o in outcomes)
    assert first.history != second.history
    # a rerun skips both; with one record gone, only that member is trained
    assert [o.status for o in run_group(cfgs)] == ["skipped", "skipped"]
    (tmp_path / "seed2" / RESULT_FILE).unlink()
    again = run_group(cfgs)
    assert [o.status for o in again] == ["skipped", "done"]
    assert again[1].record.seed_group == [2]


def test_a_group_is_one_cell():
    from omegaconf import OmegaConf

    base = {"seed": 1, "paths": {"output_dir": "a"}, "model": {"name": "self"}, "fold": 1}
    one = OmegaConf.create(base)
    other_seed = OmegaConf.create({**base, "seed": 2, "paths": {"output_dir": "b"}})
    check_one_cell([one, other_seed])
    other_fold = OmegaConf.create({**base, "seed": 2, "fold": 2})
    with pytest.raises(ConfigError, match="seeds 1 and 2 differ in fold"):
        check_one_cell([one, other_fold])
    with pytest.raises(ConfigError, match="a seed appears twice"):
        check_one_cell([one, one])


@pytest.fixture
def restore_threads():
    threads, tf32 = torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32
    yield
    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32


def test_a_group_applies_its_runs_threads_and_tf32_and_says_compile_is_not_applied(
    make_cfg, data_dir, tmp_path, restore_threads, caplog
):
    torch.set_num_threads(2)
    torch.backends.cuda.matmul.allow_tf32 = True
    cfgs = member_cfgs(make_cfg, data_dir, tmp_path, (1, 2), "threads=1", "model.tf32=false",
                       "model.compile=true", "trainer.max_epochs=1")  # fmt: skip
    with caplog.at_level(logging.INFO, logger="selfcross"):
        assert [o.status for o in run_group(cfgs)] == ["done", "done"]
    assert torch.get_num_threads() == 1 and not torch.backends.cuda.matmul.allow_tf32
    said = caplog.text
    assert "Backend: tf32=False, cpu_threads=1" in said
    assert "model.compile: not applied to a seed group" in said
