"""The fold reader: open, check and load one processed fold directory (see selfcross.data.npy).

Every array is opened memory-mapped with ``allow_pickle=False`` and checked before use; the
kept rows of each split are then copied exactly once into a contiguous float32 array, in blocks
of bounded size, checking that every value is finite (selfcross.data.preprocess drops rows,
handles non-finite values and standardises audio). Any problem raises
:class:`~selfcross.errors.DataError` whose message is ``<path>: <problem>``.

What a fold is once opened and once read (the dataclasses) lives in :mod:`selfcross.data.fold`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from selfcross import MODALITIES
from selfcross.data import sanity
from selfcross.data.fingerprint import fingerprint as fold_fingerprint
from selfcross.data.fold import (
    FoldData,
    OpenedFold,
    OpenedSplit,
    ReaderOptions,
    SplitData,
    missing_classes,
    missing_classes_problem,
)
from selfcross.data.npy import (
    EMBEDDING_FILE,
    FEATURE_FILES,
    LABEL_FILE,
    SPLITS,
    TEXT_DENSE_FILE,
    TEXT_IDS_FILE,
    block_rows,
    check_configured_shape,
    check_embedding,
    check_numeric,
    integers,
    open_array,
    release_rows,
    split_file,
    text_source,
)
from selfcross.data.preprocess import (
    copy_blocks,
    kept_rows,
    replace_nonfinite,
    standardize_audio,
)
from selfcross.errors import DataError

log = logging.getLogger(__name__)

NO_PADDED_LENGTH = np.iinfo(np.int32).max
"""Upper bound for video lengths when neither the video file nor data.shapes gives one."""


class FoldReader:
    """Open, validate and load one fold directory.

    By default the first problem raises :class:`DataError`. Given a ``problems`` list, the
    reader instead records every problem it finds there and goes on with the files that do not
    depend on the bad one (used by :mod:`selfcross.data.validate`).
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
        """Per modality: the first file read and its whole shape (rows included)."""

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

    def _expect_shape(self, path: Path, array: np.ndarray, modality: str, rank: int) -> None:
        """Rank, then sequence length and feature size against data.shapes and other splits."""
        if array.ndim != rank:
            raise DataError(path, f"expected {rank} dimensions, found shape {list(array.shape)}")
        if rank < 2:
            return
        check_configured_shape(path, array, modality, (self.opt.shapes or {}).get(modality))
        if 0 in array.shape[1:]:
            raise DataError(path, f"has an empty dimension, shape {list(array.shape)}")
        first_path, first_shape = self._feature_shapes.setdefault(modality, (path, array.shape))
        if first_shape[1:] != array.shape[1:]:
            raise DataError(
                path,
                f"shape {list(array.shape)} does not match {first_path.name} "
                f"{list(first_shape)} beyond the utterance axis",
            )

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
        class_map = self.opt.class_map
        n_ids = self.opt.num_classes if class_map is None else len(class_map)
        split.labels = integers(path, labels, 0, n_ids - 1, "class ids")
        if class_map is not None:  # the class set's ids; -1 for a class outside it
            split.labels = np.asarray(class_map, dtype=np.int64)[split.labels]
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
                array = integers(path, array, 0, np.iinfo(np.int64).max, "token ids")
            else:
                array = integers(path, array, 0, vocab - 1, f"token ids (vocabulary of {vocab})")
        else:
            check_numeric(path, array)
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
        split.lengths[modality] = integers(path, lengths, 0, padded, "valid lengths", bound)
        split.paths[f"{modality}_len"] = path

    def _keep(self, split: OpenedSplit) -> None:
        """The rows used, and an error when none is left."""
        path = split_file(self.dir, split.name, LABEL_FILE)
        video = split.lengths.get("V")
        keep = kept_rows(path, split.name, split.n, video, self.opt.drop_zero_video)
        if self.opt.class_map is not None and split.labels is not None:
            inside = keep[split.labels[keep] >= 0]
            split.n_outside_set = int((split.labels < 0).sum())
            if not len(inside):
                raise DataError(path, f"the {split.name} split has no utterance of the class set")
            keep = inside
        split.keep = keep

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
        check_embedding(path, emb, (self.opt.shapes or {}).get("T"))
        with np.errstate(over="ignore"):
            out = np.array(emb, dtype=np.float32)  # a private, writable copy
        self._vocab = emb.shape[0]
        self._nonfinite(
            path, emb, out, lambda row, what: f"{what}values, first in row {row} (token id {row})"
        )
        return out

    def _nonfinite(self, path: Path, raw: np.ndarray, block: np.ndarray, describe) -> None:
        """Refuse or replace NaN and infinite values (see ``preprocess.replace_nonfinite``);
        replaced values are counted in ``nonfinite_zeroed``."""
        zeroed = replace_nonfinite(path, raw, block, describe, self.opt.on_nonfinite)
        if zeroed:
            self.nonfinite_zeroed[path] = self.nonfinite_zeroed.get(path, 0) + zeroed

    def open(self) -> OpenedFold:
        """Open and check every file the options need, without reading the feature values."""
        if not self.dir.is_dir():
            raise DataError(self.dir, "fold directory is missing")
        self._source = text_source(self.dir, self.opt.text_source)
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
        self, path: Path, array: np.ndarray, rows: np.ndarray, split: str, out_path=None,
        lengths: tuple[Path, np.ndarray] | None = None,
    ):  # fmt: skip
        """The kept rows as one contiguous float32 array (in memory, or a new ``.npy`` file at
        ``out_path``, memory-mapped); returns it and the values zeroed. With ``lengths`` (the
        lengths file and its [N] values), frames beyond the valid lengths are checked to be
        padding on the way."""
        beyond = [0]

        def blocks():
            for idx, block in self.scan(path, array, rows, split):
                if lengths is not None:
                    beyond[0] += sanity.frames_beyond_length(block, lengths[1][idx])
                yield idx, block

        shape = (len(rows), *array.shape[1:])
        out = copy_blocks(blocks(), shape, out_path)
        if lengths is not None:
            problem = sanity.padding_problem(beyond[0], len(rows), split, lengths[0].name)
            if problem:
                log.warning("%s: %s", lengths[0], problem)
        zeroed = self.nonfinite_zeroed.get(path, 0)
        _warn_zeroed(path, zeroed)
        return out, zeroed

    def load(self, out_dir: Path | None = None, fingerprint: str | None = None) -> FoldData:
        """The kept rows of every split, checked, in memory; with ``out_dir`` the float
        features are streamed into ``out_dir/<modality>/<split>.npy`` instead (memory-mapped),
        so a fold larger than memory can be processed. ``fingerprint``: the fold's, when the
        caller has already computed it (it reads every byte)."""
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
                    lengths = None
                    if modality in s.lengths:
                        lengths = (s.paths[f"{modality}_len"], s.lengths[modality])
                    data.features[modality], zeroed = self._copy_rows(
                        s.paths[modality], src, s.keep, name, out_path, lengths
                    )
                    data.nonfinite_zeroed += zeroed
                if modality in s.lengths:
                    data.lengths[modality] = s.lengths[modality][s.keep]
            splits[name] = data

        fold = FoldData(path=self.dir, splits=splits, embedding=opened.embedding)
        fold.embedding_zeroed = self.nonfinite_zeroed.get(self.dir / EMBEDDING_FILE, 0)
        _warn_zeroed(self.dir / EMBEDDING_FILE, fold.embedding_zeroed)
        if "A" in self.opt.modalities and self.opt.audio_standardize != "none":
            fold.audio_mean, fold.audio_std = standardize_audio(
                fold.splits, self.opt.audio_standardize, opened.splits["train"].paths["A_len"]
            )
        fold.fingerprint = fingerprint or fold_fingerprint(self.dir)
        sanity.warn_fold(self.dir, opened.splits, splits, self.opt)
        missing = missing_classes(splits["train"].labels, self.opt.num_classes)
        if missing:
            log.warning(
                "%s: %s",
                split_file(self.dir, "train", LABEL_FILE),
                missing_classes_problem(missing),
            )
        return fold


def _warn_zeroed(path: Path, count: int) -> None:
    if count:
        log.warning(
            "%s: replaced %d NaN or infinite values with 0 (data.on_nonfinite=zero)", path, count
        )
