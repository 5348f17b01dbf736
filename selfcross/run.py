"""Train one model on one fold and seed, test its best-validation-UWA checkpoint.

    python -m selfcross.run                                  # tri-modal self, synthetic data
    python -m selfcross.run model=cross modality=TV fold=3 seed=7
    python -m selfcross.run -m modality=TV,TA,VA,TVA model=self,cross   # a sweep

Every run writes ``result.json`` into its output directory.
"""

from __future__ import annotations

import logging
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

import selfcross
from selfcross.config import CONFIG_DIR, resolved, user_errors, validate
from selfcross.fastpath import apply_fast_paths
from selfcross.models import EmotionRecognizer, count_parameters
from selfcross.utils.io import git_commit, write_json_atomic

log = logging.getLogger("selfcross")

RESULT_FILE = "result.json"


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


def build_trainer(cfg: DictConfig) -> L.Trainer:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def _best_epoch(checkpoint_path: str) -> int:
    """1-based epoch of a Lightning checkpoint, read without unpickling."""
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    return int(state["epoch"]) + 1


def train_and_test(cfg: DictConfig) -> dict:
    validate(cfg)
    quiet_library_noise()
    out_dir = Path(cfg.paths.output_dir)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    module = build_module(cfg)
    apply_fast_paths(cfg, module)
    trainer = build_trainer(cfg)
    n_params = count_parameters(module.network)
    log.info(
        "Model %s on %s: %d trainable parameters; fold %d, seed %s; output %s",
        cfg.model.name,
        cfg.modality.name,
        n_params,
        cfg.fold,
        cfg.seed,
        out_dir,
    )

    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    train_seconds = time.perf_counter() - started
    if trainer.interrupted:
        raise KeyboardInterrupt

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
    result = {
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
        "n_params": n_params,
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
        "device": str(trainer.strategy.root_device),
        "precision": str(trainer.precision),
        "version": selfcross.__version__,
        "git_commit": git_commit(CONFIG_DIR.parent),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "history": module.history,
        "config": resolved(cfg),
    }
    path = write_json_atomic(out_dir / RESULT_FILE, result)
    print(
        f"test WA {test['wa']:.3f}  UWA {test['uwa']:.3f}  "
        f"(majority-class rate {result['majority_rate']:.3f}; {cfg.model.name} "
        f"{cfg.modality.name}, fold {cfg.fold}, seed {cfg.seed}; best epoch {best_epoch} "
        f"of {result['epochs']}, {train_seconds:.0f} s)  -> {path}",
        flush=True,
    )
    return result


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    with user_errors():
        result = train_and_test(cfg)
    return result["test_uwa"]


if __name__ == "__main__":
    main()
