"""Multi-head attention blocks (paper section 2, Eq. 3-6; Fig. 1 and 2)."""

from __future__ import annotations

from torch import Tensor, nn


class CrossModalAttention(nn.Module):
    """Cross-modal MHA: the target modality is the query, the source the key and value.

    The output is the source adapted to the target and has the target's length:
    target [B, T_t, E], source [B, T_s, E] -> [B, T_t, E]. Attention weights are computed only
    when asked for (``need_weights=True``), so training uses PyTorch's fused attention.
    """

    def __init__(self, embed_dim: int = 120, num_heads: int = 6, dropout: float = 0.1):
        super().__init__()
        self.mha = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout, batch_first=True)

    def forward(self, target: Tensor, source: Tensor, need_weights: bool = False):
        out, weights = self.mha(target, source, source, need_weights=need_weights)
        return (out, weights) if need_weights else out


class SelfAttention(CrossModalAttention):
    """Self MHA: query, key and value are the same modality. [B, T, E] -> [B, T, E]."""

    def forward(self, x: Tensor, need_weights: bool = False):
        return super().forward(x, x, need_weights=need_weights)
