"""Reader for the processed IEMOCAP folds (the Yoon et al. format, DESIGN.md section 1).

One directory per fold (``fold01`` ... ``fold05``) holding, for each split in
``train``/``dev``/``test``::

    {split}_audio_mfcc.npy  [N, 1000, 120] float   {split}_audio_seqN.npy [N] int
    {split}_video.npy       [N, 32, 2048] float    {split}_video_seqN.npy [N] int
    {split}_nlp_trans.npy   [N, 128] int (token ids into W_embedding.npy, 0 = padding)
    {split}_text.npy        [N, 128, 300] float (optional: the GloVe vectors, precomputed)
    {split}_label.npy       [N] int, class id 0..6
    W_embedding.npy         [V, 300] float

Every array is opened memory-mapped with ``allow_pickle=False`` and checked before use; the
kept rows of each split are then copied exactly once into a contiguous float32 array, in blocks
of bounded size, checking that every value is finite. Any problem raises
:class:`~selfcross.errors.DataError` whose message is ``<path>: <problem>``.

Ids, labels and lengths may be stored as any integer type, or as floats holding whole numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfcross import MODALITIES
from selfcross.errors import DataError

log = logging.getLogger(__name__)

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
VIDEO_LEN_FILE = "video_seqN"
NO_PADDED_LENGTH = np.iinfo(np.int32).max
"""Upper bound for video lengths when neither the video file nor data.shapes gives one."""

AUDIO_STANDARDIZE = ("feature", "frame_feature", "none")
TEXT_SOURCES = ("auto", "ids", "dense")
ON_NONFINITE = ("error", "zero")


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


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int] | None:
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
    header = _npy_header(path)
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


def _first_row(bad: np.ndarray) -> int:
    """Index along axis 0 of the first row holding a True."""
    return int(np.argmax(bad.reshape(len(bad), -1).any(axis=1)))


@dataclass
class SplitData:
    """The kept utterances of one split, each modality as one contiguous array."""

    features: dict[str, np.ndarray]
    """Modality letter -> float32 [N, T, D]; text may instead be int64 token ids [N, T]."""
    labels: np.ndarray
    """[N] int64 class ids."""
    lengths: dict[str, np.ndarray] = field(default_factory=dict)
    """Modality letter -> [N] int64 valid lengths, where the format records them (A, V)."""
    n_dropped: int = 0
    nonfinite_zeroed: int = 0

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class FoldData:
    """One fold, ready for training: three splits, the text embedding, and what was done."""

    path: Path
    splits: dict[str, SplitData]
    embedding: np.ndarray | None
    """[V, D] float32 GloVe matrix when text is given as token ids, else None."""
    audio_mean: np.ndarray | None = None
    audio_std: np.ndarray | None = None
    fingerprint: str = ""
    """Hash of the fold's files' names, shapes, dtypes and sizes (not their contents)."""
    embedding_zeroed: int = 0

    def class_counts(self, num_classes: int) -> dict[str, list[int]]:
        return {
            name: np.bincount(split.labels, minlength=num_classes).tolist()
            for name, split in self.splits.items()
        }


@dataclass
class OpenedSplit:
    """One split's files, opened and checked: features stay memory-mapped, the rest is int64.

    In collecting mode (see :class:`FoldReader`) an entry is absent when its file had a problem.
    """

    name: str
    n: int | None = None
    """Utterances in the split's files (None when no file could give it)."""
    n_source: Path | None = None
    """The file ``n`` was taken from: the label file unless it was unusable."""
    labels: np.ndarray | None = None
    """[N] int64 class ids."""
    features: dict[str, np.ndarray] = field(default_factory=dict)
    """Modality -> [N, T, D] memory map; text as token ids is an int64 [N, T] array."""
    lengths: dict[str, np.ndarray] = field(default_factory=dict)
    """``A``/``V`` -> [N] int64 valid lengths."""
    paths: dict[str, Path] = field(default_factory=dict)
    """Role (``label``, a modality, ``A_len``, ``V_len``) -> file."""
    keep: np.ndarray | None = None
    """Rows used: those with video unless data.drop_zero_video is false."""

    @property
    def n_dropped(self) -> int:
        return 0 if self.n is None or self.keep is None else self.n - len(self.keep)


@dataclass
class OpenedFold:
    path: Path
    text_source: str
    splits: dict[str, OpenedSplit]
    embedding: np.ndarray | None
    """[V, D] float32 copy of W_embedding (text as ids only)."""


