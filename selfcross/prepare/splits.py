"""Fold partitions: five random stratified folds, leave one session out, or leave one speaker out.

``random``: per class, the utterances are shuffled once (seeded); fold k's test set is the k-th
block of 15 % of each class (so the five test sets are disjoint, covering 75 % of the data; a
class too small for five disjoint blocks wraps around), its dev set 5 % of each class drawn from
the rest with a per-fold generator, and the remainder is train: 8 : 0.5 : 1.5.

``session``: fold k tests on session k; the dev set is drawn, stratified by class, from the
other sessions in the train : dev proportion (8 : 0.5), the remainder is train.

``speaker``: leave one speaker out within the held-out session (two speakers per IEMOCAP
session, ten folds): fold 2k-1 validates on session k's female speaker and tests on its male
one, fold 2k the reverse; train is the other sessions. No speaker of the test split is in train
or dev.

A class with at least two utterances in the pool has at least one in the test split (``random``)
or the dev split (``session``), and one in dev too (``random``) when it has three or more.
"""

from __future__ import annotations

import numpy as np

from selfcross.data.npy import SPLITS
from selfcross.errors import ConfigError

SPLIT_MODES = ("random", "session", "speaker")
SPEAKERS = ("F", "M")
"""The two speakers of an IEMOCAP session, by the letter of their utterance ids."""


def speaker_fold_session(fold: int) -> tuple[int, str, str]:
    """(session, dev speaker, test speaker) of a ``split=speaker`` fold (fold 3: session 2,
    F validates, M is tested)."""
    session, second = divmod(fold - 1, 2)
    dev, test = SPEAKERS if second == 0 else SPEAKERS[::-1]
    return session + 1, dev, test


def _share(n: int, ratio: float) -> int:
    """Members of a class of ``n`` that go to a split of this ratio: at least one if n >= 2."""
    k = round(ratio * n)
    return max(k, 1) if n >= 2 else k


def random_folds(
    labels: np.ndarray, folds: list[int], ratios: tuple[float, ...], seed: int
) -> dict[int, dict[str, np.ndarray]]:
    """{fold: {split: sorted utterance indices}} for ``split=random``."""
    train_r, dev_r, test_r = (r / sum(ratios) for r in ratios)
    order = {
        c: np.random.default_rng([seed, 0, int(c)]).permutation(np.flatnonzero(labels == c))
        for c in np.unique(labels)
    }
    out = {}
    for fold in folds:
        parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
        rng = np.random.default_rng([seed, 1, fold])
        for members in order.values():
            n = len(members)
            n_test = _share(n, test_r)
            test_pos = np.arange((fold - 1) * n_test, fold * n_test) % n
            rest = np.delete(members, test_pos)
            n_dev = min(_share(n, dev_r), max(len(rest) - 1, 0))
            rest = rng.permutation(rest)
            parts["test"].append(members[test_pos])
            parts["dev"].append(rest[:n_dev])
            parts["train"].append(rest[n_dev:])
        out[fold] = {s: np.sort(np.concatenate(parts[s])).astype(np.int64) for s in SPLITS}
    return out


def session_folds(
    labels: np.ndarray,
    sessions: np.ndarray,
    folds: list[int],
    ratios: tuple[float, ...],
    seed: int,
) -> dict[int, dict[str, np.ndarray]]:
    """{fold: {split: sorted utterance indices}} for ``split=session`` (fold k tests session k)."""
    dev_r = ratios[1] / (ratios[0] + ratios[1])
    out = {}
    for fold in folds:
        test = np.flatnonzero(sessions == fold)
        if len(test) == 0:
            raise ConfigError(f"folds: fold {fold} would test on session {fold}, not read")
        rng = np.random.default_rng([seed, 2, fold])
        dev, train = [], []
        others = np.flatnonzero(sessions != fold)
        for c in np.unique(labels[others]):
            members = rng.permutation(others[labels[others] == c])
            n_dev = _share(len(members), dev_r)
            dev.append(members[:n_dev])
            train.append(members[n_dev:])
        out[fold] = {
            "train": np.sort(np.concatenate(train)).astype(np.int64),
            "dev": np.sort(np.concatenate(dev)).astype(np.int64),
            "test": test.astype(np.int64),
        }
    return out


def speaker_folds(
    sessions: np.ndarray, speakers: np.ndarray, folds: list[int]
) -> dict[int, dict[str, np.ndarray]]:
    """{fold: {split: sorted utterance indices}} for ``split=speaker``
    (:func:`speaker_fold_session`)."""
    out = {}
    for fold in folds:
        session, dev_speaker, test_speaker = speaker_fold_session(fold)
        held_out = sessions == session
        test = np.flatnonzero(held_out & (speakers == test_speaker))
        dev = np.flatnonzero(held_out & (speakers == dev_speaker))
        if len(test) == 0 or len(dev) == 0:
            raise ConfigError(
                f"folds: fold {fold} would validate on speaker {dev_speaker} and test on "
                f"speaker {test_speaker} of session {session}, which has none of one of them"
            )
        out[fold] = {
            "train": np.flatnonzero(~held_out).astype(np.int64),
            "dev": dev.astype(np.int64),
            "test": test.astype(np.int64),
        }
    return out


def make_folds(
    mode: str,
    labels: np.ndarray,
    sessions: np.ndarray,
    folds: list[int],
    ratios: tuple[float, ...],
    seed: int,
    speakers: np.ndarray | None = None,
) -> dict[int, dict[str, np.ndarray]]:
    if mode == "random":
        return random_folds(labels, folds, ratios, seed)
    if mode == "session":
        return session_folds(labels, sessions, folds, ratios, seed)
    if mode == "speaker" and speakers is not None:
        return speaker_folds(sessions, speakers, folds)
    raise ConfigError(f"split={mode}: expected one of {', '.join(SPLIT_MODES)}")
