"""A study's stored trials (``study.db``): which count towards ``tune.n_trials``, which were
interrupted and are retried, and the folder each trial's runs are kept in.

Read by the study loop (:mod:`selfcross.training.tuning`), ``best.json``
(:mod:`selfcross.training.tuned`) and the tuning table (:mod:`selfcross.report.tuning`), none of
which needs the others for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selfcross.errors import DataError, WriteError

log = logging.getLogger("selfcross")

STUDY_DB = "study.db"
"""The study's Optuna storage (SQLite) in its folder."""
LOCK_FILE = ".study.lock"
"""Held by the one process running the study."""
TRIALS_DIR = "trials"
"""The folder of the trials' runs: ``trials/<NNN>/fold<k>/``."""


def interrupted(trials) -> set[int]:
    """Numbers of the trials that were interrupted and are retried by a later trial (ours, or
    Optuna's retry of a trial whose heartbeat stopped, even while it waits to be run)."""
    ours = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    return ours | {n for t in trials for n in t.system_attrs.get("retry_history", ())}


def n_counted(trials) -> int:
    """Finished trials that count towards ``n_trials`` (an interrupted one is retried)."""
    from optuna.trial import TrialState

    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    retried = interrupted(trials)
    return sum(t.state in finished and t.number not in retried for t in trials)


def trial_folder(trial) -> str:
    """The trial's folder name under ``trials/``: its number, or that of the interrupted trial
    it retries (so the finished folds of that one are kept)."""
    return str(trial.user_attrs.get("folder") or f"{trial.number:03d}")


def retry_interrupted(study) -> int:
    """Mark every RUNNING trial failed (``interrupted``) and enqueue its parameters again, in its
    folder. Only one process runs a study (its lock), so a RUNNING trial is one whose process
    died. Returns how many were found."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(
            trial.params,
            user_attrs={"folder": trial_folder(trial), "retry_of": trial.number},
        )
        log.info("Trial %d was interrupted: retried with the same parameters", trial.number)
    return len(stale)


def open_storage(db: Path):
    """The Optuna storage of a study's ``study.db`` and the names of the studies it holds; a
    file that is no readable study database (garbage, a cut-off copy, another program's file, a
    schema this Optuna cannot read) is a DataError naming it, not a traceback from SQLAlchemy."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{Path(db).resolve()}")
        return storage, optuna.get_all_study_names(storage)
    except (SQLAlchemyError, RuntimeError, ValueError) as err:
        reason = str(getattr(err, "orig", None) or err).splitlines()[0]
        if no_room(reason):
            raise full_db(db, reason) from None
        raise DataError(
            db, f"cannot be read as an Optuna study ({reason}); restore it, or move it aside to "
            "start the study over"
        ) from None  # fmt: skip


FULL_DISK = ("database or disk is full", "disk i/o error")
"""SQLite's words for a write that found no room (an I/O error is how it sees a failed write)."""


def no_room(reason: str) -> bool:
    return any(words in reason.lower() for words in FULL_DISK)


def full_db(db: Path, reason: str) -> WriteError:
    """The one-line error of a ``study.db`` that could not be written: SQLite rolled the
    transaction back, so the study is as it was before it."""
    from selfcross.utils.atomic import free_space

    db = Path(db).absolute()
    return WriteError(db, f"{reason}; the study is kept, rerun once there is room",
                      free_space(db.parent))  # fmt: skip


@contextmanager
def db_said(db: Path) -> Iterator[None]:
    """A ``study.db`` write that finds the disk full, anywhere in the block (behind whatever
    Optuna raised while handling it), is :func:`full_db`'s one line, not a traceback."""
    from selfcross.training.storage import driver_line, storage_failure

    try:
        yield
    except Exception as err:
        failure = storage_failure(err)
        line = driver_line(failure) if failure is not None else ""
        if not no_room(line):
            raise
        raise full_db(db, line) from None