@dataclass
class ReaderOptions:
    modalities: tuple[str, ...] = MODALITIES
    num_classes: int = 7
    drop_zero_video: bool = True
    audio_standardize: str = "feature"
    text_source: str = "auto"
    on_nonfinite: str = "error"
    shapes: dict | None = None
    """Expected {modality: {seq_len, feat_dim}}; the files must match when given. Without it,
    the three splits must still agree with one another."""

    def __post_init__(self):
        self.modalities = tuple(self.modalities)
        for name, value, allowed in (
            ("audio_standardize", self.audio_standardize, AUDIO_STANDARDIZE),
            ("text_source", self.text_source, TEXT_SOURCES),
            ("on_nonfinite", self.on_nonfinite, ON_NONFINITE),
        ):
            if value not in allowed:
                raise ValueError(f"data.{name}={value!r}: expected one of {', '.join(allowed)}")


class FoldReader:
    """Open, validate and load one fold directory.

    By default the first problem raises :class:`DataError`. Given a ``problems`` list, the
    reader instead records every problem it finds there and goes on with the files that do not
    depend on the bad one (used by ``selfcross.check``).
    """

    def __init__(
        self,
        directory: str | Path,
        options: ReaderOptions | None = None,
        problems: list[DataError] | None = None,
    ):
        self.dir = Path(directory)
        self.opt = options or ReaderOptions()
        self.problems = problems
        self.nonfinite_zeroed: dict[Path, int] = {}
        """File -> NaN/inf values replaced with 0 (data.on_nonfinite=zero)."""
        self._used: dict[Path, np.ndarray] = {}
        self._source = "ids"
        self._vocab: int | None = None
        self._feature_shapes: dict[str, tuple[Path, tuple[int, ...]]] = {}

    def attempt(self, check: Callable, *args):
        """Run one check; when collecting, record its problem and return None instead."""
        try:
            return check(*args)
        except DataError as err:
            if self.problems is None:
                raise
            self.problems.append(err)
            return None

    # -- single files -----------------------------------------------------------------------
    def _open(self, path: Path) -> np.ndarray:
        if path not in self._used:
            self._used[path] = open_array(path)
        return self._used[path]

    def _text_source(self) -> str:
        if self.opt.text_source != "auto":
            return self.opt.text_source
        ids_present = (self.dir / EMBEDDING_FILE).is_file() and all(
            split_file(self.dir, s, TEXT_IDS_FILE).is_file() for s in SPLITS
        )
        dense_present = all(split_file(self.dir, s, TEXT_DENSE_FILE).is_file() for s in SPLITS)
        return "dense" if dense_present and not ids_present else "ids"

    def _expect_shape(self, path: Path, array: np.ndarray, modality: str, rank: int) -> None:
        """Rank, then sequence length and feature size against data.shapes and other splits."""
        if array.ndim != rank:
            raise DataError(path, f"expected {rank} dimensions, found shape {list(array.shape)}")
        if rank < 2:
            return
        want = (self.opt.shapes or {}).get(modality)
        if want is not None:
            got_len = array.shape[1]
            if got_len != want["seq_len"]:
                raise DataError(
                    path,
                    f"sequence length {got_len} does not match the configured "
                    f"data.shapes.{modality}.seq_len={want['seq_len']}",
                )
            if rank == 3 and array.shape[2] != want["feat_dim"]:
                raise DataError(
                    path,
                    f"feature size {array.shape[2]} does not match the configured "
                    f"data.shapes.{modality}.feat_dim={want['feat_dim']}",
                )
        if 0 in array.shape[1:]:
            raise DataError(path, f"has an empty dimension, shape {list(array.shape)}")
        first = self._feature_shapes.setdefault(modality, (path, array.shape[1:]))
        if first[1] != array.shape[1:]:
            raise DataError(
                path,
                f"shape {list(array.shape)} does not match {first[0].name} "
                f"{[array.shape[0], *first[1]]} beyond the utterance axis",
            )

    def _check_numeric(self, path: Path, array: np.ndarray) -> None:
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise DataError(path, f"expected numeric features, found dtype {array.dtype}")

    def _integers(
        self, path: Path, array: np.ndarray, low: int, high: int, what: str, bound: str = ""
    ) -> np.ndarray:
        """``array`` as int64 after checking every value is a whole number in low..high.

        Floats holding whole numbers are accepted (exactly converted); the range is checked on
        the stored values, before any conversion can overflow.
        """
        if np.issubdtype(array.dtype, np.floating):
            values = np.asarray(array)
            bad = ~np.isfinite(values)
            bad[~bad] = values[~bad] != np.round(values[~bad])
            if bad.any():
                row = _first_row(bad)
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
                    f"(first at utterance {_first_row(bad)})",
                )
        return np.asarray(array).astype(np.int64)

    def _check_n(self, split: OpenedSplit, path: Path, array: np.ndarray) -> None:
        """Every file of a split has the same number of utterances (the label file's)."""
        if split.n is None:
            split.n, split.n_source = array.shape[0], path
        elif array.shape[0] != split.n:
            raise DataError(
                path, f"has {array.shape[0]} utterances but {split.n_source.name} has {split.n}"
            )

    # -- one split, file by file --------------------------------------------------------------
    def _labels(self, split: OpenedSplit) -> None:
        path = split_file(self.dir, split.name, LABEL_FILE)
        labels = self._open(path)
        if labels.ndim != 1:
            raise DataError(path, f"expected shape [N], found {list(labels.shape)}")
        self._check_n(split, path, labels)
        split.labels = self._integers(path, labels, 0, self.opt.num_classes - 1, "class ids")
        split.paths["label"] = path

    def _features(self, split: OpenedSplit, modality: str) -> None:
        if modality == "T":
            stem, rank = (TEXT_DENSE_FILE, 3) if self._source == "dense" else (TEXT_IDS_FILE, 2)
        else:
            stem, rank, _ = FEATURE_FILES[modality]
        path = split_file(self.dir, split.name, stem)
        array = self._open(path)
        self._expect_shape(path, array, modality, rank)
        self._check_n(split, path, array)
        if rank == 2:  # token ids
            vocab = self._vocab
            if vocab is None:  # W_embedding is unusable (already reported): check the type only
                array = self._integers(path, array, 0, np.iinfo(np.int64).max, "token ids")
            else:
                array = self._integers(
                    path, array, 0, vocab - 1, f"token ids (vocabulary of {vocab})"
                )
        else:
            self._check_numeric(path, array)
        split.features[modality], split.paths[modality] = array, path

    def _lengths(self, split: OpenedSplit, modality: str) -> None:
        stem, _, len_stem = FEATURE_FILES[modality]
        path = split_file(self.dir, split.name, len_stem)
        lengths = self._open(path)
        if lengths.ndim != 1:
            raise DataError(path, f"expected shape [N], found {list(lengths.shape)}")
        self._check_n(split, path, lengths)
        if modality in split.features:
            padded = split.features[modality].shape[1]
            bound = f" (the padded length of {split.paths[modality].name})"
        elif modality in (self.opt.shapes or {}):
            padded = self.opt.shapes[modality]["seq_len"]
            bound = f" (data.shapes.{modality}.seq_len)"
        else:
            padded, bound = NO_PADDED_LENGTH, ""
        split.lengths[modality] = self._integers(path, lengths, 0, padded, "valid lengths", bound)
        split.paths[f"{modality}_len"] = path

    def _keep(self, split: OpenedSplit) -> None:
        """The rows used, and an error when none is left."""
        path = split_file(self.dir, split.name, LABEL_FILE)
        if self.opt.drop_zero_video:
            split.keep = np.flatnonzero(split.lengths["V"] > 0)
        else:
            split.keep = np.arange(split.n)
        if len(split.keep) == 0:
            raise DataError(
                path,
                f"the {split.name} split is empty"
                + (" after dropping utterances with no video" if split.n else ""),
            )

    def _open_split(self, name: str) -> OpenedSplit:
        split = OpenedSplit(name)
        self.attempt(self._labels, split)
        for modality in MODALITIES:
            if modality in self.opt.modalities:
                self.attempt(self._features, split, modality)
        need_len = {m for m in self.opt.modalities if m in FEATURE_FILES}
        if self.opt.drop_zero_video:
            need_len.add("V")
        for modality in FEATURE_FILES:
            if modality in need_len:
                self.attempt(self._lengths, split, modality)
        if split.n is not None and (not self.opt.drop_zero_video or "V" in split.lengths):
            self.attempt(self._keep, split)
        return split

    def _open_embedding(self) -> np.ndarray:
        path = self.dir / EMBEDDING_FILE
        emb = self._open(path)
        if emb.ndim != 2:
            raise DataError(path, f"expected shape [V, D], found {list(emb.shape)}")
        self._check_numeric(path, emb)
        if emb.shape[0] == 0 or emb.shape[1] == 0:
            raise DataError(path, f"has an empty dimension, shape {list(emb.shape)}")
        shapes = self.opt.shapes or {}
        if "T" in shapes and emb.shape[1] != shapes["T"]["feat_dim"]:
            raise DataError(
                path,
                f"embedding size {emb.shape[1]} does not match the configured "
                f"data.shapes.T.feat_dim={shapes['T']['feat_dim']}",
            )
        with np.errstate(over="ignore"):
            out = np.array(emb, dtype=np.float32)  # a private, writable copy
        self._vocab = emb.shape[0]
        self._nonfinite(
            path, emb, out, lambda row, what: f"{what}values, first in row {row} (token id {row})"
        )
        return out

    def _nonfinite(self, path: Path, raw: np.ndarray, block: np.ndarray, describe) -> None:
        """NaN or infinite values in ``block`` (``raw`` as float32): raise, or with
        ``on_nonfinite=zero`` replace them with 0 and count them in ``nonfinite_zeroed``.

        ``describe(row, prefix)`` words the problem at the first bad row, e.g. ``f"{prefix}values
        in ..."``: with the prefix ``"NaN or infinite "``, or, when the file's own values are
        finite but too large for float32, with "values beyond the float32 range" instead.
        """
        finite = np.isfinite(block)
        if finite.all():
            return
        if self.opt.on_nonfinite == "error":
            row = _first_row(~finite)
            if np.isfinite(raw[row]).all():
                problem = describe(row, "").replace("values", "values beyond the float32 range", 1)
            else:
                problem = describe(row, "NaN or infinite ")
            raise DataError(path, f"{problem} (set data.on_nonfinite=zero to replace them with 0)")
        self.nonfinite_zeroed[path] = self.nonfinite_zeroed.get(path, 0) + int((~finite).sum())
        block[~finite] = 0.0

    def open(self) -> OpenedFold:
        """Open and check every file the options need, without reading the feature values."""
        if not self.dir.is_dir():
            raise DataError(self.dir, "fold directory is missing")
        self._source = self._text_source()
        self._vocab = None
        embedding = None
        if "T" in self.opt.modalities and self._source == "ids":
            embedding = self.attempt(self._open_embedding)
        splits = {name: self._open_split(name) for name in SPLITS}
        return OpenedFold(self.dir, self._source, splits, embedding)

    # -- reading feature values ---------------------------------------------------------------
    def scan(
        self, path: Path, array: np.ndarray, rows: np.ndarray, split: str
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(rows, float32 block [b, ...])`` for ``array[rows]``, block by block.

        A NaN or infinite value raises (naming the split and the first bad utterance) or, with
        ``on_nonfinite=zero``, is replaced with 0 and counted in ``nonfinite_zeroed[path]``.
        """
        step = block_rows(array)
        for start in range(0, len(rows), step):
            idx = rows[start : start + step]
            raw = array[idx]
            with np.errstate(over="ignore"):
                block = raw.astype(np.float32, copy=False)
            self._nonfinite(
                path,
                raw,
                block,
                lambda row, what, idx=idx: (
                    f"{what}feature values in the {split} split, first "
                    f"at utterance {int(idx[row])}"
                ),
            )
            yield idx, block
            release_rows(array, int(idx[0]), int(idx[-1]) + 1)

    def _copy_rows(
        self, path: Path, array: np.ndarray, rows: np.ndarray, split: str, out_path=None
    ):
        """The kept rows as one contiguous float32 array (in memory, or a new ``.npy`` file at
        ``out_path``, memory-mapped); returns it and the values zeroed."""
        shape = (len(rows), *array.shape[1:])
        if out_path is None:
            out = np.empty(shape, dtype=np.float32)
        else:
            out = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.float32, shape=shape)
        start = 0
        for idx, block in self.scan(path, array, rows, split):
            out[start : start + len(idx)] = block
            release_rows(out, start, start + len(idx), written=True)
            start += len(idx)
        zeroed = self.nonfinite_zeroed.get(path, 0)
        if zeroed:
            log.warning(
                "%s: replaced %d NaN or infinite values with 0 (data.on_nonfinite=zero)",
                path,
                zeroed,
            )
        return out, zeroed

    def load(self, out_dir: Path | None = None) -> FoldData:
        """The kept rows of every split, checked, in memory; with ``out_dir`` the float
        features are streamed into ``out_dir/<modality>/<split>.npy`` instead (memory-mapped),
        so a fold larger than memory can be processed."""
        opened = self.open()
        splits: dict[str, SplitData] = {}
        for name, s in opened.splits.items():
            data = SplitData(features={}, labels=s.labels[s.keep], n_dropped=s.n_dropped)
            for modality in self.opt.modalities:
                src = s.features[modality]
                if modality == "T" and opened.text_source == "ids":  # int64, already checked
                    data.features[modality] = src[s.keep]
                else:
                    out_path = None
                    if out_dir is not None:
                        (Path(out_dir) / modality).mkdir(parents=True, exist_ok=True)
                        out_path = Path(out_dir) / modality / f"{name}.npy"
                    data.features[modality], zeroed = self._copy_rows(
                        s.paths[modality], src, s.keep, name, out_path
                    )
                    data.nonfinite_zeroed += zeroed
                if modality in s.lengths:
                    data.lengths[modality] = s.lengths[modality][s.keep]
            splits[name] = data

        fold = FoldData(path=self.dir, splits=splits, embedding=opened.embedding)
        fold.embedding_zeroed = self.nonfinite_zeroed.get(self.dir / EMBEDDING_FILE, 0)
        if fold.embedding_zeroed:
            log.warning(
                "%s: replaced %d NaN or infinite values with 0 (data.on_nonfinite=zero)",
                self.dir / EMBEDDING_FILE,
                fold.embedding_zeroed,
            )
        if "A" in self.opt.modalities and self.opt.audio_standardize != "none":
            standardize_audio(fold, self.opt.audio_standardize)
        fold.fingerprint = fingerprint(self.dir)
        missing = missing_classes(splits["train"].labels, self.opt.num_classes)
        if missing:
            log.warning(
                "%s: %s",
                split_file(self.dir, "train", LABEL_FILE),
                missing_classes_problem(missing),
            )
        return fold


def missing_classes(labels: np.ndarray, num_classes: int) -> list[int]:
    """Class ids with no utterance in ``labels``."""
    return np.flatnonzero(np.bincount(labels, minlength=num_classes) == 0).tolist()


def missing_classes_problem(missing: list[int], names=None) -> str:
    ids = ", ".join(f"{c} ({names[c]})" if names else str(c) for c in missing)
    return f"the train split has no utterance of class id(s) {ids}"


def _valid_mask(lengths: np.ndarray, seq_len: int) -> np.ndarray:
    """[N, T] bool: frame t of utterance n is inside its valid length."""
    return np.arange(seq_len)[None, :] < lengths[:, None]


def standardize_audio(fold: FoldData, mode: str) -> None:
    """Standardise audio features in place with statistics of the train split only.

    ``feature``: one mean/std per feature dimension over the valid (unpadded) frames; padded
    frames stay exactly zero, i.e. at the standardised mean. ``frame_feature``: one mean/std per
    (frame, feature) position over all train utterances, padding included, as the reference code
    fitted its scaler.
    """
    train = fold.splits["train"]
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
            raise DataError(fold.path, "the train split has no valid audio frame to standardise")
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
    for split in fold.splits.values():
        feats = split.features["A"]
        step = block_rows(feats)
        for start in range(0, len(feats), step):
            block = feats[start : start + step]
            block -= mean32
            block /= std32
            if mode == "feature":
                mask = _valid_mask(split.lengths["A"][start : start + step], feats.shape[1])
                block *= mask[..., None]
            release_rows(feats, start, start + step, written=True)
    fold.audio_mean, fold.audio_std = mean32, std32


def fingerprint(directory: Path) -> str:
    """A short hash of every ``.npy`` file's name, shape, dtype and size in a fold directory.

    It identifies the fold's data, whichever modalities a run reads, without reading the data.
    """
    meta = []
    for path in sorted(Path(directory).glob("*.npy")):
        try:
            header = _npy_header(path)
        except DataError:
            header = None
        shape, dtype = (list(header[0]), str(header[1])) if header else (None, None)
        meta.append((path.name, shape, dtype, path.stat().st_size))
    return hashlib.sha256(json.dumps(meta).encode()).hexdigest()[:16]
