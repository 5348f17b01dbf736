"""Train one model on one fold and seed, test its best-validation-UWA checkpoint.

    python -m selfcross.run                                  # tri-modal self, synthetic data
    python -m selfcross.run model=cross modality=TV fold=3 seed=7
    python -m selfcross.run -m modality=TV,TA,VA,TVA model=self,cross   # a sweep

Every run writes ``result.json`` into its output directory. A run whose ``result.json`` exists
for the same configuration is skipped; one that was interrupted resumes from its last epoch.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

import selfcross
from selfcross import resume, tracking
from selfcross.config import (
    CONFIG_DIR,
    check_group_choices,
    compose,
    one_line,
    resolved,
    user_errors,
    validate,
)
from selfcross.errors import Interrupted
from selfcross.fastpath import apply_fast_paths
from selfcross.gpus import job_gpu
from selfcross.models import EmotionRecognizer, count_parameters
from selfcross.resume import RESULT_FILE
from selfcross.utils.io import git_commit, write_json_atomic

log = logging.getLogger("selfcross")


def quiet_library_noise() -> None:
    """Drop Lightning's advertisement and a deprecation notice from inside Lightning."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

    class NoTips(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Tip:" not in str(record.msg)

    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(NoTips())


def build_module(cfg: DictConfig) -> EmotionRecognizer:
    """The LightningModule with its injected network, from the config alone."""
    return EmotionRecognizer(
        network=instantiate(cfg.model.network),
        optimizer=instantiate(cfg.model.optimizer),
        scheduler=instantiate(cfg.model.scheduler) if cfg.model.get("scheduler") else None,
        scheduler_monitor=cfg.model.scheduler_monitor,
        best_metric=cfg.monitor.metric,
        class_names=list(cfg.data.class_names),
    )


def build_loggers(cfg: DictConfig) -> list:
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    return [lg for lg in loggers if lg is not None]


def build_trainer(cfg: DictConfig, loggers: list, gpu: int | None) -> L.Trainer:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    overrides = {}
    if gpu is not None and torch.cuda.is_available():
        overrides = {"accelerator": "gpu", "devices": [gpu]}
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **overrides)


def _best_epoch(checkpoint_path: str) -> int:
    """1-based epoch of a Lightning checkpoint, read without unpickling."""
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    return int(state["epoch"]) + 1


def train_and_test(cfg: DictConfig) -> dict:
    """One experiment; returns its result (also written to ``result.json``)."""
    validate(cfg)
    quiet_library_noise()
    out_dir = Path(cfg.paths.output_dir)
    digest = resume.config_hash(cfg)
    if cfg.resume.skip_complete:
        done = resume.completed_result(out_dir, digest)
        if done is not None:
            print(
                f"already complete, skipped: {out_dir / RESULT_FILE} "
                f"(test WA {done['test_wa']:.3f}  UWA {done['test_uwa']:.3f})",
                flush=True,
            )
            return {**done, "status": "skipped"}
    ckpt_path = resume.resume_checkpoint(out_dir, digest) if cfg.resume.from_checkpoint else None
    resume.mark_checkpoints(out_dir, digest)

    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    # Data are generated, read and validated before anything else starts (W&B included).
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg)
    apply_fast_paths(cfg, module)
    n_params = count_parameters(module.network)
    loggers = build_loggers(cfg)
    exit_code = 1
    try:
        for logger in loggers:
            logger.log_hyperparams({**resolved(cfg), "n_params": n_params, "config_hash": digest})
        with job_gpu() as gpu:
            trainer = build_trainer(cfg, loggers, gpu)
            result = _fit_and_test(cfg, trainer, datamodule, module, ckpt_path, out_dir)
        result.update(
            n_params=n_params,
            config_hash=digest,
            gpu_slot=gpu,
            finished=datetime.now(UTC).isoformat(timespec="seconds"),
            config=resolved(cfg),
        )
        tracking.log_test_report(loggers, result)
        path = write_json_atomic(out_dir / RESULT_FILE, result)
        exit_code = 0
    finally:
        tracking.finish(loggers, exit_code)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else None
    resume.prune_checkpoints(out_dir, cfg.resume.keep_checkpoints, best)
    print(
        f"test WA {result['test_wa']:.3f}  UWA {result['test_uwa']:.3f}  "
        f"(majority-class rate {result['majority_rate']:.3f}; {cfg.model.name} "
        f"{cfg.modality.name}, fold {cfg.fold}, seed {cfg.seed}; best epoch "
        f"{result['best_epoch']} of {result['epochs']}, {result['train_seconds']:.0f} s)  "
        f"-> {path}",
        flush=True,
    )
    return {**result, "status": "done"}


