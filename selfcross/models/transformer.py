"""Transformer-encoder layers in place of bare attention (the paper's hypothesis 2).

A layer is the layout of ``torch.nn.TransformerEncoderLayer``: multi-head attention, dropout,
residual, LayerNorm; then a position-wise feed-forward block (Linear E -> ``ffn_dim``, ReLU,
dropout, Linear ``ffn_dim`` -> E), dropout, residual, LayerNorm. ``norm="post"`` (the default,
torch's default) normalises after each residual sum; ``norm="pre"`` normalises the input of each
block instead. One dropout rate serves the attention weights and the three other dropouts, as in
torch's layer.

In a cross layer the target stream gives the queries and the residual, the source stream the keys
and values (the source is not normalised by the layer, as the memory of torch's decoder layer);
a stack of cross layers keeps attending to the same source, the source encoder's output.
"""

from __future__ import annotations

from torch import Tensor, nn

from selfcross import transformer_problem
from selfcross.errors import ConfigError
from selfcross.models.attention import CrossModalAttention


def check_transformer(num_layers: int, ffn_dim: int, norm: str) -> None:
    """Raise :class:`ConfigError` for settings no stack can be built with (the rule is
    :func:`selfcross.transformer_problem`)."""
    problem = transformer_problem(num_layers, ffn_dim, norm)
    if problem is not None:
        raise ConfigError(problem)


class TransformerLayer(nn.Module):
    """One encoder layer; ``forward(target, source=None)``: [B, T_t, E] -> [B, T_t, E].

    Without ``source`` it is a self-attention layer over ``target``.
    """

    def __init__(
        self,
        embed_dim: int = 120,
        num_heads: int = 6,
        dropout: float = 0.1,
        ffn_dim: int = 480,
        norm: str = "post",
        blocked: bool = True,
    ):
        super().__init__()
        check_transformer(1, ffn_dim, norm)
        self.attention = CrossModalAttention(embed_dim, num_heads, dropout, blocked)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.linear1 = nn.Linear(embed_dim, ffn_dim)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_dim, embed_dim)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.norm = norm

    def _attend(self, query: Tensor, source: Tensor | None, need_weights: bool, key_valid):
        kv = query if source is None else source
        if need_weights:
            return self.attention(query, kv, need_weights=True, key_valid=key_valid)
        return self.attention(query, kv, key_valid=key_valid), None

    def _feed_forward(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.linear1(x).relu())))

    def forward(
        self,
        target: Tensor,
        source: Tensor | None = None,
        need_weights: bool = False,
        key_valid: Tensor | None = None,
    ):
        if self.norm == "post":
            out, weights = self._attend(target, source, need_weights, key_valid)
            x = self.norm1(target + self.dropout1(out))
            x = self.norm2(x + self._feed_forward(x))
        else:
            out, weights = self._attend(self.norm1(target), source, need_weights, key_valid)
            x = target + self.dropout1(out)
            x = x + self._feed_forward(self.norm2(x))
        return (x, weights) if need_weights else x


class TransformerStack(nn.Module):
    """``num_layers`` layers; a drop-in for the attention modules of
    :mod:`selfcross.models.attention` (same call signatures and output shapes).

    ``cross=False``: ``forward(x)``, self layers. ``cross=True``: ``forward(target, source)``,
    every layer attends to ``source``. With ``need_weights`` the last layer's weights come back.
    ``key_valid`` (bool [B, T_s]): the key-padding mask of every layer's attention (of ``source``
    in a cross stack, of the stream itself in a self stack).
    """

    def __init__(
        self,
        embed_dim: int = 120,
        num_heads: int = 6,
        dropout: float = 0.1,
        ffn_dim: int = 480,
        norm: str = "post",
        num_layers: int = 1,
        blocked: bool = True,
        cross: bool = False,
    ):
        super().__init__()
        check_transformer(num_layers, ffn_dim, norm)
        self.cross = cross
        self.layers = nn.ModuleList(
            TransformerLayer(embed_dim, num_heads, dropout, ffn_dim, norm, blocked)
            for _ in range(num_layers)
        )

    def forward(
        self, target: Tensor, *rest, need_weights: bool = False, key_valid: Tensor | None = None
    ):
        if self.cross:
            (source,) = rest
        else:
            if rest:
                raise TypeError("a self-attention stack takes one stream")
            source = None
        x, weights = target, None
        for layer in self.layers:
            if need_weights:
                x, weights = layer(x, source, need_weights=True, key_valid=key_valid)
            else:
                x = layer(x, source, key_valid=key_valid)
        return (x, weights) if need_weights else x
