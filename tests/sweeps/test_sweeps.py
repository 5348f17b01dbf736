"""Sweeps: presets, the selfcross sweeper, the local-GPU and SLURM launchers."""

from __future__ import annotations

import itertools
import threading
import time
from contextlib import ExitStack

import pytest
from hydra.utils import instantiate

from selfcross.config import CONFIG_DIR, validate
from selfcross.errors import ConfigError
from selfcross.training.gpus import acquire_slot
from tests.conftest import run_cli
from tests.helpers.foldkit import SHAPES, make_fold
from tests.helpers.sweepkit import TINY, hydra_cfg, results


def test_sweep_runs_each_job_once_in_readable_folders(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "model=self,cross", "modality=TV,TA", *TINY, f"hydra.sweep.dir={sweep}",
            f"paths.data_dir={tmp_path / 'data'}"]  # fmt: skip
    first = run_cli("selfcross.run", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    found = results(sweep)
    assert set(found) == {(m, mod, 1, 1) for m in ("self", "cross") for mod in ("TV", "TA")}
    for (model, modality, fold, seed), r in found.items():
        assert (
            r["path"] == sweep / model / modality / f"fold{fold}" / f"seed{seed}" / "result.json"
        )
    stamps = {k: r["path"].stat().st_mtime_ns for k, r in found.items()}

    again = run_cli("selfcross.run", *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 jobs to run, 4 already complete" in again.stdout + again.stderr
    assert {k: r["path"].stat().st_mtime_ns for k, r in results(sweep).items()} == stamps


def test_invalid_combination_by_hand_launches_nothing(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("selfcross.run", "-m", "model=self,cross", "modality=A,VA", *TINY,
                   f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 4 jobs are invalid, nothing was launched")
    assert "model=cross" in last and "modality=A" in last and "Traceback" not in proc.stderr
    assert not sweep.exists()


def test_failed_job_is_reported_and_the_others_complete(tmp_path):
    make_fold(tmp_path / "folds" / "fold01")  # fold02 is missing
    shapes = [f"data.shapes.{m}.{k}={v}" for m, s in SHAPES.items() for k, v in s.items()
              if v is not None]  # fmt: skip
    sweep = tmp_path / "sweep"
    proc = run_cli("selfcross.run", "-m", "fold=1,2", "data=iemocap",
                   f"data.root={tmp_path / 'folds'}", *shapes, *TINY,
                   f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 2 jobs failed")
    assert "fold02: fold directory is missing" in last
    assert f"log: {sweep / 'self' / 'TVA' / 'fold2' / 'seed1' / 'run.log'})" in last
    assert set(results(sweep)) == {("self", "TVA", 1, 1)}


def test_table_presets_hold_the_papers_sweeps():
    def grid(preset):
        cfg = hydra_cfg(f"experiment={preset}")
        params = cfg.hydra.sweeper.params
        models, modalities = params.model.split(","), params.modality.split(",")
        folds = params.fold.split(",")
        assert params.seed == "range(1,11)" and folds == ["1", "2", "3", "4", "5"]
        valid = []
        for model, modality in itertools.product(models, modalities):
            try:
                validate(hydra_cfg(f"model={model}", f"modality={modality}"), need_data=False)
                valid.append((model, modality))
            except ConfigError:
                assert cfg.hydra.sweeper.skip_invalid
        return cfg, valid

    cfg, cells = grid("table1")
    assert sorted(cells) == sorted(
        [("self", m) for m in ["T", "V", "A", "TV", "TA", "VA", "TVA"]]
        + [("cross", m) for m in ["TV", "TA", "VA", "TVA"]]
    )
    assert len(cells) * 5 * 10 == 550
    assert cfg.sweep_name == "paper-synthetic-small"
    cfg, cells = grid("table2")
    assert {m for m, _ in cells} == {"self", "cross", "self_nosp", "cross_nosp", "cross_self"}
    assert {mod for _, mod in cells} == {"TVA"}
    assert hydra_cfg("experiment=table1", "data=iemocap").sweep_name == "paper-iemocap"
    cfg, cells = grid("table3")  # Table 1's folder: its Self and Cross runs are reused
    models = ["self", "cross", "self_transformer", "cross_transformer"]
    assert sorted(cells) == sorted(itertools.product(models, ["TV", "TA", "VA", "TVA"]))
    assert len(cells) * 5 * 10 == 800 and cfg.sweep_name == "paper-synthetic-small"


def test_slurm_launcher_config_composes_and_instantiates():
    cfg = hydra_cfg(
        "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=90",
        "hydra.launcher.gpus_per_node=2", "hydra.launcher.array_parallelism=16",
    )  # fmt: skip
    launcher_cfg = cfg.hydra.launcher
    assert launcher_cfg._target_.endswith("selfcross_plugins.slurm.SelfcrossSlurmLauncher")
    assert (launcher_cfg.partition, launcher_cfg.timeout_min) == ("gpu", 90)
    assert (launcher_cfg.gpus_per_node, launcher_cfg.array_parallelism) == (2, 16)
    launcher = instantiate(launcher_cfg)  # rejects unknown or ill-typed settings
    assert launcher.params["partition"] == "gpu" and launcher.params["max_num_timeout"] == 3
    with pytest.raises(Exception, match="partiton"):  # a typo is not silently ignored
        hydra_cfg("hydra/launcher=slurm", "hydra.launcher.partiton=gpu")
    with pytest.raises(Exception, match="timeout_min"):  # nor a value of the wrong type
        hydra_cfg("hydra/launcher=slurm", "hydra.launcher.timeout_min=soon")


def test_the_sweeper_names_the_hydra_that_constraints_pin():
    from hydra_plugins.selfcross_plugins.sweeper import TESTED_HYDRA

    pins = (CONFIG_DIR.parent / "constraints.txt").read_text().splitlines()
    assert f"hydra-core=={TESTED_HYDRA}" in pins


def test_local_gpus_launcher_sizes_the_pool_from_the_gpu_count():
    from hydra_plugins.selfcross_plugins.launcher import plan_slots

    assert plan_slots("auto", 2, visible=4) == (4, 8)
    assert plan_slots(3, 1, visible=0) == (3, 3)  # a faked count
    assert plan_slots("auto", 2, visible=0) == (0, 2)  # CPU only: jobs_per_gpu at once
    with pytest.raises(ValueError, match="jobs_per_gpu"):
        plan_slots("auto", 0, visible=1)
    cfg = hydra_cfg("hydra/launcher=local_gpus", "hydra.launcher.gpus=3",
                    "hydra.launcher.jobs_per_gpu=2")  # fmt: skip
    launcher = instantiate(cfg.hydra.launcher)
    # (Hydra loads plugin modules a second time, so compare the class by name)
    assert type(launcher).__name__ == "LocalGpusLauncher"
    assert launcher.gpus == 3 and launcher.joblib["n_jobs"] == 6


def test_parallel_jobs_share_the_cores():
    from selfcross.training.runtime import threads_per_job

    assert threads_per_job(1, cores=16) == 16
    assert threads_per_job(8, cores=16) == 2
    assert threads_per_job(4, cores=2) == 1


def test_gpu_slots_spread_jobs_over_gpus_and_wait_when_full(tmp_path):
    with ExitStack() as stack:
        slots = [stack.enter_context(acquire_slot(tmp_path, gpus=2, jobs_per_gpu=2))
                 for _ in range(4)]  # fmt: skip
        assert [s.gpu for s in slots] == [0, 1, 0, 1]
        assert sorted(s.index for s in slots) == [0, 1, 2, 3]
        got = []

        def fifth():
            with acquire_slot(tmp_path, gpus=2, jobs_per_gpu=2, poll_seconds=0.05) as slot:
                got.append(slot)

        waiter = threading.Thread(target=fifth)
        waiter.start()
        time.sleep(0.3)
        assert not got  # every slot is held
    waiter.join(timeout=5)
    assert got and got[0].index == 0  # the first slot freed


@pytest.mark.slow
def test_local_gpus_launcher_runs_jobs_in_parallel(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("selfcross.run", "-m", "seed=1,2", *TINY, "hydra/launcher=local_gpus",
                   "hydra.launcher.gpus=2", "hydra.launcher.jobs_per_gpu=1",
                   f"paths.data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = results(sweep)
    assert set(found) == {("self", "TVA", 1, 1), ("self", "TVA", 1, 2)}
    assert {r["gpu_slot"] for r in found.values()} <= {0, 1}  # a faked GPU each, on the CPU
    assert (sweep / ".gpu_slots").is_dir()


def test_slurm_driver_ends_for_jobs_that_slurm_forgot(tmp_path, monkeypatch):
    """The launcher's wait: a requeued job is waited for, a vanished one fails with its log,
    an unanswered ``squeue`` proves nothing (the local cluster tests it for real)."""
    from types import SimpleNamespace

    from hydra.core.utils import JobReturn, JobStatus

    from hydra_plugins.selfcross_plugins import slurm

    def job(job_id):
        folder = tmp_path / job_id
        folder.mkdir()
        paths = SimpleNamespace(folder=folder, result_pickle=folder / "result.pkl",
                                stdout=folder / "log.out", stderr=folder / "log.err")  # fmt: skip
        finished = [JobReturn(status=JobStatus.COMPLETED)]
        return SimpleNamespace(job_id=job_id, paths=paths, results=lambda: finished)

    done, forgotten = job("7_0"), job("7_1")
    answers = iter([
        {"7_0": "RUNNING", "7_1": "RUNNING"},
        None,  # squeue failed: no conclusion
        {"7_1": "PENDING"},  # requeued (7_0 finished meanwhile)
        {"7_1": "CANCELLED"},  # gone: the grace starts
        {},
        {},
    ])  # fmt: skip
    polls = []

    def squeue(ids):
        assert ids == ["7"]
        polls.append(1)
        if len(polls) == 2:
            done.paths.result_pickle.touch()
        return next(answers)

    clock = iter(range(0, 1000, 10))  # each look at the jobs takes 10 s
    monkeypatch.setattr(slurm, "squeue_states", squeue)
    monkeypatch.setattr(slurm, "sacct_state", lambda job_id: None)  # accounting off
    monkeypatch.setattr(slurm, "monotonic", lambda: next(clock))
    monkeypatch.setattr(slurm, "sleep", lambda s: None)
    launcher = slurm.SelfcrossSlurmLauncher(vanished_grace_s=15, poll_s=1, max_num_timeout=0)
    first, second = launcher.wait([done, forgotten], [["seed=1"], ["seed=2"]])
    assert first.status == JobStatus.COMPLETED and first.log_path == str(done.paths.stdout)
    assert second.status == JobStatus.FAILED and second.overrides == ["seed=2"]
    assert str(second._return_value) == "SLURM job 7_1 ended without a result (state CANCELLED)"
    assert second.log_path == str(forgotten.paths.stderr)
    assert len(polls) == 6  # CANCELLED at t=30, still gone at t=40, failed at t=50 (>= 15 s)


def test_slurm_driver_waits_for_a_requeue_that_shows_failed(tmp_path, monkeypatch):
    """Between a requeued job's step ending and SLURM listing it PENDING again it can show
    FAILED for longer than the vanished grace: a new "Requeued job" line in its log gives it
    the requeue grace; a failure after the requeue, with no new line, gets the short one."""
    from types import SimpleNamespace

    from hydra.core.utils import JobReturn, JobStatus

    from hydra_plugins.selfcross_plugins import slurm

    folder = tmp_path / "8_0"
    folder.mkdir()
    paths = SimpleNamespace(folder=folder, result_pickle=folder / "result.pkl",
                            stdout=folder / "log.out", stderr=folder / "log.err")  # fmt: skip
    finished = [JobReturn(status=JobStatus.COMPLETED)]
    job = SimpleNamespace(job_id="8_0", paths=paths, results=lambda: finished)
    paths.stdout.write_text("epoch 1\n")
    # t=0 running; then the requeue: its log line, FAILED for 60 s (> the 15 s grace), PENDING,
    # RUNNING, and the result
    answers = iter([{"8_0": "RUNNING"}] + [{"8_0": "FAILED"}] * 7
                   + [{"8_0": "PENDING"}, {"8_0": "RUNNING"}])  # fmt: skip
    polls = []

    def squeue(ids):
        polls.append(1)
        if len(polls) == 2:
            paths.stdout.write_text("epoch 1\nRequeued job 8_0 (2 remaining timeouts)\n")
        if len(polls) == 10:
            paths.result_pickle.touch()
        return next(answers)

    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(slurm, "squeue_states", squeue)
    monkeypatch.setattr(slurm, "sacct_state", lambda job_id: None)
    monkeypatch.setattr(slurm, "monotonic", lambda: next(clock))
    monkeypatch.setattr(slurm, "sleep", lambda s: None)
    launcher = slurm.SelfcrossSlurmLauncher(vanished_grace_s=15, requeue_grace_s=100, poll_s=1,
                                            max_num_timeout=0)  # fmt: skip
    (ret,) = launcher.wait([job], [["seed=1"]])
    assert ret.status == JobStatus.COMPLETED and len(polls) == 10

    # seen queued after its requeue, then FAILED with no new requeue line: the short grace
    paths.result_pickle.unlink()
    answers = iter([{"8_0": "PENDING"}, {"8_0": "FAILED"}, {"8_0": "FAILED"}, {"8_0": "FAILED"}])
    polls.clear()
    polls.extend([1] * 20)  # no more log writes or results from the hook above
    (ret,) = launcher.wait([job], [["seed=1"]])
    assert ret.status == JobStatus.FAILED
    assert str(ret._return_value) == "SLURM job 8_0 ended without a result (state FAILED)"
    # requeue grace with no requeue line would wait past t=100: it failed at the third FAILED
    assert len(polls) == 24
