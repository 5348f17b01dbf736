"""Where a study is stored (``tune.storage``) and how its URL is shown.

``sqlite`` (the default) is the study folder's own ``study.db``, run by one process at a time
(:mod:`selfcross.training.study`). Any other value is shared by several worker processes:

- an SQLAlchemy URL of a database server, ``postgresql://user:password@host/db`` (tested; the
  driver is psycopg2) or ``mysql+pymysql://...`` (Optuna supports it; untested here), opened
  as Optuna's RDB storage with its heartbeat: a worker that dies leaves a trial whose heartbeat
  stops, which another worker marks failed after the grace period and enqueues once again;
- ``journal:<file>``, Optuna's journal storage in one append-only file on a file system that
  every worker sees, for clusters without a database server (no heartbeat: a killed worker's
  trial is left running, see docs/tuning.md).

A URL is written to the study folder, ``best.json``, records and logs only as
:func:`public_url` gives it: without user name and password (libpq takes them from
``PGUSER``/``PGPASSWORD`` or ``~/.pgpass`` when the study is read back); an error names it as
:func:`masked_url` does (the password as ``***``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from selfcross.errors import ConfigError, SelfcrossError

SQLITE = "sqlite"
JOURNAL = "journal:"
ENV_STORAGE = "SELFCROSS_TUNE_STORAGE"
"""A storage URL with its credentials, used where ``tune.storage`` is that URL without them:
how SLURM jobs get the password (in the environment sbatch exports to them, never in the job's
command, which submitit writes to the study folder)."""
SECRET_QUERY_KEYS = ("password", "user", "passfile", "sslpassword")
"""Query parameters of a URL that carry credentials (libpq's names): never recorded."""


class StorageUnavailable(SelfcrossError):
    """The study's database went away (or refused us) during the study: one line naming it.
    The study is kept there; rerunning the command continues it when the database is back."""

    exit_code = 1


@dataclass(frozen=True)
class StorageSetting:
    """A parsed ``tune.storage``: ``kind`` is ``sqlite``, ``rdb`` or ``journal``; ``url`` is
    the URL as given (credentials included: never written anywhere); ``shown`` the URL without
    credentials (what is recorded); ``masked`` the URL with its password as ``***``."""

    kind: str
    url: str
    shown: str
    masked: str

    @property
    def shared(self) -> bool:
        """Whether several processes may run the study at once."""
        return self.kind != SQLITE


def _url(text: str):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(text)
    except (ArgumentError, ValueError):
        return None


def public_url(text: str) -> str:
    """``text`` without user name, password or credential query parameters
    (``postgresql://u:p@db:5432/x?sslmode=require`` -> ``postgresql://db:5432/x?sslmode=require``);
    a journal file or ``sqlite`` as given."""
    text = str(text)
    if text == SQLITE or text.startswith(JOURNAL):
        return text
    url = _url(text)
    if url is None:
        return "<not a URL>"
    from sqlalchemy.engine import URL

    query = {k: v for k, v in url.query.items() if k.lower() not in SECRET_QUERY_KEYS}
    bare = URL.create(url.drivername, host=url.host, port=url.port, database=url.database)
    return bare.update_query_dict(query).render_as_string(hide_password=False)


def masked_url(text: str) -> str:
    """``text`` with its password (in the URL or its query) shown as ``***``; what an error
    line names."""
    text = str(text)
    if text == SQLITE or text.startswith(JOURNAL):
        return text
    url = _url(text)
    if url is None:
        return "<not a URL>"
    query = {k: ("***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in url.query.items()}
    shown = url.set(query=query).render_as_string(hide_password=True)
    return shown.replace("%2A%2A%2A", "***")


def parse_storage(value) -> StorageSetting:
    """The storage of ``tune.storage=value`` (ConfigError naming it if it is no storage)."""
    text = str(value).strip()
    if text == SQLITE:
        return StorageSetting(SQLITE, text, text, text)
    if text.startswith(JOURNAL):
        path = text[len(JOURNAL) :]
        if not path:
            raise ConfigError("tune.storage=journal:: give the journal file, journal:/path/file")
        resolved = f"{JOURNAL}{Path(path).resolve()}"
        return StorageSetting("journal", resolved, resolved, resolved)
    url = _url(text)
    if url is None or not url.drivername:
        raise ConfigError(
            f"tune.storage={masked_url(text) if url else '<not a URL>'}: expected sqlite, "
            "journal:<file> or a database URL such as postgresql://user@host/db"
        )
    if url.drivername.startswith("sqlite"):
        raise ConfigError(
            f"tune.storage={masked_url(text)}: an SQLite file is one process's storage; use "
            "tune.storage=sqlite (the study folder's study.db) or a database server"
        )
    full = os.environ.get(ENV_STORAGE)
    if full and _url(full) is not None and public_url(full) == public_url(text):
        text = full  # the same storage, with its credentials
    return StorageSetting("rdb", text, public_url(text), masked_url(text))


def driver_line(err: BaseException) -> str:
    """The first line of the database driver's error behind ``err`` (Optuna and SQLAlchemy
    wrap it), or the error's type when it says nothing."""
    cause = err.__cause__ if err.__cause__ is not None else err  # Optuna's wrapped error
    reason = str(getattr(cause, "orig", None) or cause).strip().splitlines()
    return reason[0].strip() if reason else type(err).__name__


def _reason(err: BaseException, setting: StorageSetting) -> str:
    """The first line of a driver's error, any password in it masked."""
    line = driver_line(err)
    url = _url(setting.url)
    if url is not None and url.password:
        line = line.replace(str(url.password), "***")
    return line


def storage_errors() -> tuple[type[BaseException], ...]:
    """What a database that went away raises: SQLAlchemy's errors, and Optuna's
    ``StorageInternalError`` into which its RDB storage turns some of them."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, StorageInternalError)


def storage_failure(err: BaseException) -> BaseException | None:
    """The storage error behind ``err``, if any: itself, or one in its chain of causes and
    contexts (Optuna's ``optimize`` can end with another error raised while handling it: in
    5.0, an ``UnboundLocalError`` when telling a trial's state fails)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, storage_errors()):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


@contextmanager
def storage_said(setting: StorageSetting) -> Iterator[None]:
    """A storage that fails in the block (behind whatever Optuna raised) is the one-line
    :class:`StorageUnavailable` naming it; any other error goes through as it is."""
    try:
        yield
    except Exception as err:
        failure = storage_failure(err)
        if failure is None:
            raise
        raise StorageUnavailable(
            f"tune.storage={setting.masked}: the study's database failed "
            f"({_reason(failure, setting)}); the study is kept there: rerun the same command "
            "to continue when it is back"
        ) from None


def open_shared(setting: StorageSetting, heartbeat_s: int, grace_s: int):
    """Optuna's storage for a shared ``setting`` and the names of the studies in it. A
    database with a heartbeat (every ``heartbeat_s`` seconds; a trial whose heartbeat is
    older than ``grace_s`` is failed and retried once by Optuna's
    ``RetryHeartbeatStaleTrialCallback``). ConfigError naming the storage when it cannot be
    reached, before any work."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        if setting.kind == "journal":
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            path = Path(setting.url[len(JOURNAL) :])
            if not path.parent.is_dir():
                raise ConfigError(f"tune.storage={setting.shown}: no folder {path.parent}")
            storage = JournalStorage(JournalFileBackend(str(path)))
        else:
            storage = optuna.storages.RDBStorage(
                setting.url,
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=heartbeat_s,
                grace_period=grace_s,
                heartbeat_stale_trial_callback=(
                    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
                ),
            )
        return storage, optuna.get_all_study_names(storage)
    except ConfigError:
        raise
    except (*storage_errors(), ImportError, RuntimeError, ValueError, OSError) as err:
        raise ConfigError(
            f"tune.storage={setting.masked}: cannot open the study's storage "
            f"({_reason(err, setting)})"
        ) from None
