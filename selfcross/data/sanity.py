"""Data that can still be used honestly but is probably not what was meant: warnings, with counts.

The reader (:mod:`selfcross.data.reader`) refuses what cannot be used; these checks describe
what can: lengths files (``*_seqN.npy``) that the zero padding contradicts, utterances whose
audio has length 0 or whose text is all padding, and class distributions that change what WA
means (a dev split of one class, a class missing from the test split). Each is one line naming
the file and how many utterances it concerns.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from selfcross.data.npy import LABEL_FILE, split_file

log = logging.getLogger("selfcross.data.reader")

PAD_ID = 0
"""The token id of text padding."""


def frames_beyond_length(block: np.ndarray, lengths: np.ndarray) -> int:
    """How many utterances of ``block`` [b, T, D] hold a non-zero value in a frame at or after
    their valid length (``lengths`` [b])."""
    beyond = np.arange(block.shape[1])[None, :] >= lengths[:, None]  # [b, T]
    nonzero = (block != 0).any(axis=2)  # [b, T]
    return int((beyond & nonzero).any(axis=1).sum())


def padding_problem(count: int, total: int, split: str, lengths_file: str) -> str | None:
    if not count:
        return None
    return (
        f"{count} of {total} utterances of the {split} split hold non-zero frames beyond "
        f"their valid length in {lengths_file}: the model reads every frame, so the lengths or "
        "the padding are wrong"
    )


def zero_length_problem(lengths: np.ndarray, split: str, what: str) -> str | None:
    count = int((np.asarray(lengths) == 0).sum())
    if not count:
        return None
    return (
        f"{count} of {len(lengths)} utterances of the {split} split have zero-length {what} "
        "(only padding): they are kept, with no evidence in that modality"
    )


def empty_text_problem(features: np.ndarray, split: str) -> str | None:
    """Rows of token ids that are all padding (``PAD_ID``), or dense rows that are all zero."""
    rows = np.asarray(features).reshape(len(features), -1)
    count = int((rows == PAD_ID).all(axis=1).sum()) if len(rows) else 0
    if not count:
        return None
    return (
        f"{count} of {len(rows)} utterances of the {split} split have text that is all "
        "padding: they are kept, with no evidence in that modality"
    )


def class_problems(
    labels: dict[str, np.ndarray], num_classes: int, class_names=None
) -> list[tuple[str, str]]:
    """``(split, warning)`` for a dev split of a single class and classes missing from the
    test split, saying what WA (the mean per-class recall) then measures."""
    problems = []
    dev = np.unique(labels["dev"])
    if len(dev) == 1:
        c = int(dev[0])
        problems.append((
            "dev",
            f"the dev split holds only class {_name(c, class_names)}: its WA is that class's "
            "recall, equal to its UWA, so early stopping and the best checkpoint reward "
            "predicting that class",
        ))  # fmt: skip
    present = set(np.unique(labels["test"]).tolist())
    missing = [c for c in range(num_classes) if c not in present]
    if missing:
        names = ", ".join(_name(c, class_names) for c in missing)
        problems.append((
            "test",
            f"the test split has no utterance of class id(s) {names}: test WA is the mean "
            f"recall over the {len(present)} classes present, not over all {num_classes}",
        ))  # fmt: skip
    return problems


def _name(c: int, class_names) -> str:
    return f"{c} ({class_names[c]})" if class_names else str(c)


def warn_fold(directory: Path, opened: dict, splits: dict, options) -> None:
    """Log each warning of a read fold: ``opened`` (the reader's OpenedSplit per split, for
    file paths), ``splits`` (the kept rows' SplitData), ``options`` (its ReaderOptions)."""
    for name, data in splits.items():
        paths = opened[name].paths
        if "A" in data.lengths and "A" in options.modalities:
            problem = zero_length_problem(data.lengths["A"], name, "audio")
            if problem:
                log.warning("%s: %s", paths["A_len"], problem)
        if "T" in data.features:
            problem = empty_text_problem(data.features["T"], name)
            if problem:
                log.warning("%s: %s", paths["T"], problem)
    labels = {name: data.labels for name, data in splits.items()}
    for split, problem in class_problems(labels, options.num_classes):
        log.warning("%s: %s", split_file(directory, split, LABEL_FILE), problem)
