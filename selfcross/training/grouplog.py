"""What a seed group member writes besides its record, so that its folder holds what its single
run's holds: the configured loggers' files (CSV ``csv/metrics.csv`` and ``hparams.yaml``, a
W&B run of its own), ``inputs.json``, and in a job's other members' folders Hydra's job files
(``.hydra/``) and the job's log.

A single run's loggers are fed by Lightning during training. A group has one process for K
runs, and W&B keeps one run per process at a time: each member's loggers are written when the
member is finished, one member after the other, from its history, with the rows Lightning
writes (per epoch one validation row with ``<best_metric>_best`` and one training row with
``lr``, at the epoch's last global step; then one test row). A killed group's members have
their loggers written by the rerun that finishes them, from the history their checkpoints
keep.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from selfcross.config import resolved
from selfcross.training import tracking
from selfcross.training.experiment import build_loggers, keep_csv_history
from selfcross.training.record import RunRecord
from selfcross.utils import atomic


def epoch_rows(history: Sequence[dict], train: Sequence[dict], steps_per_epoch: int,
               best_metric: str) -> Iterator[tuple[int, dict]]:  # fmt: skip
    """(global step, metrics) of each epoch's validation and training rows, as Lightning logs
    them: ``epoch`` 0-based, the step the epoch's last batch ends on (counted from 0)."""
    best = -math.inf
    for entry, train_values in zip(history, train, strict=True):
        epoch, step = entry["epoch"] - 1, entry["epoch"] * steps_per_epoch - 1
        val = {k: v for k, v in entry.items() if k.startswith("val/")}
        if best_metric in val:
            best = max(best, val[best_metric])
            val[f"{best_metric}_best"] = best
        yield step, {**val, "epoch": epoch}
        yield step, {"lr": entry["lr"], **train_values, "epoch": epoch}


def test_row(record: RunRecord) -> dict:
    """The test row's metrics (per-class recall by class name, as the module logs them)."""
    row = {f"test/{k}": getattr(record, f"test_{k}") for k in ("wa", "uwa", "f1", "wf1", "loss")}
    recall = record.test_recall or {}
    row.update({f"test/recall_{name}": r for name, r in recall.items() if r is not None})
    return {k: v for k, v in row.items() if v is not None}


def write_loggers(cfg: DictConfig, record: RunRecord, train: Sequence[dict],
                  steps_per_epoch: int, best_metric: str) -> None:  # fmt: skip
    """The member's configured loggers, written from its finished run."""
    loggers = build_loggers(cfg)
    keep_csv_history(loggers, None)  # a fresh metrics.csv, written whole (lightning_io)
    exit_code = 1
    try:
        for logger in loggers:
            logger.log_hyperparams(
                {**resolved(cfg), "n_params": record.n_params, "config_hash": record.config_hash}
            )
            for step, metrics in epoch_rows(record.history, train, steps_per_epoch, best_metric):
                logger.log_metrics(metrics, step=step)
            if record.test_wa is not None:
                epochs = len(record.history)
                logger.log_metrics({**test_row(record), "epoch": epochs}, epochs * steps_per_epoch)
            logger.save()
        if record.test_wa is not None:
            tracking.log_test_report(loggers, record)
        exit_code = 0
    finally:
        tracking.finish(loggers, exit_code)


def write_job_files(job_dir: Path, member: DictConfig, out_dir: Path, overrides: list[str]):
    """Hydra's job files in a member's folder that is not the job's: its configuration as
    Hydra saves it (unresolved), the job's ``hydra.yaml``, and the overrides of its seed."""
    hydra_dir = Path(out_dir) / ".hydra"
    source = Path(job_dir) / ".hydra" / "hydra.yaml"
    atomic.save_yaml(member, hydra_dir / "config.yaml")
    if source.is_file():
        atomic.write_text(hydra_dir / "hydra.yaml", source.read_text())
    atomic.save_yaml(OmegaConf.create(list(overrides)), hydra_dir / "overrides.yaml")


def member_overrides(overrides: Sequence[str], seed: int) -> list[str]:
    """The job's overrides as the member's single run would have them."""
    keep = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] not in ("seed", "seed_group")]
    return [*keep, f"seed={seed}"]


@contextmanager
def mirrored_log(log_name: str, dirs: Sequence[Path]) -> Iterator[None]:
    """The job's log lines also in ``<dir>/<log_name>`` of each other member's folder (the
    job's log is the log of every member it trains)."""
    root = logging.getLogger()
    source = next((h for h in root.handlers if isinstance(h, logging.FileHandler)), None)
    with ExitStack() as stack:
        for folder in dirs:
            Path(folder).mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(Path(folder) / log_name)
            if source is not None:
                handler.setFormatter(source.formatter)
                handler.setLevel(source.level)
            root.addHandler(handler)
            stack.callback(handler.close)
            stack.callback(root.removeHandler, handler)
        yield
