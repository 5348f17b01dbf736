"""Multi-head attention blocks (paper section 2, Eq. 3-6; Fig. 1 and 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfcross.models.kernels import blocked_dropout_attention


class CrossModalAttention(nn.Module):
    """Cross-modal MHA: the target modality is the query, the source the key and value.

    The output is the source adapted to the target and has the target's length:
    target [B, T_t, E], source [B, T_s, E] -> [B, T_t, E]. The parameters are those of an
    ``nn.MultiheadAttention``. Attention weights are computed only when asked for
    (``need_weights=True``, the reference's behaviour, through ``nn.MultiheadAttention``);
    otherwise the same projections feed PyTorch's fused scaled-dot-product attention (flash or
    memory-efficient kernels, dropout included, on CUDA; the flash kernel on CPU). In CPU
    training with dropout, which PyTorch's CPU kernel does not support, ``blocked`` selects
    :func:`~selfcross.models.kernels.blocked_dropout_attention` instead of PyTorch's
    unfused fallback.

    ``key_valid`` (bool [B, T_s], True on valid source frames) is a key-padding mask: queries
    attend to valid keys only. A sample without any valid key attends to nothing: its output is
    zero (and, when recorded, its weights are zero), never NaN. Without ``key_valid`` the module
    computes exactly what it computed before masks existed.

    ``record_weights = True`` makes every call go through ``nn.MultiheadAttention`` with
    ``need_weights`` and keep the per-head weights [B, heads, T_t, T_s] in ``last_weights``
    (the attention-map tool, :mod:`selfcross.analysis.attention`); the output is the same function.
    """

    def __init__(
        self, embed_dim: int = 120, num_heads: int = 6, dropout: float = 0.1, blocked: bool = True
    ):
        super().__init__()
        self.mha = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout, batch_first=True)
        self.blocked = blocked
        self.record_weights = False
        self.last_weights: Tensor | None = None

    def forward(
        self,
        target: Tensor,
        source: Tensor,
        need_weights: bool = False,
        key_valid: Tensor | None = None,
    ):
        empty = None
        if key_valid is not None:
            # A sample with no valid key attends to all of them (finite), then is zeroed.
            empty = ~key_valid.any(dim=-1)
            key_valid = key_valid | empty[:, None]
        if need_weights or self.record_weights:
            out, weights = self.mha(
                target,
                source,
                source,
                need_weights=True,
                key_padding_mask=None if key_valid is None else ~key_valid,
                average_attn_weights=False,
            )
            if empty is not None:
                out = out.masked_fill(empty[:, None, None], 0.0)
                weights = weights.masked_fill(empty[:, None, None, None], 0.0)
            if self.record_weights:
                self.last_weights = weights.detach()
            if need_weights:
                return out, weights.mean(dim=1)
            return out
        out = self._fused_attention(target, source, key_valid)
        if empty is not None:
            out = out.masked_fill(empty[:, None, None], 0.0)
        return out

    def _use_blocked(self, x: Tensor, dropout: float) -> bool:
        return (
            self.blocked
            and dropout > 0
            and x.device.type == "cpu"
            and not torch.is_autocast_enabled("cpu")
        )

    def _fused_attention(
        self, target: Tensor, source: Tensor, key_valid: Tensor | None = None
    ) -> Tensor:
        """nn.MultiheadAttention's computation without weights: project, attend, project."""
        mha = self.mha
        heads, embed = mha.num_heads, mha.embed_dim
        if target is source:
            q, k, v = F.linear(target, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
        else:
            w_q, w_kv = mha.in_proj_weight.split([embed, 2 * embed])
            b_q, b_kv = mha.in_proj_bias.split([embed, 2 * embed])
            q = F.linear(target, w_q, b_q)
            k, v = F.linear(source, w_kv, b_kv).chunk(2, dim=-1)

        def split_heads(x: Tensor) -> Tensor:  # [B, T, E] -> [B, heads, T, E / heads]
            return x.unflatten(-1, (heads, -1)).transpose(1, 2)

        q, k, v = split_heads(q), split_heads(k), split_heads(v)
        dropout = mha.dropout if self.training else 0.0
        mask = None if key_valid is None else key_valid[:, None, None, :]  # [B, 1, 1, T_s]
        if self._use_blocked(q, dropout):
            bias = None
            if key_valid is not None:  # additive: 0 on valid keys, -inf on padding; [B*H, 1, T_s]
                bias = q.new_zeros(key_valid.shape).masked_fill(~key_valid, float("-inf"))
                bias = bias[:, None, None, :].expand(-1, heads, 1, -1).flatten(0, 1)
            out = blocked_dropout_attention(
                q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), dropout, bias=bias
            )
            out = out.unflatten(0, q.shape[:2])
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return mha.out_proj(out.transpose(1, 2).flatten(2))


class SelfAttention(CrossModalAttention):
    """Self MHA: query, key and value are the same modality. [B, T, E] -> [B, T, E]."""

    def forward(self, x: Tensor, need_weights: bool = False, key_valid: Tensor | None = None):
        return super().forward(x, x, need_weights=need_weights, key_valid=key_valid)
