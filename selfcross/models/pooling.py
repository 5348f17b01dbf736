"""Temporal averaging and the fusion poolings (statistical pooling and its noSP ablation)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def temporal_average(x: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean over time: [B, T, E] -> [B, E].

    With ``valid`` (bool [B, T]) the mean is over the valid steps only; a sample without any
    valid step averages to zeros.
    """
    if valid is None:
        return x.mean(dim=1)
    weights = valid.to(x.dtype).unsqueeze(-1)  # [B, T, 1]
    count = weights.sum(dim=1).clamp(min=1.0)
    return (x * weights).sum(dim=1) / count


class StatisticalPooling(nn.Module):
    """Mean and standard deviation across the K attention streams: [B, K, E] -> [B, 2E].

    The std is the unbiased one (``torch.std_mean``'s default), as in the reference. With K = 1
    (a uni-modal self model) it is undefined; zeros are used instead, so the classifier input
    keeps its size and the std half carries no information.
    """

    def forward(self, streams: Tensor) -> Tensor:
        if streams.shape[1] == 1:
            mean = streams[:, 0]
            return torch.cat([mean, torch.zeros_like(mean)], dim=-1)
        std, mean = torch.std_mean(streams, dim=1)
        return torch.cat([mean, std], dim=-1)

    @staticmethod
    def out_features(k: int, embed_dim: int) -> int:
        return 2 * embed_dim


class ConcatPooling(nn.Module):
    """The noSP ablation: concatenate the K temporal averages, [B, K, E] -> [B, K*E]."""

    def forward(self, streams: Tensor) -> Tensor:
        return streams.flatten(start_dim=1)

    @staticmethod
    def out_features(k: int, embed_dim: int) -> int:
        return k * embed_dim


POOLINGS = {"stat": StatisticalPooling, "concat": ConcatPooling}
