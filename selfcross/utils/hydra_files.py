"""Hydra's own files of a job, and storage errors of the libraries' writes, in one line.

Hydra writes a job's ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` in place, and
outside the job's own error handling: a full disk there left a truncated file and ended the
whole sweep with a traceback and no summary. Importing this module (``selfcross.config`` does,
and so does every sweep worker, with the job's task) puts :func:`_save_hydra_config` in Hydra's
place: the files are written atomically (``atomic.py``), and a failure is kept for the job,
which raises it first (:func:`raise_hydra_write_error`) and fails with its one line while the
sweep goes on. Built on ``hydra.core.utils._save_config``, tested with hydra-core 1.3.8. A
log file the disk has no room for loses its lines quietly (:func:`_log_file_error`), instead of
a traceback per line.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from selfcross.errors import SelfcrossError, WriteError
from selfcross.utils import atomic

_HYDRA_WRITE_ERRORS: list[SelfcrossError] = []
"""Failed writes of Hydra's own job files, kept for the job to report (below)."""


def _save_hydra_config(cfg, filename: str, output_dir) -> None:
    """Hydra's ``hydra.core.utils._save_config``, atomic, and never raising a full disk: Hydra
    calls it for a job's ``.hydra/*.yaml`` outside the job's own error handling, where a failure
    ends the whole sweep with a traceback. The error is kept instead, and the job raises it
    first (:func:`raise_hydra_write_error`): it fails with its one line like any other job."""
    try:
        atomic.save_yaml(cfg, Path(output_dir) / filename)
    except WriteError as err:
        _HYDRA_WRITE_ERRORS.append(err)


def raise_hydra_write_error() -> None:
    """The first failed write of this job's Hydra files (``.hydra/*.yaml``), if any."""
    errors = list(_HYDRA_WRITE_ERRORS)
    _HYDRA_WRITE_ERRORS.clear()
    if errors:
        raise errors[0]


def _install() -> None:
    """Install :func:`_save_hydra_config` in Hydra (``hydra.core.utils``, tested with
    hydra-core 1.3.8). Done when this module is imported: a sweep's worker process (joblib,
    SLURM) imports it with the job's task, before Hydra writes the job's files."""
    import hydra.core.utils as hydra_utils

    if callable(getattr(hydra_utils, "_save_config", None)):
        hydra_utils._save_config = _save_hydra_config
    if logging.FileHandler.handleError is not _log_file_error:
        logging.FileHandler.handleError = _log_file_error


def _log_file_error(handler: logging.Handler, record: logging.LogRecord) -> None:
    """A log file (a job's ``run.log``) that the disk has no room for loses the line quietly:
    the run's own one-line error says what happened (logging would print a traceback for each
    line); any other logging error is reported as logging does."""
    err = sys.exc_info()[1]
    if isinstance(err, OSError) and err.errno in atomic.DISK_ERRORS:
        return
    logging.Handler.handleError(handler, record)


class RunLogHandler(logging.FileHandler):
    """A job's ``run.log`` (``hydra.job_logging.handlers.file`` in ``conf/config.yaml``): opened
    at its first line, not when Hydra configures logging. Hydra opens the file outside the job's
    error handling, so a disk with no room (or no inode) for it ended the whole sweep with a
    traceback; here the lines are lost quietly while there is no room, the job goes on and its
    own writes say what failed, one line each."""

    def __init__(self, filename, mode: str = "a", encoding=None, errors=None) -> None:
        super().__init__(filename, mode, encoding, delay=True, errors=errors)

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None:
            try:
                self.stream = self._open()
            except OSError as err:
                if err.errno not in atomic.DISK_ERRORS:
                    raise
                return
        super().emit(record)


def disk_message(err: OSError) -> str:
    """A storage error of a library's write, as :class:`~selfcross.errors.WriteError`'s line:
    the file (a move names its destination second), else the run's folder, and the free space
    there. selfcross's own writes raise ``WriteError`` themselves (``utils/atomic.py``)."""
    where = err.filename2 or err.filename
    if where is not None:
        return str(atomic.write_error(err, where))
    from hydra.core.hydra_config import HydraConfig

    folder = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path()
    folder = folder.absolute()
    return f"cannot write a file in {folder}: {err.strerror} ({atomic.free_space(folder)})"


_install()
