"""Per-utterance feature cache: one ``.npz`` per utterance, written atomically.

A cache folder is named by the digest of everything that determines its features (the
extraction settings, a format version, and for video the weights), so changed settings never
reuse stale features and the audio and video caches are independent. A crash leaves either no
file or a complete one; a rerun reuses every complete file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

CACHE_FORMAT = 1


def cache_folder(root: Path, kind: str, key: dict) -> Path:
    """``root/<kind>-<digest of key>``, with the key written beside it for humans."""
    payload = json.dumps({"format": CACHE_FORMAT, **key}, sort_keys=True, default=str)
    folder = root / f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    info = folder / "settings.json"
    if not info.is_file():
        tmp = folder / f".settings.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(json.loads(payload), indent=2) + "\n")
        os.replace(tmp, info)
    return folder


def entry_path(folder: Path, utterance_id: str) -> Path:
    return folder / utterance_id.split("_", 1)[0] / f"{utterance_id}.npz"


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write ``path`` so that it is either absent or complete, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_entry(path: Path, name: str) -> np.ndarray | None:
    """The cached array, or None when the file is absent or unreadable (it is then redone)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return data[name]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
