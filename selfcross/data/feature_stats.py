"""Statistics of one modality of one split, read block by block: valid lengths, padding and
feature values (count, mean, std, range), as ``selfcross.check`` reports them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from selfcross.data.fold import OpenedSplit
from selfcross.data.reader import FoldReader


class Moments:
    """Count, mean, variance, min and max of a stream of values (Chan et al.'s pairwise update)."""

    def __init__(self):
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, values: np.ndarray) -> None:
        """Add every value of ``values`` (any shape)."""
        if values.size:
            x = values.ravel()
            mean = float(x.sum(dtype=np.float64)) / x.size
            deviation = x - np.asarray(mean, dtype=x.dtype)  # one temporary of x's size
            np.square(deviation, out=deviation)
            self._merge(x.size, mean, float(deviation.sum(dtype=np.float64)), x.min(), x.max())

    def add_rows(self, rows: np.ndarray, repeats: np.ndarray) -> None:
        """Add each row of ``rows`` [K, D] ``repeats`` [K] times (token counts x GloVe rows)."""
        used = repeats > 0
        rows, repeats = rows[used].astype(np.float64), repeats[used]
        if len(rows):
            count = int(repeats.sum()) * rows.shape[1]
            mean = float(repeats @ rows.sum(axis=1)) / count
            m2 = float(repeats @ ((rows - mean) ** 2).sum(axis=1))
            self._merge(count, mean, m2, rows.min(), rows.max())

    def _merge(self, count: int, mean: float, m2: float, low, high) -> None:
        total = self.count + count
        delta = mean - self.mean
        self.m2 += m2 + delta**2 * self.count * count / total
        self.mean += delta * count / total
        self.count = total
        self.min = min(self.min, float(low))
        self.max = max(self.max, float(high))

    @property
    def std(self) -> float:
        """Population standard deviation (numpy's default, ddof=0)."""
        return math.sqrt(self.m2 / self.count) if self.count else math.nan


@dataclass
class FeatureStats:
    """One modality of one split, over the utterances used (after dropping)."""

    utterances: int
    length_min: int
    length_mean: float
    length_max: int
    """Valid length: from ``*_seqN`` (A, V); non-padding tokens (T ids) or non-zero frames."""
    padding: float
    """Share of padded frames or tokens (token id 0) among all positions."""
    values: int
    """Feature values over valid frames (text as ids: the GloVe vectors of non-padding tokens)."""
    mean: float
    std: float
    min: float
    max: float
    vocab_size: int | None = None
    tokens_used: int | None = None
    """Distinct non-padding token ids that occur."""


def length_stats(lengths: np.ndarray, padded: int, moments: Moments, **extra) -> FeatureStats:
    return FeatureStats(
        utterances=len(lengths),
        length_min=int(lengths.min()),
        length_mean=float(lengths.mean(dtype=np.float64)),
        length_max=int(lengths.max()),
        padding=1.0 - float(lengths.sum(dtype=np.int64)) / (len(lengths) * padded),
        values=moments.count,
        mean=moments.mean if moments.count else math.nan,
        std=moments.std,
        min=moments.min if moments.count else math.nan,
        max=moments.max if moments.count else math.nan,
        **extra,
    )


def sequence_stats(reader: FoldReader, split: OpenedSplit, modality: str, rows) -> FeatureStats:
    """Values of the frames inside each utterance's valid length.

    Without lengths (text given as vectors, or a bad lengths file already reported), a frame is
    valid when any of its values is non-zero.
    """
    array, lengths = split.features[modality], split.lengths.get(modality)
    moments = Moments()
    seen = np.zeros(len(rows), dtype=np.int64)
    start = 0
    for idx, block in reader.scan(split.paths[modality], array, rows, split.name):
        if lengths is None:
            valid = block.any(axis=2)
        else:
            valid = np.arange(block.shape[1])[None, :] < lengths[idx][:, None]
        seen[start : start + len(idx)] = valid.sum(axis=1)
        start += len(idx)
        moments.add(block[valid])
    return length_stats(seen, array.shape[1], moments)


def token_stats(ids: np.ndarray, embedding: np.ndarray | None) -> FeatureStats:
    """Token ids [N, T]: lengths are non-padding tokens; values are their GloVe vectors."""
    moments = Moments()
    if embedding is None:  # W_embedding is unusable (reported): no vector to describe
        vocab, used = None, int(np.unique(ids[ids != 0]).size)
    else:
        vocab = len(embedding)
        counts = np.bincount(ids.ravel(), minlength=vocab)  # ids are checked to be < vocab
        counts[0] = 0  # padding
        moments.add_rows(embedding, counts)
        used = int((counts > 0).sum())
    return length_stats(
        (ids != 0).sum(axis=1),
        ids.shape[1],
        moments,
        vocab_size=vocab,
        tokens_used=used,
    )
