"""What the reader does to a fold's values beyond checking them, as the reference code did.

Dropping the utterances without video (``data.drop_zero_video``), replacing or refusing NaN and
infinite values (``data.on_nonfinite``) and standardising audio with statistics of the train
split only (``data.audio_standardize``). Arrays are processed block by block, so memory stays
bounded at any fold size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.data.npy import block_rows, first_row, release_rows
from selfcross.errors import DataError
from selfcross.utils import atomic

AUDIO_STANDARDIZE = ("feature", "frame_feature", "none")
ON_NONFINITE = ("error", "zero")


def kept_rows(
    path: Path, split: str, n: int, video_lengths: np.ndarray | None, drop_zero_video: bool
) -> np.ndarray:
    """The rows of a split that are used: those with video unless ``drop_zero_video`` is false.

    Raises when none is left (``path`` is the split's label file).
    """
    keep = np.flatnonzero(video_lengths > 0) if drop_zero_video else np.arange(n)
    if len(keep) == 0:
        raise DataError(
            path,
            f"the {split} split is empty"
            + (" after dropping utterances with no video" if n else ""),
        )
    return keep


def replace_nonfinite(
    path: Path,
    raw: np.ndarray,
    block: np.ndarray,
    describe: Callable[[int, str], str],
    on_nonfinite: str,
) -> int:
    """NaN or infinite values in ``block`` (``raw`` as float32): raise, or with
    ``on_nonfinite=zero`` replace them with 0 in place; returns how many were replaced.

    ``describe(row, prefix)`` words the problem at the first bad row, e.g. ``f"{prefix}values
    in ..."``: with the prefix ``"NaN or infinite "``, or, when the file's own values are
    finite but too large for float32, with "values beyond the float32 range" instead.
    """
    finite = np.isfinite(block)
    if finite.all():
        return 0
    if on_nonfinite == "error":
        row = first_row(~finite)
        if np.isfinite(raw[row]).all():
            problem = describe(row, "").replace("values", "values beyond the float32 range", 1)
        else:
            problem = describe(row, "NaN or infinite ")
        raise DataError(path, f"{problem} (set data.on_nonfinite=zero to replace them with 0)")
    zeroed = int((~finite).sum())
    block[~finite] = 0.0
    return zeroed


def copy_blocks(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]], shape: tuple[int, ...], out_path=None
) -> np.ndarray:
    """The kept rows, given as ``(rows, float32 block)`` pairs, as one contiguous float32 array
    of ``shape``: in memory, or a new ``.npy`` file at ``out_path`` (memory-mapped)."""
    if out_path is None:
        out = np.empty(shape, dtype=np.float32)
    else:
        out = atomic.open_memmap(out_path, dtype=np.float32, shape=shape)
    start = 0
    for idx, block in blocks:
        out[start : start + len(idx)] = block
        release_rows(out, start, start + len(idx), written=True)
        start += len(idx)
    return out


def _valid_mask(lengths: np.ndarray, seq_len: int) -> np.ndarray:
    """[N, T] bool: frame t of utterance n is inside its valid length."""
    return np.arange(seq_len)[None, :] < lengths[:, None]


def standardize_audio(
    splits: Mapping[str, Any], mode: str, lengths_path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Standardise the audio of every split in place with statistics of the train split only.

    ``splits`` maps split names to :class:`~selfcross.data.reader.SplitData`; returns the
    float32 mean and std used. ``feature``: one mean/std per feature dimension over the valid
    (unpadded) frames; padded frames stay exactly zero, i.e. at the standardised mean.
    ``frame_feature``: one mean/std per (frame, feature) position over all train utterances,
    padding included, as the reference code fitted its scaler.

    ``lengths_path``: the train split's audio lengths file (``train_audio_seqN.npy``), named in
    the error raised when ``feature`` finds no valid frame (every kept length is 0).
    """
    train = splits["train"]
    x = train.features["A"]
    if mode == "feature":
        total = np.zeros(x.shape[2], np.float64)
        total_sq = np.zeros(x.shape[2], np.float64)
        count = 0
        lengths = train.lengths["A"]
        step = block_rows(x, itemsize=8)
        for start in range(0, len(x), step):
            block = x[start : start + step].astype(np.float64)
            mask = _valid_mask(lengths[start : start + step], x.shape[1])
            total += (block * mask[..., None]).sum(axis=(0, 1))
            total_sq += ((block**2) * mask[..., None]).sum(axis=(0, 1))
            count += int(mask.sum())
            release_rows(x, start, start + step)
        if count == 0:
            raise DataError(
                lengths_path,
                f"all {len(x)} kept train utterances have audio length 0: no valid frame "
                "to standardise with (data.audio_standardize=feature); set "
                "data.audio_standardize=frame_feature or none",
            )
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    else:
        total = np.zeros(x.shape[1:], np.float64)
        total_sq = np.zeros(x.shape[1:], np.float64)
        step = block_rows(x, itemsize=8)
        for start in range(0, len(x), step):
            block = x[start : start + step].astype(np.float64)
            total += block.sum(axis=0)
            total_sq += (block**2).sum(axis=0)
            release_rows(x, start, start + step)
        mean = total / len(x)
        std = np.sqrt(np.maximum(total_sq / len(x) - mean**2, 0.0))
    std = np.where(std < 1e-8, 1.0, std)
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)
    for split in splits.values():
        feats = split.features["A"]
        step = block_rows(feats)
        for start in range(0, len(feats), step):
            lengths = split.lengths["A"][start : start + step]
            standardize_rows(feats[start : start + step], lengths, mean32, std32, mode)
            release_rows(feats, start, start + step, written=True)
    return mean32, std32


def standardize_rows(
    block: np.ndarray, lengths: np.ndarray, mean: np.ndarray, std: np.ndarray, mode: str
) -> None:
    """Standardise [N, T, D] float32 audio rows in place with the train split's float32
    ``mean`` and ``std`` (:func:`standardize_audio`'s step, also used by ``selfcross.predict``
    on new clips); with ``feature`` the frames past each row's valid length are zeroed."""
    if mode == "none":
        return
    block -= mean
    block /= std
    if mode == "feature":
        block *= _valid_mask(lengths, block.shape[1])[..., None]
