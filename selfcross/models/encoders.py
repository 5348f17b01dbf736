"""Modality encoders (paper section 2, Eq. 1-2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from selfcross.models.kernels import fused_bigru


def valid_after_conv(lengths: Tensor, seq_len: int, out_len: int) -> Tensor:
    """``ceil(lengths * out_len / seq_len)`` in integers: the valid steps of a sequence of
    ``seq_len`` steps resampled to ``out_len`` (:class:`ModalityEncoder`'s rule)."""
    if out_len == seq_len:
        return lengths
    return (lengths * out_len + seq_len - 1).div(seq_len, rounding_mode="floor")


class ModalityEncoder(nn.Module):
    """Optional input dropout, optional Conv1d over time, then a one-layer bi-GRU.

    The convolution reads the time axis as channels: ``Conv1d(seq_len, conv_out, 1)`` maps
    [B, seq_len, feat_dim] to [B, conv_out, feat_dim], a learned mix of time steps that shortens
    the sequence (audio 1000 -> 500, vision 32 -> 25 at paper size). Text has no convolution and
    0.25 dropout on its GloVe vectors.

    ``fused_gru`` runs the bi-GRU on CPU with :func:`~selfcross.models.kernels.fused_bigru` (the
    same function and weights, fewer ops per step); on CUDA nn.GRU's cuDNN kernel is used.

    Shapes: [B, seq_len, feat_dim] -> [B, out_len, 2 * hidden].

    Valid frames after the convolution (:meth:`out_lengths`, used by ``mask_padding``): every
    output step mixes all input steps, so no output step is padding in a strict sense; the
    convolution is read as a resampling of the time axis instead, and an utterance with ``n`` of
    ``seq_len`` valid input frames has ``ceil(n * out_len / seq_len)`` valid output steps, the
    first ones (the same share of the sequence; 0 stays 0, ``seq_len`` gives ``out_len``).
    """

    def __init__(
        self,
        seq_len: int,
        feat_dim: int,
        hidden: int = 60,
        conv_out: int | None = None,
        input_dropout: float = 0.0,
        fused_gru: bool = True,
    ):
        super().__init__()
        self.input_dropout = nn.Dropout(input_dropout) if input_dropout > 0 else nn.Identity()
        self.conv = nn.Conv1d(seq_len, conv_out, kernel_size=1) if conv_out else None
        self.gru = nn.GRU(feat_dim, hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.seq_len = seq_len
        self.out_len = conv_out or seq_len
        self.out_dim = 2 * hidden
        self.fused_gru = fused_gru

    def out_lengths(self, lengths: Tensor) -> Tensor:
        """Valid output steps of each utterance from its valid input frames, [B] -> [B]."""
        return valid_after_conv(lengths, self.seq_len, self.out_len)

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_dropout(x)
        if self.conv is not None:
            x = self.conv(x)
        return self.recurrent(x)

    def recurrent(self, x: Tensor) -> Tensor:
        """The bi-GRU alone: [B, T, feat_dim] -> [B, T, 2 * hidden]."""
        if self.fused_gru and x.device.type == "cpu" and not torch.is_autocast_enabled("cpu"):
            return fused_bigru(x, self.gru)
        out, _ = self.gru(x)
        return out
