"""Processed folds on disk, memory-mapped by every run that needs them.

Reading a fold (checking it, dropping utterances without video, standardising audio) yields the
arrays a run trains on. Written once into ``cache_dir`` and memory-mapped afterwards, they cost
no private memory: concurrent runs on one machine (several jobs per GPU, a CPU sweep) share the
same pages of the operating system's page cache instead of each holding a copy of the fold, and
a GPU run uploads its fold straight from the mapping.

An entry is keyed by the fold directory, its fingerprint (the files' layout and contents,
:mod:`selfcross.data.fingerprint`) and the reading options; each modality is written
(atomically, under a lock) the first time a run needs it. A changed or replaced data file gives
a new key, so a stale entry is never used, even after a same-size edit whose modification time
was put back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
from filelock import FileLock

from selfcross.data.fingerprint import MEMO_DIR, fingerprint
from selfcross.data.fold import FoldData, ReaderOptions, SplitData
from selfcross.data.npy import SPLITS
from selfcross.data.reader import FoldReader
from selfcross.utils import atomic
from selfcross.utils.io import writable_dir

log = logging.getLogger(__name__)

CACHE_FORMAT = 2
"""2: keyed by the fold's contents (1: by file names, sizes and modification times)."""
CACHE_SETTING = "data.cache_dir (paths.cache_dir, or the SELFCROSS_CACHE_DIR environment variable)"
"""Where a run's error sends the user when the cache folder cannot be written."""
BASE = "base"


def cache_key(fold_dir: Path, fingerprint: str, options: ReaderOptions) -> str:
    """Identifies the fold (its directory and fingerprint, contents included) and how it is
    read."""
    payload = {
        "format": CACHE_FORMAT,
        "dir": str(fold_dir.resolve()),
        "fingerprint": fingerprint,
        "drop_zero_video": options.drop_zero_video,
        "audio_standardize": options.audio_standardize,
        "text_source": options.text_source,
        "on_nonfinite": options.on_nonfinite,
        "num_classes": options.num_classes,
    }
    if options.class_map is not None:  # keyed only when set: earlier entries keep their key
        payload["class_map"] = list(options.class_map)
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def _save_dir(target: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write arrays and meta into ``target`` so that it appears complete or not at all."""
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name, array in arrays.items():
            atomic.save_npy(tmp / f"{name}.npy", array)
        atomic.write_text(tmp / "meta.json", json.dumps(meta))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(
    entry: Path, fold_dir: Path, options: ReaderOptions, modalities: tuple[str, ...], fp: str
):
    """Read (and check) the fold for ``modalities`` and write their processed arrays.

    Features are streamed from the fold's files into the cache's, block by block, so building
    holds about one block in memory whatever the fold's size.
    """
    work = entry.parent / f".{entry.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        fold = FoldReader(fold_dir, replace(options, modalities=modalities)).load(
            out_dir=work, fingerprint=fp
        )
        if not (entry / BASE / "meta.json").is_file():
            _save_dir(
                entry / BASE,
                {f"{s}_label": fold.splits[s].labels for s in SPLITS},
                {
                    "n_dropped": {s: fold.splits[s].n_dropped for s in SPLITS},
                    "fingerprint": fold.fingerprint,
                    "source": str(fold_dir.resolve()),
                },
            )
        for m in modalities:
            arrays = {
                f"{s}_len": fold.splits[s].lengths[m]
                for s in SPLITS
                if m in fold.splits[s].lengths
            }
            if not (work / m / "train.npy").is_file():  # not streamed: token ids (small)
                arrays.update({s: fold.splits[s].features[m] for s in SPLITS})
            if m == "T" and fold.embedding is not None:
                arrays["embedding"] = fold.embedding
            if m == "A" and fold.audio_mean is not None:
                arrays["audio_mean"], arrays["audio_std"] = fold.audio_mean, fold.audio_std
            meta = {"nonfinite_zeroed": {s: fold.splits[s].nonfinite_zeroed for s in SPLITS}}
            (work / m).mkdir(parents=True, exist_ok=True)
            for name, array in arrays.items():
                atomic.save_npy(work / m / f"{name}.npy", array)
            atomic.write_text(work / m / "meta.json", json.dumps(meta))
            shutil.rmtree(entry / m, ignore_errors=True)
            os.replace(work / m, entry / m)
        del fold
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _open(path: Path) -> np.ndarray:
    # Copy-on-write mapping: writable for torch, but pages stay shared unless written (never).
    return np.load(path, mmap_mode="c", allow_pickle=False)


def _prune_stale(cache_dir: Path, fold_dir: Path, fp: str) -> None:
    """Remove entries made from this fold directory's earlier files (e.g. regenerated data)."""
    source = str(fold_dir.resolve())
    for meta_path in cache_dir.glob(f"{fold_dir.name}-*/{BASE}/meta.json"):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("source") == source and meta.get("fingerprint") != fp:
            log.info("Removing a stale cache entry: %s", meta_path.parent.parent)
            shutil.rmtree(meta_path.parent.parent, ignore_errors=True)


def load_fold(
    fold_dir: str | Path, options: ReaderOptions, cache_dir: str | Path | None
) -> FoldData:
    """The processed fold: read directly (``cache_dir`` None) or memory-mapped from the cache."""
    fold_dir = Path(fold_dir)
    if cache_dir is None:
        return FoldReader(fold_dir, options).load()
    if not fold_dir.is_dir():  # let the reader report it in its words
        return FoldReader(fold_dir, options).load()
    writable_dir(cache_dir, CACHE_SETTING)
    fp = fingerprint(fold_dir, Path(cache_dir) / MEMO_DIR)
    entry = Path(cache_dir) / f"{fold_dir.name}-{cache_key(fold_dir, fp, options)}"
    with FileLock(entry.parent / f".{entry.name}.lock"):
        missing = tuple(m for m in options.modalities if not (entry / m / "meta.json").is_file())
        if missing or not (entry / BASE / "meta.json").is_file():
            _prune_stale(Path(cache_dir), fold_dir, fp)
            log.info("Caching the processed %s (%s) in %s", fold_dir, "".join(missing), entry)
            _build(entry, fold_dir, options, missing or options.modalities[:1], fp)
    base = json.loads((entry / BASE / "meta.json").read_text())
    splits = {
        s: SplitData(
            features={},
            labels=_open(entry / BASE / f"{s}_label.npy"),
            n_dropped=base["n_dropped"][s],
        )
        for s in SPLITS
    }
    fold = FoldData(path=fold_dir, splits=splits, embedding=None, fingerprint=base["fingerprint"])
    for m in options.modalities:
        for s in SPLITS:
            splits[s].features[m] = _open(entry / m / f"{s}.npy")
            if (entry / m / f"{s}_len.npy").is_file():
                splits[s].lengths[m] = _open(entry / m / f"{s}_len.npy")
        if m == "T" and (entry / m / "embedding.npy").is_file():
            fold.embedding = _open(entry / m / "embedding.npy")
        if m == "A" and (entry / m / "audio_mean.npy").is_file():
            fold.audio_mean = np.load(entry / m / "audio_mean.npy", allow_pickle=False)
            fold.audio_std = np.load(entry / m / "audio_std.npy", allow_pickle=False)
    return fold
