"""A finished run brought back from its folder, for the instruments that examine trained models
after the fact (``selfcross.ablate``, ``selfcross.attention``): the configuration and the data
from its ``result.json``, the best-validation weights from its checkpoints (weights only).

The fold is checked against the run's recorded fingerprint first: a model scored on changed
data would give numbers that belong to no run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from selfcross.errors import DataError
from selfcross.training.record import RESULT_FILE, RunRecord, read_record, same_data
from selfcross.training.resume import BEST_CHECKPOINT, CHECKPOINT_DIR


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


@dataclass
class ReloadedRun:
    run_dir: Path
    record: RunRecord
    cfg: object
    """The run's resolved configuration (a DictConfig), its data root as recorded."""
    module: object
    """The run's EmotionRecognizer with its best weights, in eval mode."""
    datamodule: object
    """The run's data module, set up for testing, on the fold the run used."""
    checkpoint: Path


def reload_run(run_dir: Path, record: RunRecord | None = None) -> ReloadedRun:
    """Rebuild the run in ``run_dir`` (its record read there unless given)."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf, open_dict

    run_dir = Path(run_dir)
    record = record or read_run(run_dir)
    checkpoint = best_checkpoint(run_dir)
    if checkpoint is None:
        raise DataError(
            run_dir / CHECKPOINT_DIR,
            f"no best checkpoint ({BEST_CHECKPOINT}): it was pruned "
            "(resume.keep_checkpoints=none) or the run did not finish; rerun it with "
            "resume.keep_checkpoints=best",
        )
    cfg = OmegaConf.create(record.config)
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
    module = instantiate(cfg.model)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        module.load_state_dict(state["state_dict"])
    except Exception as err:  # a cut-off zip, garbage, a foreign object or other weights
        reason = str(err).strip().splitlines()[0][:100] if str(err).strip() else type(err).__name__
        raise DataError(checkpoint, f"cannot be loaded into the run's model ({reason})") from None
    module.eval()
    return ReloadedRun(run_dir, record, cfg, module, datamodule, checkpoint)
