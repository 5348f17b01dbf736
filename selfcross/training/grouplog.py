"""What a seed group member writes besides its record, so that its folder holds what its single
run's holds: the configured loggers' files (CSV ``csv/metrics.csv`` and ``hparams.yaml``, a
W&B run of its own), ``inputs.json``, and in a job's other members' folders Hydra's job files
(``.hydra/``) and the job's log.

A single run's loggers are fed by Lightning during training; a member's are fed by the group
after every epoch (:class:`MemberLog`) with the rows Lightning writes (per epoch one validation
row with ``<best_metric>_best`` and one training row with ``lr``, at the epoch's last global
step; at the end one test row), so a member's ``metrics.csv`` grows epoch by epoch, rewritten
atomically each time. Each member keeps its own W&B run open beside the others'
(``reinit="create_new"``, :func:`selfcross.training.tracking.make_wandb_logger`). An epoch's rows
are written before the member's ``group-last.ckpt``: a killed group's rerun keeps the rows of the
epochs its checkpoint holds and drops the rest, which that run trains and writes again, so no row
appears twice. The job's log gets one line per epoch for the group (:func:`progress_line`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from selfcross.config import resolved
from selfcross.training import lightning_io, tracking
from selfcross.training.experiment import build_loggers
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


class MemberLog:
    """A member's configured loggers, fed after every epoch it trains, as Lightning feeds a
    single run's. ``done_epochs``: the epochs its checkpoint holds (a resumed member; their CSV
    rows are kept, later ones dropped)."""

    def __init__(self, cfg: DictConfig, n_params: int, digest: str, steps_per_epoch: int,
                 best_metric: str, done_epochs: int = 0) -> None:  # fmt: skip
        self.steps, self.best_metric = steps_per_epoch, best_metric
        self.loggers = build_loggers(cfg, concurrent=True)
        lightning_io.keep_csv_epochs(self.loggers, done_epochs - 1 if done_epochs else None)
        for logger in self.loggers:
            logger.log_hyperparams({**resolved(cfg), "n_params": n_params, "config_hash": digest})

    def epoch(self, history: Sequence[dict], train: Sequence[dict]) -> None:
        """The rows of the member's last epoch (``history[-1]``), saved now."""
        rows = list(epoch_rows(history, train, self.steps, self.best_metric))[-2:]
        for logger in self.loggers:
            for step, metrics in rows:
                logger.log_metrics(metrics, step=step)
            logger.save()

    def finish(self, record: RunRecord) -> None:
        """The test row and test report of the finished member; its runs closed."""
        if record.test_wa is not None:
            epochs = len(record.history)
            for logger in self.loggers:
                logger.log_metrics({**test_row(record), "epoch": epochs}, epochs * self.steps)
                logger.save()
            tracking.log_test_report(self.loggers, record)
        self.close(0)

    def close(self, exit_code: int = 1) -> None:
        """Close the member's W&B run (also after a failure); a second call does nothing."""
        loggers, self.loggers = self.loggers, []
        tracking.finish(loggers, exit_code)


def progress_line(epoch: int, members: Sequence, metric: str) -> str:
    """The group's line for ``epoch``: each member's ``metric`` this epoch, or why it has none
    (stopped early, or resumed past this epoch), and whether it stopped now."""
    parts = []
    for m in members:
        entry = m.history[-1] if m.history and m.history[-1]["epoch"] == epoch else None
        if entry is None:
            parts.append(f"seed {m.seed} {'stopped' if m.stopped else 'from its checkpoint'}")
        else:
            stop = ", stops" if m.stopped else ""
            parts.append(f"seed {m.seed} {entry.get(metric, float('nan')):.4f}{stop}")
    return f"group epoch {epoch}: {metric} " + "; ".join(parts)


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
