"""Lightning's own writes, made atomic in the run's folder (``utils/atomic.py``).

- :class:`AtomicCheckpointIO`: Lightning stages a checkpoint in the system's temporary folder
  and moves it into place (a copy across file systems: a small ``/tmp`` failed every run, and a
  failed copy left a truncated ``last.ckpt``). This plugin writes the checkpoint beside its
  destination and renames it: the previous good ``last.ckpt`` stays until the new one is whole.
- :class:`AtomicCsvWriter`: ``csv/metrics.csv`` and ``csv/hparams.yaml`` rewritten whole and
  renamed, instead of appended in place (a full disk left half a row).

Lightning saves the CSV log after each logging call, before the epoch's checkpoints are written,
so a checkpoint never holds an epoch that ``metrics.csv`` lacks, and a run resumed after a
failure keeps one row per epoch of its record's history (``experiment.keep_csv_history``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO

from selfcross.utils import atomic

METRICS_FILE = ExperimentWriter.NAME_METRICS_FILE


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written in their own folder, fsynced and renamed into place."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        buffer = io.BytesIO()  # torch's own writer hides the errno of a failed write
        torch.save(checkpoint, buffer)
        with atomic.atomic_file(path, "wb") as handle:
            handle.write(buffer.getbuffer())


class AtomicCsvWriter(ExperimentWriter):
    """The CSV logger's writer; it keeps an existing ``metrics.csv`` (the run decides what a
    resumed run keeps of it) and writes each file whole."""

    def _check_log_dir_exists(self) -> None:
        """Lightning deletes ``metrics.csv`` here; a resumed run rewrites it instead."""

    def log_hparams(self, params: dict[str, Any]) -> None:
        self.hparams.update(params)
        path = Path(self.log_dir) / self.NAME_HPARAMS_FILE
        with atomic.atomic_path(path) as tmp:
            save_hparams_to_yaml(tmp, self.hparams)

    def save(self) -> None:
        if not self.metrics:
            return
        self._record_new_keys()
        write_rows(Path(self.metrics_file_path), self.metrics_keys, self.metrics, keep=True)
        self.metrics = []


def write_rows(path: Path, header: list[str], rows: list[dict], keep: bool = False) -> None:
    """``rows`` as the CSV file ``path`` (after its present rows when ``keep``), atomically."""
    if keep and path.is_file():
        with path.open(newline="") as file:
            rows = [*csv.DictReader(file), *rows]
    with atomic.atomic_file(path, "w", sync=False, newline="") as file:  # after every log call
        writer = csv.DictWriter(file, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def start_csv_writer(logger: CSVLogger) -> AtomicCsvWriter:
    """The logger's writer, an :class:`AtomicCsvWriter` (Lightning's would delete the old
    ``metrics.csv`` and append in place)."""
    if not isinstance(logger._experiment, AtomicCsvWriter):  # Lightning's attribute
        logger._experiment = AtomicCsvWriter(log_dir=logger.log_dir)
    return logger._experiment


def keep_csv_epochs(loggers: list, last_epoch: int | None) -> None:
    """Each CSV logger's ``metrics.csv`` cut to the rows of epochs up to ``last_epoch``
    (0-based, as the CSV counts; None: a fresh start, no row of another attempt kept), and its
    writer an :class:`AtomicCsvWriter` that appends after them. The file is rewritten
    atomically (Lightning's own writer deletes it first): a failure here leaves the old rows for
    the next attempt."""
    for logger in loggers:
        if not isinstance(logger, CSVLogger):
            continue
        path = Path(logger.log_dir) / METRICS_FILE
        rows, header = [], []
        if last_epoch is not None and path.is_file():
            with path.open(newline="") as file:
                reader = csv.DictReader(file)
                header = list(reader.fieldnames or [])
                rows = [r for r in reader if r.get("epoch") and float(r["epoch"]) <= last_epoch]
        writer = start_csv_writer(logger)
        if rows:
            write_rows(path, header, rows)
            writer.metrics_keys = header
        elif path.is_file():
            path.unlink()
