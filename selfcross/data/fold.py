"""What one processed fold is once opened and once read: the reader's options, the opened
(checked, memory-mapped) files and the loaded splits, as plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfcross import MODALITIES
from selfcross.data.preprocess import AUDIO_STANDARDIZE, ON_NONFINITE

TEXT_SOURCES = ("auto", "ids", "dense")


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
    """The fold's files' layout and contents (:mod:`selfcross.data.fingerprint`)."""
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
    """Rows used: those with video unless data.drop_zero_video is false, and of a class of the
    class set (``ReaderOptions.class_map``)."""
    n_outside_set: int = 0
    """Rows left out because their class is outside the class set (with video or not)."""

    @property
    def n_dropped(self) -> int:
        """Rows of the class set dropped for having no video."""
        if self.n is None or self.keep is None:
            return 0
        return self.n - len(self.keep) - self.n_outside_set


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
    class_map: tuple[int, ...] | None = None
    """A class set applied on loading (``data.class_set``): the class id in the set of each
    class id in the files (-1: left out); None reads the files' class ids as they are."""

    def __post_init__(self):
        self.modalities = tuple(self.modalities)
        for name, value, allowed in (
            ("audio_standardize", self.audio_standardize, AUDIO_STANDARDIZE),
            ("text_source", self.text_source, TEXT_SOURCES),
            ("on_nonfinite", self.on_nonfinite, ON_NONFINITE),
        ):
            if value not in allowed:
                raise ValueError(f"data.{name}={value!r}: expected one of {', '.join(allowed)}")


def missing_classes(labels: np.ndarray, num_classes: int) -> list[int]:
    """Class ids with no utterance in ``labels``."""
    return np.flatnonzero(np.bincount(labels, minlength=num_classes) == 0).tolist()


def missing_classes_problem(missing: list[int], names=None) -> str:
    ids = ", ".join(f"{c} ({names[c]})" if names else str(c) for c in missing)
    return f"the train split has no utterance of class id(s) {ids}"