def _fit_and_test(cfg, trainer, datamodule, module, ckpt_path, out_dir) -> dict:
    if ckpt_path is not None:
        log.info("Resuming from %s", ckpt_path)
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException:
        raise Interrupted(
            f"interrupted by SIGTERM in epoch {trainer.current_epoch + 1}; rerun the same "
            f"command to resume from the last finished epoch ({out_dir})"
        ) from None
    train_seconds = time.perf_counter() - started
    if trainer.interrupted:
        raise Interrupted(f"training was interrupted; rerun to resume ({out_dir})")

    best_path = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    started = time.perf_counter()
    if best_path:
        trainer.test(module, datamodule=datamodule, ckpt_path=best_path, weights_only=True)
        best_epoch = _best_epoch(best_path)
    else:
        log.warning("No checkpoint callback: testing the weights of the last epoch")
        trainer.test(module, datamodule=datamodule)
        best_epoch = len(module.history)
    test_seconds = time.perf_counter() - started

    test = module.test_report
    best_val = next((h for h in module.history if h["epoch"] == best_epoch), {})
    class_names = list(cfg.data.class_names)
    data_summary = datamodule.summary()
    counts = data_summary["test"]["class_counts"]
    return {
        "model": cfg.model.name,
        "modality": cfg.modality.name,
        "fold": cfg.fold,
        "seed": cfg.seed,
        "test_wa": test["wa"],
        "test_uwa": test["uwa"],
        "test_f1": test["f1"],
        "test_loss": test["loss"],
        "test_recall": dict(zip(class_names, test["recall"], strict=True)),
        "val_wa": best_val.get("val/wa"),
        "val_uwa": best_val.get("val/uwa"),
        "val_f1": best_val.get("val/f1"),
        "val_loss": best_val.get("val/loss"),
        "best_epoch": best_epoch,
        "epochs": len(module.history),
        "majority_rate": max(counts) / sum(counts),
        "confusion": test["confusion"],
        "class_names": class_names,
        "data": {
            "name": cfg.data.name,
            "preset": cfg.data.get("preset"),
            "root": str(cfg.data.root),
            "fold_path": str(datamodule.fold_path),
            "fingerprint": datamodule.fold_data.fingerprint,
            "splits": data_summary,
        },
        "train_seconds": round(train_seconds, 2),
        "test_seconds": round(test_seconds, 2),
        "resumed_from": str(ckpt_path) if ckpt_path else None,
        "device": str(trainer.strategy.root_device),
        "precision": str(trainer.precision),
        "version": selfcross.__version__,
        "git_commit": git_commit(CONFIG_DIR.parent),
        "history": module.history,
    }


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> dict:
    with user_errors():
        result = train_and_test(cfg)
    return {k: result[k] for k in ("status", "test_wa", "test_uwa")}


def precheck(argv: list[str]) -> None:
    """One-line errors for bad overrides, before Hydra's multi-line ones: unknown options of
    our groups (every value of a sweep list), and anything that fails to compose (a sweep's
    first combination stands for all of them)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    from selfcross.errors import ConfigError

    check_group_choices(argv)
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in argv if a[:1] != "-"])
    except OverrideParseException as err:
        raise ConfigError(one_line(str(err))) from None
    first = []
    for override in overrides:
        if not override.is_sweep_override():
            first.append(override.input_line)
        elif override.is_discrete_sweep():
            value = next(iter(override.sweep_string_iterator()), None)
            if value is not None:
                first.append(f"{override.get_key_element()}={value}")
    compose(first)  # raises ConfigError with a one-line message


if __name__ == "__main__":
    with user_errors():
        precheck(sys.argv[1:])
    main()
