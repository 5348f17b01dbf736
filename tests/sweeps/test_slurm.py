"""Sweeps on a real single-node SLURM cluster (``scripts/slurm-local.sh``), through the CLI.

Marked ``slurm``: ``make test-slurm`` runs them, ``make test`` does not. The session fixture
starts a throwaway cluster (as root) and stops it; the SLURM packages are installed with
apt-get only when ``CI=true`` or ``SELFCROSS_SLURM_INSTALL=1``, otherwise their absence skips
the tests (under CI it fails them). The cluster has no accounting, so ``sacct`` fails as on
many small clusters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, SLURM_PARTITION, run_cli
from tests.helpers.foldkit import SHAPES, make_fold

pytestmark = pytest.mark.slurm

TINY = ["debug=fast", "logger=none", "trainer.enable_progress_bar=false", "threads=1"]


def launcher(**extra) -> list[str]:
    """``hydra/launcher=slurm`` sized for the local cluster; ``extra`` overrides settings."""
    settings = {"partition": SLURM_PARTITION, "gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 1,
                "timeout_min": 5, "poll_s": 1, "vanished_grace_s": 5, **extra}  # fmt: skip
    return ["hydra/launcher=slurm", *(f"hydra.launcher.{k}={v}" for k, v in settings.items())]


def results(root: Path) -> dict[int, dict]:
    """result.json under root, by seed."""
    return {(r := json.loads(p.read_text()))["seed"]: {"path": p, **r}
            for p in root.rglob("result.json")}  # fmt: skip


def run_dir(sweep: Path, seed: int) -> Path:
    return sweep / "self" / "TVA" / "fold1" / f"seed{seed}"


def slurm(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def job_id(sweep: Path, index: int) -> str:
    """SLURM id of the sweep's job ``index``, from submitit's folders: ``.submitit/<id>`` for
    one job, ``.submitit/<array id>_<index>`` for the jobs of an array."""
    ids = [p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]
    assert len(ids) == 1, ids
    in_array = f"{ids[0]}_{index}"
    return in_array if (sweep / ".submitit" / in_array).is_dir() else ids[0]


def wait_for(predicate, timeout: float, what: str, driver: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while not predicate():
        if driver is not None and driver.poll() is not None:
            pytest.fail(f"the driver exited ({driver.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)


def start_driver(*args: str, log: Path) -> subprocess.Popen:
    """The sweep command in the background, its output in ``log``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "selfcross.run", *args], cwd=REPO,
                                env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def assert_complete_history(result: dict, epochs: int) -> None:
    assert result["epochs"] == epochs
    assert [h["epoch"] for h in result["history"]] == list(range(1, epochs + 1))


