"""What a sweep says: a job found finished when it is launched counts as already complete, and
a large sweep says that it is checking its jobs instead of a minute of silence."""

from __future__ import annotations

import logging

from hydra_plugins.selfcross_plugins.sweeper import Progress
from tests.conftest import run_cli
from tests.helpers.sweepkit import TINY, results


def test_a_job_finished_before_its_launch_counts_as_already_complete(tmp_path):
    """Both jobs of ``seed=1,1`` are the same run: the checks find neither finished, the first
    trains it and the second finds it complete when launched (as when another process finished
    it meanwhile). Before, the summary counted both as run."""
    sweep = tmp_path / "sweep"
    proc = run_cli("selfcross.run", "-m", "modality=TV", "seed=1,1", *TINY,
                   f"hydra.sweep.dir={sweep}", f"paths.data_dir={tmp_path / 'data'}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "2 jobs to run, 0 already complete" in output
    assert (
        "finished: 1 run, 0 failed, 0 running in another process, 1 already complete, "
        "0 invalid skipped"
    ) in output
    assert set(results(sweep)) == {("self", "TV", 1, 1)}


def test_a_large_sweep_says_it_is_checking_its_jobs(tmp_path):
    proc = run_cli("selfcross.run", "-m", "model=cross", "modality=A", "seed=range(1,101)",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}")  # fmt: skip
    assert proc.returncode == 2
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert "Checking the 100 jobs of the sweep before launching any" in lines[0]
    assert lines[-1].startswith("error: 100 of 100 jobs are invalid, nothing was launched")


def test_progress_lines_come_every_few_seconds(monkeypatch, caplog):
    now = [0.0]
    monkeypatch.setattr(Progress, "FIRST_AFTER", 3)
    caplog.set_level(logging.INFO, logger="hydra_plugins.selfcross_plugins.sweeper")
    progress = Progress(5)
    progress.clock = lambda: now[0]
    progress.last = 0.0
    for seconds in (0, 4, 11, 12, 22):
        now[0] = seconds
        progress.step()
    assert [r.getMessage() for r in caplog.records] == [
        "Checking the 5 jobs of the sweep before launching any",
        "Checked 2 of 5 jobs",
        "Checked 4 of 5 jobs",
    ]
    caplog.clear()
    Progress(2)  # a small sweep says nothing
    assert caplog.records == []
