"""One experiment: train one model on one fold and seed, test its best-validation checkpoint.

Everything is built from the configuration with ``hydra.utils.instantiate``: the data module
from ``cfg.data``, the LightningModule with its network from ``cfg.model``, the trainer, its
callbacks and loggers. :func:`train_and_test` writes the run's :class:`RunRecord` to
``result.json``; a run already complete for the same configuration is skipped, an interrupted
one resumes from its last epoch (:mod:`selfcross.training.resume`). The run holds a lock on its
folder and only removes what it wrote (:mod:`selfcross.training.rundir`).

``run_test: false`` (the tuning runs, :mod:`selfcross.training.tuning`) skips ``trainer.test``:
after the data module's setup nothing reads the test split, and the record holds no test
metric, no test counts and no majority-class rate (all None).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

import selfcross
from selfcross.config import CONFIG_DIR, check_output_folder, resolved, validate
from selfcross.data.inputs import inputs_of, write_inputs
from selfcross.errors import Interrupted
from selfcross.manifest import feature_set_label, root_feature_set
from selfcross.models import EmotionRecognizer, count_parameters
from selfcross.training import lightning_io, resume, rundir, tracking
from selfcross.training.gpus import job_gpu, trainer_devices
from selfcross.training.record import RESULT_FILE, DataRecord, RunRecord, write_record
from selfcross.training.rng import RandomStreams
from selfcross.training.runtime import apply_run_settings
from selfcross.training.tuned import apply_tuned
from selfcross.utils import signals
from selfcross.utils.io import git_commit

log = logging.getLogger("selfcross")


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`train_and_test` did: ``done`` (trained, tested, written), ``skipped``
    (``result.json`` already held this configuration's record) or ``busy`` (another process
    holds the run's lock; no record)."""

    status: str
    record: RunRecord | None
    path: Path
    """The ``result.json`` holding ``record``."""


@dataclass(frozen=True)
class Timing:
    """What a fit and test took, and which epoch was tested."""

    train_seconds: float
    test_seconds: float
    best_epoch: int


def quiet_library_noise() -> None:
    """Drop Lightning's advertisement, its Ctrl-C notice (the run says it in one line) and a
    deprecation notice from inside Lightning."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

    class NoTips(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not any(
                s in str(record.msg)
                for s in ("Tip:", "Detected KeyboardInterrupt", "Received SIGTERM")
            )

    for name in ("lightning.pytorch.utilities.rank_zero",
                 "lightning.pytorch.trainer.connectors.signal_connector"):  # fmt: skip
        logging.getLogger(name).addFilter(NoTips())


WANDB_TARGET = "selfcross.training.tracking.make_wandb_logger"


def run_feature_set(cfg: DictConfig) -> dict:
    """The feature set of the run's data root (its manifest's ``features.set``; {}: the paper's
    features, and synthetic data)."""
    if cfg.data.get("synthetic"):
        return {}
    return root_feature_set(cfg.data.root)


def build_loggers(cfg: DictConfig, concurrent: bool = False) -> list:
    """The configured loggers; a W&B logger that cannot start is left out (None). The W&B
    logger is told the run's feature set (its group and tags name one other than the paper's)
    and whether other runs log at the same time in this process (``concurrent``)."""
    label = feature_set_label(run_feature_set(cfg))
    wandb = {"feature_set": label, **({"concurrent": True} if concurrent else {})}
    loggers = [
        instantiate(c, **wandb) if c.get("_target_") == WANDB_TARGET else instantiate(c)
        for c in (cfg.get("logger") or {}).values()
        if c
    ]
    return [lg for lg in loggers if lg is not None]


def build_trainer(cfg: DictConfig, loggers: list, gpu: int | None) -> L.Trainer:
    """The trainer with its callbacks; on GPU ``gpu`` when the launcher assigned one."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    callbacks.append(RandomStreams())  # a resumed run continues the interrupted one's draws
    overrides = trainer_devices(gpu)
    plugins = [lightning_io.AtomicCheckpointIO()]  # checkpoints written in their own folder
    return instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins, **overrides
    )


def keep_csv_history(loggers: list, ckpt_path: Path | None) -> None:
    """On a resume, keep the CSV rows of the epochs the checkpoint holds (a fresh run starts
    without ``metrics.csv``); rows of the unfinished epoch are dropped, as that epoch runs
    again (:func:`lightning_io.keep_csv_epochs`)."""
    last = None if ckpt_path is None else _best_epoch(str(ckpt_path)) - 1  # 0-based, as the CSV
    lightning_io.keep_csv_epochs(loggers, last)


def _best_path(trainer: L.Trainer) -> str:
    """The best-validation checkpoint: that of the checkpoint callback with a monitor ("" if
    none; the ``last_checkpoint`` callback has none)."""
    monitored = [c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)]
    return monitored[0].best_model_path if monitored else ""


def _best_epoch(checkpoint_path: str) -> int:
    """1-based epoch of a Lightning checkpoint, read without unpickling."""
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    return int(state["epoch"]) + 1