def test_a_sweep_of_four_jobs_writes_four_results(slurm_cluster, tmp_path, data_dir):
    sweep = tmp_path / "sweep"
    proc = run_cli("selfcross.run", "-m", "seed=1,2,3,4", *TINY, *launcher(),
                   f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = results(sweep)
    assert set(found) == {1, 2, 3, 4}
    assert all(found[s]["path"] == run_dir(sweep, s) / "result.json" for s in found)
    assert all(r["resumed_from"] is None for r in found.values())
    assert len(list((sweep / ".submitit").glob("*_[0-3]/*_log.out"))) == 4  # one array


def test_a_job_at_its_time_limit_is_requeued_and_resumes(slurm_cluster, tmp_path, data_dir):
    # SLURM warns a job of its time limit with submitit's signal (`--signal=USR2@...`), and
    # submitit counts a signal in a job of less than 10 minutes as a time-out: sending it now
    # is the time limit, minus the minutes of waiting.
    # A requeued job can show a terminal state (FAILED: its step ended with status 130) for a
    # few seconds before SLURM lists it PENDING again; on a loaded machine that outlasted the
    # other tests' 5 s grace, so this one waits as long as a requeue can take here.
    sweep, epochs = tmp_path / "sweep", 8
    log = tmp_path / "driver.log"
    driver = start_driver("-m", "seed=5", *TINY, f"trainer.max_epochs={epochs}",
                          *launcher(max_num_timeout=2, vanished_grace_s=30),
                          f"paths.data_dir={data_dir}",
                          f"hydra.sweep.dir={sweep}", log=log)  # fmt: skip
    try:
        last = run_dir(sweep, 5) / "checkpoints" / "last.ckpt"
        wait_for(last.exists, 300, "the first epoch's checkpoint", driver)
        job = job_id(sweep, 0)
        slurm("scancel", "--signal=USR2", job)
        out = sweep / ".submitit" / job / f"{job}_0_log.out"
        wait_for(lambda: "Requeued job" in out.read_text(), 60, "the requeue", driver)
        # SLURM holds a requeued job back for two minutes (BeginTime); let it start now
        wait_for(lambda: "PENDING" in slurm("squeue", "-h", "-o", "%T", "-j", job), 60,
                 "the job to be pending again", driver)  # fmt: skip
        slurm("scontrol", "update", f"JobId={job}", "StartTime=now")
        assert driver.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        driver.kill()
    text = out.read_text()  # SLURM appends the requeued run's log
    assert "this job is timed-out" in text and "1 remaining timeouts" in text
    result = results(sweep)[5]
    assert result["resumed_from"] == str(last)
    assert_complete_history(result, epochs)


def test_a_cancelled_job_ends_the_driver_and_a_rerun_completes_only_it(
    slurm_cluster, tmp_path, data_dir
):
    sweep, epochs = tmp_path / "sweep", 10
    args = ["-m", "seed=6,7", *TINY, f"trainer.max_epochs={epochs}",
            *launcher(array_parallelism=1), f"paths.data_dir={data_dir}",
            f"hydra.sweep.dir={sweep}"]  # fmt: skip
    log = tmp_path / "driver.log"
    driver = start_driver(*args, log=log)
    try:
        last = run_dir(sweep, 7) / "checkpoints" / "last.ckpt"
        wait_for(last.exists, 400, "the second job's first checkpoint", driver)
        slurm("scancel", job_id(sweep, 1))
        cancelled = time.monotonic()
        rc = driver.wait(timeout=120)
        waited = time.monotonic() - cancelled
    finally:
        driver.kill()
    out = log.read_text()
    # ended by itself, without accounting: SLURM's state, the grace of 5 s and a poll or two
    assert rc == 1, out[-3000:]
    assert waited < 60, f"the driver took {waited:.0f} s to notice"
    last_line = out.strip().splitlines()[-1]
    assert last_line.startswith("error: 1 of 2 jobs failed"), out[-3000:]
    assert "seed=7" in last_line and "ended without a result" in last_line
    assert f"log: {sweep / '.submitit'}" in last_line and "1 run, 1 failed" in out
    assert set(results(sweep)) == {6}
    first = results(sweep)[6]["path"].stat().st_mtime_ns

    again = run_cli("selfcross.run", *args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "1 jobs to run, 1 already complete" in again.stdout + again.stderr
    found = results(sweep)
    assert found[6]["path"].stat().st_mtime_ns == first  # not redone
    assert found[7]["resumed_from"] == str(last)
    assert_complete_history(found[7], epochs)


@pytest.mark.parametrize(
    ("signum", "status", "cancel"),
    [(signal.SIGTERM, 143, True), (signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)],
    ids=["sigterm", "ctrl-c", "sigterm-jobs-go-on"],
)
def test_a_stopped_driver_summarises_and_cancels_its_jobs_and_a_rerun_resumes(
    slurm_cluster, tmp_path, data_dir, signum, status, cancel
):
    sweep, epochs = tmp_path / "sweep", 10
    args = ["-m", "seed=11,12", *TINY, f"trainer.max_epochs={epochs}",
            *launcher(array_parallelism=1, cancel_on_interrupt=cancel),
            f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    log = tmp_path / "driver.log"
    driver = start_driver(*args, log=log)
    try:
        last = run_dir(sweep, 11) / "checkpoints" / "last.ckpt"
        wait_for(last.exists, 400, "the first job's first checkpoint", driver)
        array = job_id(sweep, 0).split("_")[0]
        driver.send_signal(signum)
        rc = driver.wait(timeout=60)
        out = log.read_text()
        listed = lambda: slurm("squeue", "-h", "-o", "%i", "-j", array).split()  # noqa: E731
        if not cancel:
            assert rc == status, out[-3000:]
            assert f"2 SLURM jobs of array {array} go on (cancel_on_interrupt=false)" in out
            assert listed(), "the jobs were cancelled although told to go on"
            return
        wait_for(lambda: not listed(), 90, "SLURM to end the cancelled jobs")
    finally:
        driver.kill()
        if not cancel:
            slurm("scancel", array)
    assert rc == status, out[-3000:]
    assert not list(sweep.rglob("result.json"))  # a cancelled job writes no result
    assert "Traceback" not in out
    assert f"Cancelled 2 unfinished SLURM jobs ({array}_0 {array}_1)" in out, out[-3000:]
    assert "interrupted: 0 of 2 jobs finished" in out.strip().splitlines()[-1], out[-3000:]
    assert last.exists()
    if signum != signal.SIGTERM:
        return
    again = run_cli("selfcross.run", *args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    found = results(sweep)
    assert set(found) == {11, 12}
    assert found[11]["resumed_from"] == str(last)
    assert_complete_history(found[11], epochs)


def test_a_failed_job_is_reported_with_its_log(slurm_cluster, tmp_path):
    make_fold(tmp_path / "folds" / "fold01")  # fold02 is missing: that job fails
    shapes = [f"data.shapes.{m}.{k}={v}" for m, s in SHAPES.items() for k, v in s.items()
              if v is not None]  # fmt: skip
    sweep = tmp_path / "sweep"
    proc = run_cli("selfcross.run", "-m", "fold=1,2", "data=iemocap",
                   f"data.root={tmp_path / 'folds'}", *shapes, *TINY, *launcher(),
                   f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 2 jobs failed"), last
    assert "fold02: fold directory is missing" in last
    log = Path(last.split("log: ")[1].split(")")[0])
    assert log.parent.parent == sweep / ".submitit" and log.name.endswith("_1_0_log.out")
    assert "fold02: fold directory is missing" in log.read_text()
    assert [r["fold"] for r in results(sweep).values()] == [1]


def test_jobs_slurm_refuses_end_the_sweep_with_one_line(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("selfcross.run", "-m", "seed=1,2", *TINY, *launcher(partition="gpu"),
                   f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        "error: sbatch refused the sweep's jobs: "
        "Batch job submission failed: Invalid partition name specified"
    )
    assert "Traceback" not in proc.stderr and not list(sweep.rglob("result.json"))
