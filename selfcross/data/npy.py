"""Raw ``.npy`` access for the processed fold format (Yoon et al.; see docs/preparing-iemocap.md).

One directory per fold (``fold01`` ... ``fold05``) holding, for each split in
``train``/``dev``/``test``::

    {split}_audio_mfcc.npy  [N, 1000, 120] float   {split}_audio_seqN.npy [N] int
    {split}_video.npy       [N, 32, 2048] float    {split}_video_seqN.npy [N] int
    {split}_nlp_trans.npy   [N, 128] int (token ids into W_embedding.npy, 0 = padding)
    {split}_text.npy        [N, 128, 300] float (optional: the GloVe vectors, precomputed)
    {split}_label.npy       [N] int, class id 0..6
    W_embedding.npy         [V, 300] float

Here live the file names, opening a file memory-mapped with ``allow_pickle=False`` after checking
its header and size, the checks of integer and numeric values, and the block-wise memory
bounds. Any problem raises :class:`~selfcross.errors.DataError` whose message is
``<path>: <problem>``.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from selfcross.errors import DataError

SPLITS = ("train", "dev", "test")
EMBEDDING_FILE = "W_embedding.npy"
BLOCK_BYTES = 32 * 2**20
"""Bytes of float32 features per block when copying, checking or scanning: bounds the
temporary memory (69 paper-size audio utterances)."""

# Per modality: the feature file, its rank, and the file of valid lengths.
FEATURE_FILES = {
    "A": ("audio_mfcc", 3, "audio_seqN"),
    "V": ("video", 3, "video_seqN"),
}
TEXT_IDS_FILE = "nlp_trans"
TEXT_DENSE_FILE = "text"
LABEL_FILE = "label"


def fold_dir(root: str | Path, fold: int) -> Path:
    return Path(root) / f"fold{fold:02d}"


def split_file(directory: Path, split: str, stem: str) -> Path:
    return directory / f"{split}_{stem}.npy"


def block_rows(array: np.ndarray, itemsize: int = 4) -> int:
    """Rows of ``array`` per block so that a block of ``itemsize``-byte values fits BLOCK_BYTES."""
    row = int(np.prod(array.shape[1:], dtype=np.int64)) * itemsize
    return max(1, BLOCK_BYTES // max(1, row))


def release_rows(array: np.ndarray, start: int, stop: int, written: bool = False) -> None:
    """Drop rows [start, stop) of a memory-mapped array from this process's resident memory.

    Blocks already checked, copied or standardised are not needed again; their pages stay in
    the operating system's page cache (written pages are flushed first), so streaming a
    paper-size fold never holds more than a block of it in the process.
    """
    mm = getattr(array, "_mmap", None)
    if mm is None or stop <= start or not isinstance(array, np.memmap):
        return
    row = int(np.prod(array.shape[1:], dtype=np.int64)) * array.itemsize
    data_start = int(array.offset) % mmap.ALLOCATIONGRANULARITY
    begin = data_start + start * row
    begin -= begin % mmap.PAGESIZE
    end = min(len(mm), data_start + stop * row)
    if end <= begin:
        return
    if written:
        mm.flush(begin, end - begin)
    mm.madvise(mmap.MADV_DONTNEED, begin, end - begin)


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """Shape, dtype and data offset from a ``.npy`` header; None for format versions >= 3.

    Catches what ``np.load`` would misreport: an empty file, a file of another format (which
    numpy calls "pickled data"), an object dtype and a truncated data section.
    """
    with open(path, "rb") as handle:
        start = handle.read(len(np.lib.format.MAGIC_PREFIX))
        if not start:
            raise DataError(path, "is empty (0 bytes), expected a .npy array")
        if start != np.lib.format.MAGIC_PREFIX:
            if start.startswith(b"PK"):
                raise DataError(path, "is a zip archive (.npz?), expected a single .npy array")
            if start[:1] == b"\x80":
                raise DataError(path, "is a pickle file, expected a .npy array (never unpickled)")
            raise DataError(path, f"is not a .npy file (starts with {start!r})")
        handle.seek(0)
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                return None
        except (ValueError, EOFError, OSError) as err:
            raise DataError(path, f"has a corrupt .npy header ({err})") from None
        return tuple(shape), np.dtype(dtype), handle.tell()


def open_array(path: Path) -> np.ndarray:
    """Memory-map one ``.npy`` file, refusing anything that would need pickle."""
    if not path.exists():
        raise DataError(path, "file is missing")
    if not path.is_file():
        raise DataError(path, "is not a regular file")
    header = npy_header(path)
    if header is not None:
        shape, dtype, offset = header
        if dtype.hasobject:
            raise DataError(path, "holds Python objects, which would need pickle to load")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        found = path.stat().st_size - offset
        if found < expected:
            raise DataError(
                path,
                f"is truncated: its header describes {dtype} {list(shape)} "
                f"({expected} bytes of data) but it holds {found} bytes",
            )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(path, f"is not a readable .npy array ({text})") from None
    if not isinstance(array, np.ndarray):
        raise DataError(path, "is not a single .npy array")
    if array.dtype.hasobject:
        raise DataError(path, "holds Python objects, which would need pickle to load")
    return array


def first_row(bad: np.ndarray) -> int:
    """Index along axis 0 of the first row holding a True."""
    return int(np.argmax(bad.reshape(len(bad), -1).any(axis=1)))


def check_numeric(path: Path, array: np.ndarray) -> None:
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataError(path, f"expected numeric features, found dtype {array.dtype}")


def integers(
    path: Path, array: np.ndarray, low: int, high: int, what: str, bound: str = ""
) -> np.ndarray:
    """``array`` as int64 after checking every value is a whole number in low..high.

    Ids, labels and lengths may be stored as any integer type, or as floats holding whole
    numbers (exactly converted); the range is checked on the stored values, before any
    conversion can overflow.
    """
    if np.issubdtype(array.dtype, np.floating):
        values = np.asarray(array)
        bad = ~np.isfinite(values)
        bad[~bad] = values[~bad] != np.round(values[~bad])
        if bad.any():
            row = first_row(bad)
            raise DataError(
                path,
                f"{what} must be whole numbers, found {float(values[bad][0])} "
                f"(dtype {array.dtype}) at utterance {row}",
            )
    elif not np.issubdtype(array.dtype, np.integer):
        raise DataError(path, f"expected integer {what}, found dtype {array.dtype}")
    if array.size:
        lo, hi = array.min(), array.max()
        if lo < low or hi > high:
            bad = (array < low) | (array > high)
            raise DataError(
                path,
                f"{what} must lie in {low}..{high}{bound}, found {int(lo)}..{int(hi)} "
                f"(first at utterance {first_row(bad)})",
            )
    return np.asarray(array).astype(np.int64)


def check_configured_shape(path: Path, array: np.ndarray, modality: str, want: dict | None):
    """Sequence length and feature size of a [N, T(, D)] array against ``data.shapes``."""
    if want is None:
        return
    got_len = array.shape[1]
    if got_len != want["seq_len"]:
        raise DataError(
            path,
            f"sequence length {got_len} does not match the configured "
            f"data.shapes.{modality}.seq_len={want['seq_len']}",
        )
    if array.ndim == 3 and array.shape[2] != want["feat_dim"]:
        raise DataError(
            path,
            f"feature size {array.shape[2]} does not match the configured "
            f"data.shapes.{modality}.feat_dim={want['feat_dim']}",
        )


def check_embedding(path: Path, emb: np.ndarray, want: dict | None) -> None:
    """``W_embedding.npy``: a numeric [V, D] matrix, D as ``data.shapes.T.feat_dim`` if given."""
    if emb.ndim != 2:
        raise DataError(path, f"expected shape [V, D], found {list(emb.shape)}")
    check_numeric(path, emb)
    if emb.shape[0] == 0 or emb.shape[1] == 0:
        raise DataError(path, f"has an empty dimension, shape {list(emb.shape)}")
    if want is not None and emb.shape[1] != want["feat_dim"]:
        raise DataError(
            path,
            f"embedding size {emb.shape[1]} does not match the configured "
            f"data.shapes.T.feat_dim={want['feat_dim']}",
        )


def text_source(directory: Path, option: str) -> str:
    """``ids`` or ``dense``: ``option`` unless ``auto``, then dense only when a fold holds the
    dense text files but not the token ids and W_embedding."""
    if option != "auto":
        return option
    ids_present = (directory / EMBEDDING_FILE).is_file() and all(
        split_file(directory, s, TEXT_IDS_FILE).is_file() for s in SPLITS
    )
    dense_present = all(split_file(directory, s, TEXT_DENSE_FILE).is_file() for s in SPLITS)
    return "dense" if dense_present and not ids_present else "ids"
