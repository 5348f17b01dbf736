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
kept rows of each split are then copied exactly once into a contiguous float32 array. Any
problem raises :class:`~selfcross.errors.DataError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfcross import MODALITIES
from selfcross.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
EMBEDDING_FILE = "W_embedding.npy"
COPY_CHUNK = 256
"""Utterances per block when copying and checking features: bounds the temporary memory."""

# Per modality: the feature file, its rank, and the file of valid lengths (None: no lengths).
FEATURE_FILES = {
    "A": ("audio_mfcc", 3, "audio_seqN"),
    "V": ("video", 3, "video_seqN"),
}
TEXT_IDS_FILE = "nlp_trans"
TEXT_DENSE_FILE = "text"
LABEL_FILE = "label"
VIDEO_LEN_FILE = "video_seqN"

AUDIO_STANDARDIZE = ("feature", "frame_feature", "none")
TEXT_SOURCES = ("auto", "ids", "dense")
ON_NONFINITE = ("error", "zero")


def fold_dir(root: str | Path, fold: int) -> Path:
    return Path(root) / f"fold{fold:02d}"


def split_file(directory: Path, split: str, stem: str) -> Path:
    return directory / f"{split}_{stem}.npy"


def open_array(path: Path) -> np.ndarray:
    """Memory-map one ``.npy`` file, refusing anything that would need pickle."""
    if not path.is_file():
        raise DataError(path, "file is missing")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        text = str(err)
        if "object" in text.lower() or "pickle" in text.lower():
            raise DataError(
                path, "holds Python objects, which would need pickle to load"
            ) from None
        raise DataError(path, f"not a readable .npy array ({text})") from None
    except (OSError, EOFError) as err:
        raise DataError(path, f"cannot be read ({err})") from None
    if not isinstance(array, np.ndarray):
        raise DataError(path, "is not a single .npy array")
    if array.dtype.hasobject:
        raise DataError(path, "holds Python objects, which would need pickle to load")
    return array


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
    """Hash of the used files' names, shapes, dtypes and sizes (not their contents)."""

    def class_counts(self, num_classes: int) -> dict[str, list[int]]:
        return {
            name: np.bincount(split.labels, minlength=num_classes).tolist()
            for name, split in self.splits.items()
        }


@dataclass
class ReaderOptions:
    modalities: tuple[str, ...] = MODALITIES
    num_classes: int = 7
    drop_zero_video: bool = True
    audio_standardize: str = "feature"
    text_source: str = "auto"
    on_nonfinite: str = "error"
    shapes: dict | None = None
    """Expected {modality: {seq_len, feat_dim}}; the files must match when given."""

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
    """Open, validate and load one fold directory."""

    def __init__(self, directory: str | Path, options: ReaderOptions | None = None):
        self.dir = Path(directory)
        self.opt = options or ReaderOptions()
        self._used: dict[Path, np.ndarray] = {}

    # -- opening and checking -------------------------------------------------------------
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
        if array.ndim != rank:
            raise DataError(path, f"expected {rank} dimensions, found shape {list(array.shape)}")
        if rank < 2 or not self.opt.shapes or modality not in self.opt.shapes:
            return
        want = self.opt.shapes[modality]
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

    def _check_integer(self, path: Path, array: np.ndarray) -> None:
        if not np.issubdtype(array.dtype, np.integer):
            raise DataError(path, f"expected integer values, found dtype {array.dtype}")

    def _check_float(self, path: Path, array: np.ndarray) -> None:
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise DataError(path, f"expected numeric features, found dtype {array.dtype}")

    def _check_range(self, path: Path, array: np.ndarray, low: int, high: int, what: str):
        if array.size == 0:
            return
        lo, hi = int(array.min()), int(array.max())
        if lo < low or hi > high:
            bad = ((array < low) | (array > high)).reshape(len(array), -1).any(axis=1)
            raise DataError(
                path,
                f"{what} must lie in {low}..{high}, found {lo}..{hi} "
                f"(first at utterance {int(np.argmax(bad))})",
            )

    def _open_split(self, split: str, text_source: str) -> dict[str, np.ndarray]:
        """Open and check every file one split needs; return them by role."""
        arrays: dict[str, np.ndarray] = {}
        label_path = split_file(self.dir, split, LABEL_FILE)
        labels = self._open(label_path)
        if labels.ndim != 1:
            raise DataError(label_path, f"expected shape [N], found {list(labels.shape)}")
        self._check_integer(label_path, labels)
        self._check_range(label_path, labels, 0, self.opt.num_classes - 1, "class ids")
        arrays["label"] = labels
        n = labels.shape[0]

        def check_n(path: Path, array: np.ndarray) -> None:
            if array.shape[0] != n:
                raise DataError(
                    path,
                    f"has {array.shape[0]} utterances but {label_path.name} has {n}",
                )

        needs_video_len = self.opt.drop_zero_video or "V" in self.opt.modalities
        for modality, (stem, rank, len_stem) in FEATURE_FILES.items():
            wanted = modality in self.opt.modalities
            if not wanted and not (len_stem == VIDEO_LEN_FILE and needs_video_len):
                continue
            if wanted:
                path = split_file(self.dir, split, stem)
                feats = self._open(path)
                self._expect_shape(path, feats, modality, rank)
                self._check_float(path, feats)
                check_n(path, feats)
                arrays[modality] = feats
            len_path = split_file(self.dir, split, len_stem)
            lengths = self._open(len_path)
            if lengths.ndim != 1:
                raise DataError(len_path, f"expected shape [N], found {list(lengths.shape)}")
            self._check_integer(len_path, lengths)
            check_n(len_path, lengths)
            padded = arrays[modality].shape[1] if wanted else np.iinfo(np.int64).max
            self._check_range(len_path, lengths, 0, padded, "sequence lengths")
            arrays[f"{modality}_len"] = lengths

        if "T" in self.opt.modalities:
            if text_source == "ids":
                path = split_file(self.dir, split, TEXT_IDS_FILE)
                ids = self._open(path)
                self._expect_shape(path, ids, "T", 2)
                self._check_integer(path, ids)
                check_n(path, ids)
                vocab = self._open(self.dir / EMBEDDING_FILE).shape[0]
                self._check_range(path, ids, 0, vocab - 1, f"token ids (vocabulary of {vocab})")
                arrays["T"] = ids
            else:
                path = split_file(self.dir, split, TEXT_DENSE_FILE)
                dense = self._open(path)
                self._expect_shape(path, dense, "T", 3)
                self._check_float(path, dense)
                check_n(path, dense)
                arrays["T"] = dense
        return arrays

    def _open_embedding(self) -> np.ndarray:
        path = self.dir / EMBEDDING_FILE
        emb = self._open(path)
        if emb.ndim != 2:
            raise DataError(path, f"expected shape [V, D], found {list(emb.shape)}")
        self._check_float(path, emb)
        shapes = self.opt.shapes or {}
        if "T" in shapes and emb.shape[1] != shapes["T"]["feat_dim"]:
            raise DataError(
                path,
                f"embedding size {emb.shape[1]} does not match the configured "
                f"data.shapes.T.feat_dim={shapes['T']['feat_dim']}",
            )
        out = np.array(emb, dtype=np.float32)  # a private, writable copy
        if not np.isfinite(out).all():
            raise DataError(path, "contains NaN or infinite values")
        return out

    # -- loading --------------------------------------------------------------------------
    def _copy_rows(self, path: Path, array: np.ndarray, rows: np.ndarray, split: str):
        """Copy the kept rows into one float32 array, checking every value is finite."""
        out = np.empty((len(rows), *array.shape[1:]), dtype=np.float32)
        zeroed = 0
        for start in range(0, len(rows), COPY_CHUNK):
            idx = rows[start : start + COPY_CHUNK]
            block = out[start : start + len(idx)]
            block[...] = array[idx]
            finite = np.isfinite(block)
            if finite.all():
                continue
            if self.opt.on_nonfinite == "error":
                bad_row = int(idx[np.argmin(finite.reshape(len(idx), -1).all(axis=1))])
                raise DataError(
                    path,
                    f"NaN or infinite feature values in the {split} split, first at utterance "
                    f"{bad_row} (set data.on_nonfinite=zero to replace them with 0)",
                )
            zeroed += int((~finite).sum())
            block[~finite] = 0.0
        return out, zeroed

    def load(self) -> FoldData:
        if not self.dir.is_dir():
            raise DataError(self.dir, "fold directory is missing")
        text_source = self._text_source()
        opened = {split: self._open_split(split, text_source) for split in SPLITS}
        embedding = None
        if "T" in self.opt.modalities and text_source == "ids":
            embedding = self._open_embedding()

        splits: dict[str, SplitData] = {}
        for split, arrays in opened.items():
            n = arrays["label"].shape[0]
            keep = np.arange(n)
            if self.opt.drop_zero_video:
                keep = np.flatnonzero(np.asarray(arrays["V_len"]) > 0)
            if len(keep) == 0:
                raise DataError(
                    split_file(self.dir, split, LABEL_FILE),
                    f"the {split} split is empty"
                    + (" after dropping utterances with no video" if n else ""),
                )
            data = SplitData(
                features={},
                labels=np.asarray(arrays["label"])[keep].astype(np.int64),
                n_dropped=n - len(keep),
            )
            for modality in self.opt.modalities:
                src = arrays[modality]
                if modality == "T" and text_source == "ids":
                    data.features["T"] = np.asarray(src)[keep].astype(np.int64)
                    continue
                stem = TEXT_DENSE_FILE if modality == "T" else FEATURE_FILES[modality][0]
                data.features[modality], zeroed = self._copy_rows(
                    split_file(self.dir, split, stem), src, keep, split
                )
                data.nonfinite_zeroed += zeroed
                if f"{modality}_len" in arrays:
                    data.lengths[modality] = np.asarray(arrays[f"{modality}_len"])[keep].astype(
                        np.int64
                    )
            splits[split] = data

        fold = FoldData(path=self.dir, splits=splits, embedding=embedding)
        if "A" in self.opt.modalities and self.opt.audio_standardize != "none":
            standardize_audio(fold, self.opt.audio_standardize)
        fold.fingerprint = fingerprint(self._used)
        missing = [
            c for c, k in enumerate(fold.class_counts(self.opt.num_classes)["train"]) if k == 0
        ]
        if missing:
            log.warning(
                "%s: the train split has no utterance of class id(s) %s",
                self.dir,
                ", ".join(map(str, missing)),
            )
        return fold


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
        for start in range(0, len(x), COPY_CHUNK):
            block = x[start : start + COPY_CHUNK].astype(np.float64)
            mask = _valid_mask(lengths[start : start + COPY_CHUNK], x.shape[1])
            total += (block * mask[..., None]).sum(axis=(0, 1))
            total_sq += ((block**2) * mask[..., None]).sum(axis=(0, 1))
            count += int(mask.sum())
        if count == 0:
            raise DataError(fold.path, "the train split has no valid audio frame to standardise")
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    else:
        mean = x.mean(axis=0, dtype=np.float64)
        std = x.std(axis=0, dtype=np.float64)
    std = np.where(std < 1e-8, 1.0, std)
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)
    for split in fold.splits.values():
        feats = split.features["A"]
        for start in range(0, len(feats), COPY_CHUNK):
            block = feats[start : start + COPY_CHUNK]
            block -= mean32
            block /= std32
            if mode == "feature":
                mask = _valid_mask(split.lengths["A"][start : start + COPY_CHUNK], feats.shape[1])
                block *= mask[..., None]
    fold.audio_mean, fold.audio_std = mean32, std32


def fingerprint(arrays: dict[Path, np.ndarray]) -> str:
    """A short hash of the files' names, shapes, dtypes and byte sizes."""
    meta = sorted(
        (p.name, list(a.shape), str(a.dtype), p.stat().st_size) for p, a in arrays.items()
    )
    return hashlib.sha256(json.dumps(meta).encode()).hexdigest()[:16]