def train_and_test(cfg: DictConfig) -> RunOutcome:
    """One experiment; its record is also written to ``result.json`` in the output folder."""
    cfg = apply_tuned(cfg)  # experiment=tuned: the study's best settings
    validate(cfg)
    quiet_library_noise()
    out_dir = Path(cfg.paths.output_dir)
    check_output_folder("paths.output_dir", out_dir)
    rundir.check_owned(out_dir, bool(cfg.resume.get("allow_foreign_dir", False)))
    with rundir.job_lock(out_dir) as mine:
        if not mine:
            lock = out_dir / rundir.LOCK_FILE
            print(f"running in another process, skipped: {out_dir} ({lock} is held)", flush=True)
            return RunOutcome("busy", None, out_dir / RESULT_FILE)
        with signals.scoped():  # the phases below end with the run (a study goes on)
            return _train_and_test(cfg, out_dir)


def _train_and_test(cfg: DictConfig, out_dir: Path) -> RunOutcome:
    """:func:`train_and_test` once the run holds its folder's lock; each phase is declared
    for the line a signal prints (:mod:`selfcross.utils.signals`)."""
    signals.phase("while preparing the data", f"rerun the same command to resume ({out_dir})")
    digest = resume.config_hash(cfg)
    if cfg.resume.skip_complete:
        done = resume.finished_run(cfg, out_dir, digest)
        if done is not None:
            print(
                f"already complete, skipped: {out_dir / RESULT_FILE} ({_scores(done)})", flush=True
            )
            signals.finished(f"the run ({out_dir / RESULT_FILE})")
            return RunOutcome("skipped", done, out_dir / RESULT_FILE)
    else:  # a fresh run: a finished one of this configuration is moved aside, not resumed
        resume.start_over(out_dir, digest)
    rundir.supersede(out_dir, digest)
    resume.mark_checkpoints(out_dir, digest)  # first of all: the folder is a selfcross run

    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    # Data are generated, read and validated before anything else starts (W&B included).
    datamodule.prepare_data()
    datamodule.setup("fit")
    inputs = inputs_of(datamodule)  # read before training: a bad vocab.json stops it early
    fingerprint = str(datamodule.fold_data.fingerprint)
    ckpt_path = None
    if cfg.resume.from_checkpoint:  # only checkpoints of this configuration and these data
        ckpt_path = resume.resume_checkpoint(out_dir, digest, fingerprint)
    resume.mark_checkpoints(out_dir, digest, fingerprint)
    module: EmotionRecognizer = instantiate(cfg.model)
    apply_run_settings(module, cfg.get("threads"))
    n_params = count_parameters(module.network)
    loggers = build_loggers(cfg)
    keep_csv_history(loggers, ckpt_path)
    exit_code = 1
    try:
        for logger in loggers:
            logger.log_hyperparams({**resolved(cfg), "n_params": n_params, "config_hash": digest})
        with job_gpu() as gpu:
            trainer = build_trainer(cfg, loggers, gpu)
            timing = _fit_and_test(
                trainer, datamodule, module, ckpt_path, out_dir, test=run_test(cfg)
            )
        signals.phase("while writing the record", f"rerun the same command to resume ({out_dir})")
        record = _record(cfg, trainer, datamodule, module, timing, ckpt_path,
                         n_params=n_params, digest=digest, gpu=gpu)  # fmt: skip
        if record.test_wa is not None:
            tracking.log_test_report(loggers, record)
        write_inputs(out_dir, inputs)  # what selfcross.predict needs
        path = write_record(out_dir, record)  # atomic: absent or complete
        signals.finished(f"the run ({path})")
        exit_code = 0
    finally:
        tracking.finish(loggers, exit_code)
    resume.prune_checkpoints(out_dir, cfg.resume.keep_checkpoints, _best_path(trainer) or None)
    rate = (
        "" if record.majority_rate is None else f"majority-class rate {record.majority_rate:.3f}; "
    )
    print(
        f"{_scores(record)}  ({rate}{cfg.model.name} "
        f"{cfg.modality.name}, fold {cfg.fold}, seed {cfg.seed}; best epoch "
        f"{record.best_epoch} of {record.epochs}, {record.train_seconds:.0f} s)  "
        f"-> {path}",
        flush=True,
    )
    return RunOutcome("done", record, path)


def run_test(cfg: DictConfig) -> bool:
    """Whether the run evaluates the test split (``run_test``, default true; false for tuning)."""
    return bool(cfg.get("run_test", True))


def _scores(record: RunRecord) -> str:
    """``test WA .. UWA ..``, or the best validation UWA of a run that skipped the test."""
    if record.test_wa is None:
        val = "-" if record.val_uwa is None else f"{record.val_uwa:.3f}"
        return f"best validation UWA {val} (test split not evaluated: run_test=false)"
    return f"test WA {record.test_wa:.3f}  UWA {record.test_uwa:.3f}"


