"""Blanking modalities: what "a modality is absent" means, for the missing-modality evaluation
(``python -m selfcross.ablate``) and for modality dropout in training (``model.modality_dropout``).

A blanked modality's input ``[L, D]`` is replaced, every frame of it, by a constant frame:

- ``zeros``: all zeros (the value the data use for padding);
- ``train_mean``: the per-feature mean ``[D]`` of that modality's input over every frame of
  every utterance of the fold's train split, as the network receives it: after preprocessing
  (utterances without video dropped, audio standardised, text looked up in the embedding),
  padded frames included. It is the expected input frame, so a blanked modality looks like the
  average training input rather than like silence; with padding counted it is exactly the mean
  of the tensor the network was trained on. Computed in float64 over the split in file order,
  then cast to float32, so it is the same on every machine.

Only the modality keys (``T``, ``V``, ``A``) of a batch are touched; every other key (labels,
sequence lengths, ...) passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

from selfcross import MODALITIES
from selfcross.errors import ConfigError

FILLS = ("zeros", "train_mean")
"""The ways a blanked modality is filled."""

CHUNK = 256
"""Utterances summed at a time when computing train means (bounded memory on paper size)."""


def check_fill(fill: str, where: str = "fill") -> str:
    if fill not in FILLS:
        raise ConfigError(f"{where}={fill!r}: expected one of {', '.join(FILLS)}")
    return fill


def train_means(datamodule, modalities: Iterable[str]) -> dict[str, torch.Tensor]:
    """The ``train_mean`` fill: per modality, the float32 [D] mean over all train frames (see
    the module docstring), from a datamodule whose ``setup`` has run."""
    fold = datamodule.fold_data
    split = fold.splits["train"]
    means = {}
    for m in modalities:
        x = split.features[m]
        if m == "T" and x.dtype.kind in "iu":  # token ids: mean of the looked-up vectors
            counts = np.bincount(np.asarray(x).reshape(-1), minlength=len(fold.embedding))
            mean = counts.astype(np.float64) @ fold.embedding.astype(np.float64) / x.size
        else:
            total = np.zeros(x.shape[-1], dtype=np.float64)
            for start in range(0, len(x), CHUNK):
                block = np.asarray(x[start : start + CHUNK], dtype=np.float64)
                total += block.reshape(-1, x.shape[-1]).sum(axis=0)
            mean = total / (x.shape[0] * x.shape[1])
        means[m] = torch.from_numpy(mean.astype(np.float32))
    return means


def blank(
    batch: Mapping[str, torch.Tensor],
    absent: Mapping[str, torch.Tensor | bool],
    fill: str = "zeros",
    means: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """A copy of ``batch`` with modalities blanked.

    Args:
        batch: ``{modality: [B, L, D], ...other keys}``; not modified.
        absent: modality -> True (every sample) or a bool [B] (the samples to blank).
        fill: ``zeros`` or ``train_mean``.
        means: modality -> [D] train means (needed for ``train_mean``).
    """
    check_fill(fill)
    out = dict(batch)
    for m, rows in absent.items():
        if m not in MODALITIES or m not in batch:
            raise KeyError(f"cannot blank {m!r}: the batch has modalities {_present(batch)}")
        x = batch[m]
        if fill == "zeros":
            value = torch.zeros((), dtype=x.dtype, device=x.device)
        else:
            if means is None or m not in means:
                raise ValueError(f"fill=train_mean needs the train mean of {m}")
            value = means[m].to(device=x.device, dtype=x.dtype)
        if isinstance(rows, bool):
            if rows:
                out[m] = value.expand_as(x).clone()
            continue
        rows = rows.to(device=x.device, dtype=torch.bool).view(-1, *([1] * (x.dim() - 1)))
        out[m] = torch.where(rows, value, x)
    return out


def _present(batch: Mapping) -> str:
    return "".join(m for m in MODALITIES if m in batch) or "none"


def dropout_masks(
    batch_size: int, modalities: Iterable[str], p: float, device=None, generator=None
) -> dict[str, torch.Tensor]:
    """Modality dropout: modality -> bool [B], True where that sample's modality is blanked.

    Each modality of each sample is blanked independently with probability ``p``. A sample
    whose every modality was drawn blank keeps exactly one, chosen uniformly at random among
    its modalities, so no sample is ever left without input (with a single modality nothing is
    ever blanked). Draws come from ``generator`` (default: torch's global generator, seeded by
    the run's seed), and only when ``p > 0``.
    """
    modalities = list(modalities)
    k = len(modalities)
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"model.modality_dropout={p}: expected a probability in [0, 1)")
    if p == 0 or k < 2:
        return {m: torch.zeros(batch_size, dtype=torch.bool, device=device) for m in modalities}
    drop = torch.rand(batch_size, k, generator=generator, device=device) < p
    everything = drop.all(dim=1)
    keep = torch.randint(k, (batch_size,), generator=generator, device=device)
    kept = torch.nn.functional.one_hot(keep, k).bool() & everything[:, None]
    drop &= ~kept
    return {m: drop[:, i] for i, m in enumerate(modalities)}
