"""Hand-made run records for the report tests: complete ``result.json`` files, as a run writes.

Only the fields a test cares about are given; every other key of the record gets a plain value,
so a file is read exactly as a real run's would be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from selfcross.training.record import SCHEMA_VERSION, RunRecord, write_record

CLASSES = ["angry", "excited", "happy", "sad", "frustrated", "surprise", "neutral"]


def make_record(
    model: str,
    modality: str,
    fold: int,
    seed: int,
    wa: float,
    uwa: float,
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> RunRecord:
    """A complete record of one run; ``data`` updates the data block, ``fields`` the rest."""
    data_block = {
        "name": "synthetic",
        "preset": "small",
        "root": "data/synthetic/small",
        "fold_path": f"data/synthetic/small/fold{fold}",
        "fingerprint": f"fold{fold}",
        "splits": {},
    }
    data_block.update(data or {})
    raw: dict[str, Any] = {
        "model": model,
        "modality": modality,
        "fold": fold,
        "seed": seed,
        "test_wa": wa,
        "test_uwa": uwa,
        "test_f1": wa,
        "test_loss": 1.0,
        "test_recall": dict.fromkeys(CLASSES, wa),
        "val_wa": wa,
        "val_uwa": uwa,
        "val_f1": wa,
        "val_loss": 1.0,
        "best_epoch": 1,
        "epochs": 1,
        "majority_rate": 0.25,
        "confusion": (np.eye(len(CLASSES), dtype=int) * 10).tolist(),
        "class_names": list(CLASSES),
        "data": data_block,
        "train_seconds": 1.0,
        "test_seconds": 0.1,
        "resumed_from": None,
        "device": "cpu",
        "precision": "32-true",
        "version": "0.1.0",
        "git_commit": None,
        "history": [],
        "n_params": 1000,
        "config_hash": "0" * 16,
        "gpu_slot": None,
        "finished": "2024-01-01T00:00:00+00:00",
        "config": {},
        "schema_version": SCHEMA_VERSION,
    }
    raw.update(fields)
    return RunRecord.from_dict(raw)


def write_run(directory: Path, *args: Any, **kwargs: Any) -> Path:
    """``make_record(*args, **kwargs)`` written as ``<directory>/result.json``; its path."""
    return write_record(directory, make_record(*args, **kwargs))