def _fit_and_test(trainer, datamodule, module, ckpt_path, out_dir, test: bool = True) -> Timing:
    """Fit (resuming from ``ckpt_path``), then test the best-validation checkpoint (unless
    ``test`` is false: then only the best epoch is read from the checkpoint)."""
    if ckpt_path is not None:
        log.info("Resuming from %s", ckpt_path)
    signals.phase(
        lambda: f"in epoch {trainer.current_epoch + 1}",
        f"rerun the same command to resume from the last finished epoch ({out_dir})",
    )
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException:
        raise Interrupted(
            f"interrupted by SIGTERM in epoch {trainer.current_epoch + 1}; rerun the same "
            f"command to resume from the last finished epoch ({out_dir})"
        ) from None
    except SystemExit:
        if not trainer.interrupted:  # Lightning turns Ctrl-C into exit status 1
            raise
        raise Interrupted(
            f"interrupted by Ctrl-C (SIGINT) in epoch {trainer.current_epoch + 1}; rerun the "
            f"same command to resume from the last finished epoch ({out_dir})",
            exit_code=130,
        ) from None
    train_seconds = time.perf_counter() - started
    if trainer.interrupted:
        raise Interrupted(f"training was interrupted; rerun to resume ({out_dir})")

    best_path = _best_path(trainer)
    started = time.perf_counter()
    if not test:
        best_epoch = _best_epoch(best_path) if best_path else _history_best(module)
        return Timing(train_seconds, 0.0, best_epoch)
    signals.phase("while testing the best checkpoint",
                  f"rerun the same command to resume ({out_dir})")  # fmt: skip
    if best_path:
        trainer.test(module, datamodule=datamodule, ckpt_path=best_path, weights_only=True)
        best_epoch = _best_epoch(best_path)
    else:
        log.warning("No checkpoint callback: testing the weights of the last epoch")
        trainer.test(module, datamodule=datamodule)
        best_epoch = len(module.history)
    test_seconds = time.perf_counter() - started
    return Timing(train_seconds, test_seconds, best_epoch)


def _record(
    cfg, trainer, datamodule, module, timing: Timing, ckpt_path, *, n_params, digest, gpu
) -> RunRecord:
    """The run's record from its configuration, data, module (test report, history) and
    trainer (device, precision)."""
    best_val = next((h for h in module.history if h["epoch"] == timing.best_epoch), {})
    class_names = list(cfg.data.class_names)
    if run_test(cfg):
        test = module.test_report
        data_summary = datamodule.summary()
        counts = data_summary["test"]["class_counts"]
        recall = dict(zip(class_names, test["recall"], strict=True))
        majority = max(counts) / sum(counts)
    else:  # the test split is not read: no test metric, no test counts
        test = dict.fromkeys(("wa", "uwa", "f1", "wf1", "loss", "confusion"))
        data_summary = _summary_without_test(datamodule)
        recall = majority = None
    return RunRecord(
        model=cfg.model.name,
        modality=cfg.modality.name,
        fold=cfg.fold,
        seed=cfg.seed,
        test_wa=test["wa"],
        test_uwa=test["uwa"],
        test_f1=test["f1"],
        test_loss=test["loss"],
        test_recall=recall,
        val_wa=best_val.get("val/wa"),
        val_uwa=best_val.get("val/uwa"),
        val_f1=best_val.get("val/f1"),
        val_loss=best_val.get("val/loss"),
        best_epoch=timing.best_epoch,
        epochs=len(module.history),
        majority_rate=majority,
        confusion=test["confusion"],
        class_names=class_names,
        data=DataRecord(
            name=cfg.data.name,
            preset=cfg.data.get("preset"),
            root=str(Path(str(cfg.data.root)).resolve()),
            fold_path=str(datamodule.fold_path),
            fingerprint=datamodule.fold_data.fingerprint,
            splits=data_summary,
            feature_set=run_feature_set(cfg),
            scheme=datamodule.scheme(),
        ),
        train_seconds=round(timing.train_seconds, 2),
        test_seconds=round(timing.test_seconds, 2),
        resumed_from=str(ckpt_path) if ckpt_path else None,
        device=str(trainer.strategy.root_device),
        precision=str(trainer.precision),
        version=selfcross.__version__,
        git_commit=git_commit(CONFIG_DIR.parent),
        history=module.history,
        n_params=n_params,
        config_hash=digest,
        gpu_slot=gpu,
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        config=resolved(cfg),
        test_wf1=test["wf1"],
        val_wf1=best_val.get("val/wf1"),
    )


def _history_best(module) -> int:
    """1-based epoch of the best validation UWA in the module's history (no checkpoints)."""
    scores = [h.get(module.best_metric, float("-inf")) for h in module.history]
    return 1 + max(range(len(scores)), key=scores.__getitem__) if scores else 0


def _summary_without_test(datamodule) -> dict:
    """The data module's per-split counts for train and dev only (the test split unread)."""
    fold = datamodule.fold_data
    n = datamodule.num_classes
    return {
        split: {
            "n": len(fold.splits[split]),
            "dropped_no_video": fold.splits[split].n_dropped,
            "class_counts": np.bincount(fold.splits[split].labels, minlength=n).tolist(),
        }
        for split in ("train", "dev")
    }
