"""A finished run brought back from its folder, for the instruments that examine trained models
after the fact (``selfcross.ablate``, ``selfcross.attention``): the configuration and the data
from its ``result.json``, the best-validation weights from its checkpoints (weights only).

The record carries values, never code (docs/checks-and-recovery.md): the configuration is
composed from selfcross's own ``conf/`` for the run's model, modality and data, and only the
record's values are taken into it, each checked against the composed keys and kinds
(:mod:`selfcross.utils.values`). The record's ``_target_`` keys are ignored, so a class renamed
since the run (``IemocapDataModule``, now ``FoldDataModule``) is simply conf's class; the
sections no rebuild uses (:data:`NOT_REBUILT`) are not read.

The fold is checked against the run's recorded fingerprint first: a model scored on changed
data would give numbers that belong to no run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from selfcross.config import CONFIG_DIR, compose
from selfcross.errors import ConfigError, DataError
from selfcross.training.record import RESULT_FILE, RunRecord, read_record, same_data
from selfcross.training.resume import BEST_CHECKPOINT, CHECKPOINT_DIR
from selfcross.utils.values import Refused, take_values

NOT_REBUILT = ("hydra", "logger", "callbacks", "tuned")
"""Sections of a record's configuration that a rebuild does not use (no logger, callback or
study is built) and whose keys depend on choices the record does not name: not read."""


def best_checkpoint(run_dir: Path) -> Path | None:
    """The run's best-validation checkpoint (``checkpoints/best.ckpt``; ``best-v<k>.ckpt`` when
    a resumed run wrote a second one and pruning kept only it), or None."""
    ckpt_dir = Path(run_dir) / CHECKPOINT_DIR
    path = ckpt_dir / BEST_CHECKPOINT
    if path.is_file():
        return path
    others = sorted(ckpt_dir.glob("best-v*.ckpt")) if ckpt_dir.is_dir() else []
    return others[-1] if len(others) == 1 else None


def read_run(run_dir: Path) -> RunRecord:
    """The record of the finished run in ``run_dir``; DataError naming what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(run_dir, "no such run folder")
    path = run_dir / RESULT_FILE
    if not path.is_file():
        raise DataError(path, "missing: not a finished run's folder")
    record = read_record(path)
    if record is None:
        raise DataError(path, "unreadable or malformed run record")
    return record


def _choice(path: Path, group: str, name) -> str:
    """The option ``name`` of the config group ``group``; DataError unless conf/ has it."""
    options = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
    if name not in options:
        raise DataError(path, f"{group}={name!r} is no option of conf/{group}/")
    return name


def run_config(path: Path, record: RunRecord):
    """The run's configuration: composed from conf/ for the record's model, modality and data,
    with the values of the record's configuration (``path``, for messages) taken in."""
    config = record.config
    if not isinstance(config, dict):
        raise DataError(path, "config: not a mapping")
    chosen = []
    for group, recorded in (
        ("model", record.model), ("modality", record.modality), ("data", record.data.name)
    ):  # fmt: skip
        section = config.get(group)
        name = section.get("name", recorded) if isinstance(section, dict) else recorded
        chosen.append(f"{group}={_choice(path, group, name)}")
    try:
        cfg = compose([*chosen, "logger=none"])
        if OmegaConf.is_missing(cfg.data, "root") and record.data.root:
            # a dataset whose root has no default (data=iemocap, data=meld): a key the
            # record's value may fill, as the run's command line did
            cfg.data.root = str(record.data.root)
        take_values(cfg, {k: v for k, v in config.items() if k not in NOT_REBUILT}, True)
    except (Refused, ConfigError) as err:
        raise DataError(path, f"config: {err}") from None
    return cfg


@dataclass
class ReloadedRun:
    run_dir: Path
    record: RunRecord
    cfg: object
    """The run's configuration (a DictConfig: conf/'s, with the record's values), its data
    root as recorded."""
    module: object
    """The run's EmotionRecognizer with its best weights, in eval mode."""
    datamodule: object
    """The run's data module, set up for testing, on the fold the run used."""
    checkpoint: Path


def reload_run(run_dir: Path, record: RunRecord | None = None) -> ReloadedRun:
    """Rebuild the run in ``run_dir`` (its record read there unless given)."""
    from hydra.utils import instantiate
    from omegaconf import open_dict

    run_dir = Path(run_dir)
    record = record or read_run(run_dir)
    checkpoint = checkpoint_of(run_dir)
    cfg = run_config(run_dir / RESULT_FILE, record)
    with open_dict(cfg):
        cfg.data.root = record.data.root
        cache = cfg.data.get("cache_dir")
        if cache is not None and not Path(str(cache)).is_dir():
            cfg.data.cache_dir = None  # read into memory rather than write a cache elsewhere
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    if not same_data(datamodule.fold_data.fingerprint, record.data.fingerprint):
        raise DataError(
            run_dir,
            f"the fold's data fingerprint {datamodule.fold_data.fingerprint} differs from "
            f"{record.data.fingerprint} in {RESULT_FILE}: the data changed since the run",
        )
    module = load_module(cfg, checkpoint)
    return ReloadedRun(run_dir, record, cfg, module, datamodule, checkpoint)


def load_module(cfg, checkpoint: Path):
    """The run's EmotionRecognizer built from ``cfg`` (:func:`run_config`) with the weights of
    ``checkpoint``, in eval mode; no data is read."""
    import torch
    from hydra.utils import instantiate

    module = instantiate(cfg.model)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        module.load_state_dict(state["state_dict"])
    except Exception as err:  # a cut-off zip, garbage, a foreign object or other weights
        reason = str(err).strip().splitlines()[0][:100] if str(err).strip() else type(err).__name__
        raise DataError(checkpoint, f"cannot be loaded into the run's model ({reason})") from None
    return module.eval()


def checkpoint_of(run_dir: Path) -> Path:
    """The run's best checkpoint; DataError saying why there is none."""
    checkpoint = best_checkpoint(run_dir)
    if checkpoint is None:
        raise DataError(
            Path(run_dir) / CHECKPOINT_DIR,
            f"no best checkpoint ({BEST_CHECKPOINT}): it was pruned "
            "(resume.keep_checkpoints=none) or the run did not finish; rerun it with "
            "resume.keep_checkpoints=best",
        )
    return checkpoint
