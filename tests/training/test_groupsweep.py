"""``seed_group`` on the command line: which seeds a job trains, the sweeper's groups (one job
per group, on the basic and local_gpus launchers), member folders, ``auto``'s size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hydra_plugins.selfcross_plugins.sweeper import group_jobs
from selfcross.errors import ConfigError
from selfcross.training import resume
from selfcross.training.groupplan import (
    auto_size,
    form_groups,
    group_bytes,
    member_seeds,
    sweep_member_dir,
)
from tests.conftest import run_cli

TINY = ["debug=fast", "logger=none", "trainer.enable_progress_bar=false", "model=self",
        "modality=TV"]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "seeds"),
    [(None, None), (1, [5]), (3, [5, 6, 7]), ([5, 9, 2], [5, 9, 2])],
)
def test_member_seeds(value, seeds):
    assert member_seeds(OmegaConf.create({"seed": 5, "seed_group": value})) == seeds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "seed_group=0: expected null, a count >= 1"),
        (True, "seed_group=True: expected"),
        ("two", "seed_group=two: expected"),
        ([6, 5], "the first seed must be seed=5"),
        ([5, 5], "a seed appears twice"),
        ("auto", "seed_group=auto: sizes the groups of a sweep"),
    ],
)
def test_a_bad_seed_group_is_one_line(value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        member_seeds(OmegaConf.create({"seed": 5, "seed_group": value}))


def test_groups_come_from_the_seed_axis_of_each_cell():
    jobs = [["model=self", "seed=3"], ["model=cross", "seed=1"], ["model=self", "seed=1"],
            ["model=self", "seed=2"], ["model=cross", "seed=2"]]  # fmt: skip
    seeds = [int(j[1].split("=")[1]) for j in jobs]
    assert form_groups(seeds, [tuple(j[:1]) for j in jobs], 2) == [[2, 3], [0], [1, 4]]
    grouped, members = group_jobs([[*j, "seed_group=2"] for j in jobs], seeds, 2)
    assert grouped == [
        ["model=self", "seed=1", "seed_group=[1,2]"],
        ["model=self", "seed=3", "seed_group=[3]"],
        ["model=cross", "seed=1", "seed_group=[1,2]"],
    ]
    assert members == [2, 1, 2]


def test_a_sweep_members_folder_is_its_seeds_subfolder():
    subdir = "self/TV/fold1/seed{}".format
    own = Path("/s/sweep/self/TV/fold1/seed1")
    assert sweep_member_dir(own, subdir, 1, 7) == Path("/s/sweep/self/TV/fold1/seed7")
    with pytest.raises(ConfigError, match="does not end with it"):
        sweep_member_dir(Path("/s/elsewhere"), subdir, 1, 7)


def test_auto_is_the_largest_group_that_fits_the_budget(make_cfg):
    cfg = make_cfg(*TINY, "data.preset=tiny")
    three = group_bytes(cfg, 3)
    assert group_bytes(cfg, 1) < group_bytes(cfg, 2) < three
    assert auto_size(cfg, three) == 3
    assert auto_size(cfg, three - 1) == 2
    assert auto_size(cfg, 10 * three, largest=4) == 4
    with pytest.raises(ConfigError, match="seed_group=auto: one member needs"):
        auto_size(cfg, group_bytes(cfg, 1) // 2)


def test_the_memory_probe_leaves_no_tensor_behind(make_cfg):
    import gc

    import torch

    def live() -> int:
        gc.collect()
        # type(), not isinstance(): a dead weakref.proxy among the objects raises on the latter
        return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))

    cfg = make_cfg(*TINY, "data.preset=tiny")
    first = group_bytes(cfg, 2)
    before = live()
    # a probe that kept its graph (a saved output holding its own node) kept every saved tensor
    assert group_bytes(cfg, 2) == first and live() == before


def _records(root: Path) -> dict[int, dict]:
    found = {}
    for path in root.rglob("result.json"):
        record = json.loads(path.read_text())
        found[record["seed"]] = {"path": path, **record}
    return found


@pytest.mark.parametrize("launcher", ["basic", "local_gpus"])
def test_a_sweep_trains_each_cells_seeds_in_groups_and_counts_members(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=1,2,3", "seed_group=2", *TINY, f"hydra.sweep.dir={sweep}",
            f"paths.data_dir={tmp_path / 'data'}", f"hydra/launcher={launcher}"]  # fmt: skip
    if launcher == "local_gpus":
        args.append("hydra.launcher.jobs_per_gpu=1")
    first = run_cli("selfcross.run", *args)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-3000:]
    assert "the 3 runs train as 2 jobs" in out
    assert "finished: 3 run, 0 failed" in out
    found = _records(sweep)
    assert sorted(found) == [1, 2, 3]
    for seed, record in found.items():
        assert record["path"] == sweep / "self" / "TV" / "fold1" / f"seed{seed}" / "result.json"
        assert record["seed_group"] == ([1, 2] if seed < 3 else [3])
    # a member's record is its single run's: the same hash, so a rerun skips all three
    single = next(p for p in sweep.rglob("seed1/.hydra/config.yaml"))
    cfg = OmegaConf.load(single)
    cfg.seed_group = None
    assert found[1]["config_hash"] == resume.config_hash(cfg)
    again = run_cli("selfcross.run", *args)
    assert "0 jobs to run, 3 already complete" in again.stdout + again.stderr


def test_a_single_run_group_writes_each_seeds_own_folder(tmp_path):
    args = ["seed=3", "seed_group=2", *TINY, f"paths.data_dir={tmp_path / 'data'}"]
    proc = run_cli("selfcross.run", *args, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    found = _records(tmp_path / "outputs")
    assert sorted(found) == [3, 4]
    for seed, record in found.items():
        folder = record["path"].parent
        assert folder.parent.name == f"self-TV-fold1-seed{seed}"
        assert folder.name == record["config_hash"] and record["seed_group"] == [3, 4]
    again = run_cli("selfcross.run", *args, cwd=tmp_path)
    assert again.stdout.count("already complete, skipped") == 2
    refused = run_cli("selfcross.run", "seed_group=[4,3]", *TINY, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: seed_group=[4, 3]: the first seed must be seed=1"
    )


def test_a_failed_group_counts_each_of_its_members(tmp_path):
    from tests.helpers.foldkit import SHAPES, make_fold

    make_fold(tmp_path / "folds" / "fold01")  # fold02 is missing: its group fails
    shapes = [f"data.shapes.{m}.{k}={v}" for m, s in SHAPES.items() for k, v in s.items()
              if v is not None]  # fmt: skip
    proc = run_cli("selfcross.run", "-m", "fold=1,2", "seed=1,2", "seed_group=2", "data=iemocap",
                   f"data.root={tmp_path / 'folds'}", *shapes, *TINY[:3],
                   f"hydra.sweep.dir={tmp_path / 'sweep'}")  # fmt: skip
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "the 4 runs train as 2 jobs" in out and "finished: 2 run, 2 failed" in out
    assert proc.stderr.strip().splitlines()[-1].startswith("error: 2 of 4 jobs failed")
    assert sorted(_records(tmp_path / "sweep")) == [1, 2]


def test_auto_in_a_sweep_measures_once_and_a_list_is_refused(make_cfg, monkeypatch):
    from hydra_plugins.selfcross_plugins import sweeper
    from selfcross.training import groupplan

    cfg = make_cfg(*TINY, "data.preset=tiny", "seed_group=auto")
    assert groupplan.memory_budget() > 0
    monkeypatch.setattr(groupplan, "memory_budget", lambda device=None: group_bytes(cfg, 2))
    assert sweeper.sweep_group_size(cfg) == 2
    cfg.seed_group = 4
    assert sweeper.sweep_group_size(cfg) == 4
    cfg.seed_group = [1, 2]
    with pytest.raises(ConfigError, match="a sweep takes a count or auto, not a list"):
        sweeper.sweep_group_size(cfg)
