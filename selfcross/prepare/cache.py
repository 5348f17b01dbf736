"""Per-utterance feature cache: one ``.npz`` per utterance, written atomically.

A cache folder is named by the digest of everything that determines its features (the
extraction settings, a format version, and for video the weights), so changed settings never
reuse stale features and the audio and video caches are independent. A crash leaves either no
file or a complete one; a rerun reuses every complete file.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from selfcross.utils import atomic

CACHE_FORMAT = 1


def cache_folder(root: Path, kind: str, key: dict) -> Path:
    """``root/<kind>-<digest of key>``, with the key written beside it for humans."""
    payload = json.dumps({"format": CACHE_FORMAT, **key}, sort_keys=True, default=str)
    folder = root / f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    info = folder / "settings.json"
    if not info.is_file():
        atomic.write_json(info, json.loads(payload))
    return folder


def entry_path(folder: Path, utterance_id: str) -> Path:
    return folder / utterance_id.split("_", 1)[0] / f"{utterance_id}.npz"


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write ``path`` so that it is either absent or complete, never half-written."""
    with atomic.atomic_file(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_entry(path: Path, name: str) -> np.ndarray | None:
    """The cached array, or None when the file is absent or unreadable (it is then redone)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return data[name]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
