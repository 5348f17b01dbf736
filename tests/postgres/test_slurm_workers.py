"""Tuning workers as SLURM jobs (``tune.launcher=slurm``) on the throwaway SLURM cluster and
PostgreSQL server: one job cancelled with ``scancel``, its trial retried by the other worker.
Marked ``slurm`` (``make test-slurm``, root), with the PostgreSQL fixture of this folder."""

from __future__ import annotations

import json
import os
import subprocess

import optuna
import pytest
from optuna.trial import TrialState

from selfcross.training import study as stored
from tests.conftest import REPO, SLURM_PARTITION
from tests.postgres.conftest import ENV, no_duplicate_settings, tune_command, wait_for

pytestmark = pytest.mark.slurm


def test_workers_as_slurm_jobs_finish_the_study_when_one_is_cancelled(
    slurm_cluster,
    postgres,
    tmp_path,
    data_dir,
):
    study = tmp_path / "slurm"
    launcher = {"partition": SLURM_PARTITION, "gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 1,
                "timeout_min": 10, "poll_s": 1}  # fmt: skip
    cmd = tune_command(study, data_dir, "trainer.max_epochs=4", "tune.n_trials=3",
                       "tune.workers=2", "tune.launcher=slurm", f"tune.storage='{postgres.url}'",
                       "hydra/launcher=slurm",
                       *(f"hydra.launcher.{k}={v}" for k, v in launcher.items()))  # fmt: skip
    log_path = tmp_path / "driver.log"
    with log_path.open("w") as log:
        driver = subprocess.Popen(
            cmd, cwd=REPO, env={**ENV, **os.environ}, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        ckpts = lambda: list((study / "trials").glob("*/fold1/checkpoints/last.ckpt"))  # noqa: E731
        wait_for(lambda: len(ckpts()) >= 2, 400, "both workers' first checkpoints", driver)
        line = next(x for x in log_path.read_text().splitlines() if " SLURM jobs: " in x)
        jobs = line.split(" SLURM jobs: ")[1].split(" (logs")[0].split(", ")
        assert len(jobs) == 2, line
        subprocess.run(["scancel", jobs[0]], check=True)
        rc = driver.wait(timeout=400)
    finally:
        driver.kill()
    out = log_path.read_text()
    assert rc == 0, out[-3000:]
    password = postgres.env["PG_LOCAL_PASSWORD"].encode()
    written = [p for p in study.rglob("*") if p.is_file()]  # jobs' pickles, scripts, logs too
    assert any(p.suffix == ".pkl" for p in written)
    assert not [p for p in written if password in p.read_bytes()]
    found = optuna.load_study(study_name="slurm", storage=postgres.url).get_trials()
    retried = [t for t in found if "retry_of" in t.user_attrs]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert found[retried[0].user_attrs["retry_of"]].state == TrialState.FAIL
    assert stored.n_counted(found) >= 3
    no_duplicate_settings(found)
    best = json.loads((study / "best.json").read_text())
    assert best["n_finished"] >= 3 and "@" not in best["storage"]
