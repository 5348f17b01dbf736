"""Modality encoders (paper section 2, Eq. 1-2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from selfcross.models.kernels import fused_bigru


class ModalityEncoder(nn.Module):
    """Optional input dropout, optional Conv1d over time, then a one-layer bi-GRU.

    The convolution reads the time axis as channels: ``Conv1d(seq_len, conv_out, 1)`` maps
    [B, seq_len, feat_dim] to [B, conv_out, feat_dim], a learned mix of time steps that shortens
    the sequence (audio 1000 -> 500, vision 32 -> 25 at paper size). Text has no convolution and
    0.25 dropout on its GloVe vectors.

    ``fused_gru`` runs the bi-GRU on CPU with :func:`~selfcross.models.kernels.fused_bigru` (the
    same function and weights, fewer ops per step); on CUDA nn.GRU's cuDNN kernel is used.

    Shapes: [B, seq_len, feat_dim] -> [B, out_len, 2 * hidden].
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
        self.out_len = conv_out or seq_len
        self.out_dim = 2 * hidden
        self.fused_gru = fused_gru

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
