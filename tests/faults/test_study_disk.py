"""A study's ``study.db`` that finds the disk full: one line naming it and the free space there,
exit status 2, the study kept as it was (SQLite rolls the failed transaction back), and the same
command, once there is room, continues it.

SQLite writes its own file, so ``selfcross.utils.atomic`` cannot stage it. The test without a
marker makes SQLite itself run out of room (``PRAGMA max_page_count``: SQLite's own "database or
disk is full", raised where Optuna writes); the one marked ``faults`` creates the study on a
64 KiB tmpfs (root, as in CI: ``make test-faults``).
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import optuna
import pytest
from optuna.trial import TrialState

from selfcross.errors import WriteError
from selfcross.training import study as stored
from selfcross.training import tuning
from tests.conftest import run_cli
from tests.helpers.diskkit import FREE
from tests.helpers.tunekit import fake_run, only_space, tune_overrides

SPACE = only_space("{model.optimizer.lr: {type: float, low: 0.0001, high: 0.01, log: true}}")


def full_db_line(db) -> str:
    return (rf"cannot write {re.escape(str(db))}: database or disk is full; the study is kept, "
            rf"rerun once there is room \({FREE}{re.escape(str(db.parent))}\)")  # fmt: skip


@contextmanager
def sqlite_at_its_size():
    """Every new SQLite connection may not grow its database beyond the pages it has now."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def cap(connection, _record):
        cursor = connection.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {max(pages, 1)}")
        cursor.close()

    event.listen(Engine, "connect", cap)
    try:
        yield
    finally:
        event.remove(Engine, "connect", cap)


def test_a_study_db_that_fills_up_is_one_line_and_the_rerun_continues(tmp_path, data_dir):
    """Fails on the code before: Optuna's OperationalError (or the UnboundLocalError Optuna 5
    raises while handling it) ended tune with a traceback."""
    overrides = tune_overrides(tmp_path, data_dir, *SPACE)
    run = fake_run(lambda cfg: cfg.model.optimizer.lr * 10)
    tuning.run_study([*overrides, "tune.n_trials=1"], run=run)
    db = (tmp_path / "study" / stored.STUDY_DB).absolute()
    with sqlite_at_its_size(), pytest.raises(WriteError) as full:
        tuning.run_study([*overrides, "tune.n_trials=200"], run=run)
    assert re.fullmatch(full_db_line(db), str(full.value)), str(full.value)
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{db}")
    reached = len(study.trials)
    assert 1 < reached < 200  # it stopped on the full database, after some trials

    outcome = tuning.run_study([*overrides, f"tune.n_trials={reached + 2}"], run=run)
    trials = optuna.load_study(study_name="study", storage=f"sqlite:///{db}").trials
    assert stored.n_counted(trials) == reached + 2
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= reached + 1
    assert outcome.best is not None


@pytest.mark.faults
def test_a_study_created_on_a_full_tmpfs_is_one_line_and_continues_with_room(tmp_path):
    from tests.helpers.diskkit import small_tmpfs

    with small_tmpfs(tmp_path / "disk", "64k") as disk:
        args = ["model=cross", "modality=TA", "debug=fast", "logger=none", "tune.n_trials=1",
                "trainer.enable_progress_bar=false", f"paths.data_dir={tmp_path / 'data'}",
                f"hydra.sweep.dir={disk / 'study'}"]  # fmt: skip
        proc = run_cli("selfcross.tune", *args)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
        line = proc.stderr.strip().splitlines()[-1]
        assert re.fullmatch("error: " + full_db_line(disk / "study" / stored.STUDY_DB), line), line
        import subprocess

        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        again = run_cli("selfcross.tune", *args)
        assert again.returncode == 0, again.stderr[-3000:]
        assert (disk / "study" / "best.json").is_file()
