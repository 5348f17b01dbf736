"""Write the fold directories in the processed format (selfcross.data.npy), and check them.

Each fold directory is written under a temporary name and renamed into place when complete, so
``foldNN`` is either the previous complete fold or the new one; a failure (a full disk: one line
naming the file, ``utils/atomic.py``) removes the temporary folders. Rows are appended to the
``.npy`` files in order through ordinary buffered writes (not a memory map, whose written pages
would count in the process's resident memory until the kernel writes them back), so memory stays
bounded by one utterance's rows whatever the fold's size (MELD's is about 10 GB). Besides the
format's files each fold holds ``vocab.json`` (the vocabulary: token of each id, instead of the
original ``dic.pkl``) and ``manifest.json`` (the utterance id of every row of every split).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from selfcross.data.fold import ReaderOptions
from selfcross.data.npy import EMBEDDING_FILE, SPLITS, fold_dir, split_file
from selfcross.data.validate import check_root
from selfcross.errors import DataError
from selfcross.utils import atomic
from selfcross.utils.io import write_json_atomic


def fold_layout(
    shapes: dict, prosody_dim: int, pretrained=(), dtype: str = "float16"
) -> dict[str, tuple[tuple[int, ...], type]]:
    """File stem -> (per-utterance shape, dtype). ``pretrained``: the modality letters whose
    features come from a pretrained encoder, stored as ``dtype`` (text then as dense
    ``{split}_text.npy`` [N, seq_len, feat_dim] instead of token ids)."""
    audio, video = (np.dtype(dtype) if m in pretrained else np.float32 for m in "AV")
    layout = {
        "audio_mfcc": ((shapes["A"]["seq_len"], shapes["A"]["feat_dim"]), audio),
        "audio_seqN": ((), np.int64),
        "audio_prosody": ((prosody_dim,), np.float32),
        "video": ((shapes["V"]["seq_len"], shapes["V"]["feat_dim"]), video),
        "video_seqN": ((), np.int64),
        "nlp_trans": ((shapes["T"]["seq_len"],), np.int64),
        "label": ((), np.int64),
    }
    if "T" in pretrained:
        del layout["nlp_trans"]
        layout["text"] = ((shapes["T"]["seq_len"], shapes["T"]["feat_dim"]), np.dtype(dtype))
    return layout


def pad_rows(features: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """[length, D] features cut or zero-padded in time, and the valid length."""
    n = min(len(features), length)
    out = np.zeros((length, features.shape[1]), np.float32)
    out[:n] = features[:n]
    return out, n


class RowFile:
    """An ``.npy`` file of ``n`` rows of ``shape`` written row by row, in order."""

    def __init__(self, path: Path, n: int, shape: tuple[int, ...], dtype):
        self.path, self.n, self.shape, self.dtype = path, n, tuple(shape), np.dtype(dtype)
        self.written = 0
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (n, *self.shape),
        }
        with atomic.guard(path):  # a full disk names the file
            self.handle = open(path, "wb")  # noqa: SIM115 - closed by close()
            np.lib.format.write_array_header_2_0(self.handle, header)

    def write(self, row: int, values) -> None:
        if row != self.written:
            raise ValueError(f"{self.path}: row {row} written out of order ({self.written} next)")
        array = np.asarray(values, dtype=self.dtype)
        if array.shape != self.shape:
            raise ValueError(f"{self.path}: row of shape {array.shape}, expected {self.shape}")
        with atomic.guard(self.path):
            self.handle.write(np.ascontiguousarray(array).tobytes())
        self.written += 1

    def close(self) -> None:
        """Flush to the disk and close (before the fold's folder is renamed into place)."""
        with atomic.guard(self.path):
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
        if self.written != self.n:
            raise ValueError(f"{self.path}: {self.written} of {self.n} rows written")


def write_folds(
    out: Path,
    partitions: dict[int, dict[str, np.ndarray]],
    n_utterances: int,
    row_of: Callable[[int], dict[str, np.ndarray]],
    layout: dict,
    embedding: np.ndarray | None,
    extras: Callable[[int, dict[str, np.ndarray]], dict[str, object]],
    progress=None,
) -> list[Path]:
    """Write every fold of ``partitions``, reading each utterance's row once.

    ``row_of(i)`` returns utterance i's arrays by file stem; ``extras(fold, parts)`` the JSON
    files (name -> data) to add to a fold directory. Each split's indices must be increasing
    (the files are written front to back).
    """
    staging = {fold: out / f".fold{fold:02d}.partial" for fold in partitions}
    targets: dict[tuple[int, str], tuple[str, int]] = {}  # (utterance, fold) -> (split, row)
    files: dict[tuple[int, str, str], RowFile] = {}
    try:
        for fold, parts in partitions.items():
            shutil.rmtree(staging[fold], ignore_errors=True)
            with atomic.guard(staging[fold]):
                staging[fold].mkdir(parents=True)
            for split in SPLITS:
                if np.any(np.diff(parts[split]) <= 0):
                    raise ValueError(f"fold {fold} {split}: utterance indices not increasing")
                for row, i in enumerate(parts[split]):
                    targets[(int(i), fold)] = (split, row)
                for stem, (shape, dtype) in layout.items():
                    files[(fold, split, stem)] = RowFile(
                        split_file(staging[fold], split, stem), len(parts[split]), shape, dtype
                    )
        for i in range(n_utterances):
            where = [(fold, *targets[(i, fold)]) for fold in partitions if (i, fold) in targets]
            if where:
                row = row_of(i)
                for fold, split, r in where:
                    for stem in layout:
                        files[(fold, split, stem)].write(r, row[stem])
            if progress is not None:
                progress(1)
        for file in files.values():
            file.close()
        written = []
        for fold, parts in partitions.items():
            if embedding is not None:  # None: dense text features, no token ids
                atomic.save_npy(staging[fold] / EMBEDDING_FILE, embedding)
            for name, data in extras(fold, parts).items():
                write_json_atomic(staging[fold] / name, data)
            written.append(_replace_dir(staging[fold], fold_dir(out, fold)))
    except BaseException:  # nothing half-written stays behind (a full disk, an interruption)
        for file in files.values():
            with contextlib.suppress(OSError):
                file.handle.close()
        for folder in staging.values():
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return written


def _replace_dir(new: Path, target: Path) -> Path:
    """Move a complete directory into place, removing the previous one."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def check_output(
    out: Path,
    folds: list[int],
    shapes: dict,
    class_names: list[str],
    published: dict[str, int] | None = None,
) -> list[dict]:
    """Check the written folds as ``selfcross.check`` does, print the report, fail on any
    problem. ``published``: class name -> the dataset's published count (default IEMOCAP's)."""
    options = ReaderOptions(shapes=shapes, num_classes=len(class_names))
    report = check_root(out, options, class_names, folds=folds, published=published)
    print(report.format())
    if not report.ok:
        raise DataError(out, f"the written folds fail the check: {report.all_problems()[0]}")
    return [
        {
            "fold": fold.path.name,
            **{s: fold.splits[s].n - fold.splits[s].dropped for s in SPLITS},
            "dropped_no_video": sum(fold.splits[s].dropped for s in SPLITS),
        }
        for fold in report.folds
    ]
