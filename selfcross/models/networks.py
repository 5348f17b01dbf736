"""The five architectures as one network: encoders -> attention -> pooling -> classifier.

============  ==========  =========  ============================================
model         fusion      pooling    classifier input
============  ==========  =========  ============================================
self          self        stat       [mu || sigma] over the M self streams, 2E
cross         cross       stat       [mu || sigma] over the M(M-1) cross streams, 2E
self_nosp     self        concat     the M temporal averages, M*E
cross_nosp    cross       concat     the M(M-1) temporal averages, M(M-1)*E
cross_self    cross_self  stat       [mu_s || sigma_s || mu_c || sigma_c], 4E
============  ==========  =========  ============================================

``self_transformer``, ``cross_transformer`` and ``cross_self_transformer`` are self, cross and
cross_self with every attention module replaced by ``num_layers`` transformer-encoder layers
(``transformer=True``; :mod:`selfcross.models.transformer`, docs/transformers.md).

Bi- and uni-modal models are the tri-modal ones with the unused modalities' parts removed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from selfcross import MODALITIES, fusion_problem, modality_problem
from selfcross.errors import ConfigError
from selfcross.models.attention import CrossModalAttention, SelfAttention
from selfcross.models.classifier import Classifier
from selfcross.models.encoders import ModalityEncoder
from selfcross.models.pooling import POOLINGS, temporal_average
from selfcross.models.transformer import TransformerStack, check_transformer


def cross_pairs(modalities: Sequence[str]) -> list[tuple[str, str]]:
    """Ordered (source, target) pairs, s != t, grouped by target in T, V, A order."""
    return [(s, t) for t in modalities for s in modalities if s != t]


def check_fusion(fusion: str, modalities: Sequence[str]) -> None:
    """Raise :class:`ConfigError` if ``fusion`` cannot be built over ``modalities``
    (the rule is :func:`selfcross.fusion_problem`)."""
    problem = fusion_problem(fusion, modalities)
    if problem is not None:
        raise ConfigError(problem)


class EmotionNet(nn.Module):
    """Self, cross, their noSP ablations and Cross+Self over any modality subset.

    Args:
        modalities: subset of ``T``, ``V``, ``A``.
        shapes: per modality ``{seq_len, feat_dim, conv_out}`` (``conv_out`` null: no conv).
        fusion: ``self``, ``cross`` or ``cross_self``.
        pooling: ``stat`` (statistical pooling) or ``concat`` (the noSP ablation).
        input_dropout: per modality dropout on the input features (text: 0.25).
        attention_weights: ask every attention module for its weights, as the reference code
            does (and then discard them). Off, attention runs fused; on only for the baseline.
        fused_gru, blocked_attention: the exact CPU kernels of :mod:`selfcross.models.kernels`
            for the bi-GRUs and for attention with dropout in training (no effect on CUDA).
        transformer: replace every attention module by ``num_layers`` transformer-encoder
            layers with a feed-forward block of width ``ffn_dim`` (default 4E) and ``norm``
            ``post`` or ``pre`` (:mod:`selfcross.models.transformer`). Off: bare attention, the
            paper's models; the three settings are then unused.
        mask_padding: key-padding masks in every attention module and temporal averages over
            valid steps only, from the batch's ``lengths`` (``{modality: [B] valid frames}``;
            after a time-wise convolution, :meth:`ModalityEncoder.out_lengths`). A stream with
            no valid step contributes zeros. Off (the paper's models): padding is attended to
            and averaged like any frame, and ``lengths`` is ignored.

    ``forward`` takes a batch ``{modality: [B, T_m, D_m]}`` (plus ``lengths`` when masking)
    and returns logits [B, classes].
    """

    def __init__(
        self,
        modalities: Sequence[str],
        shapes: Mapping[str, Mapping],
        fusion: str = "self",
        pooling: str = "stat",
        hidden: int = 60,
        num_heads: int = 6,
        attn_dropout: float = 0.1,
        input_dropout: Mapping[str, float] | None = None,
        classifier_hidden: int = 60,
        num_classes: int = 7,
        attention_weights: bool = False,
        fused_gru: bool = True,
        blocked_attention: bool = True,
        transformer: bool = False,
        num_layers: int = 1,
        ffn_dim: int | None = None,
        norm: str = "post",
        mask_padding: bool = False,
    ):
        super().__init__()
        problem = modality_problem(modalities)
        if problem is not None:
            raise ConfigError(f"modalities={list(modalities)}: {problem}")
        self.modalities = tuple(m for m in MODALITIES if m in modalities)
        check_fusion(fusion, self.modalities)
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling={pooling!r}: expected one of {', '.join(POOLINGS)}")
        self.fusion, self.pooling_name = fusion, pooling
        self.attention_weights = attention_weights
        self.mask_padding = bool(mask_padding)
        input_dropout = input_dropout or {}
        embed = 2 * hidden
        self.transformer = transformer
        if transformer:
            ffn_dim = 4 * embed if ffn_dim is None else ffn_dim
            check_transformer(num_layers, ffn_dim, norm)

        def attention(cross: bool) -> nn.Module:
            if transformer:
                return TransformerStack(
                    embed, num_heads, attn_dropout, ffn_dim, norm, num_layers,
                    blocked_attention, cross=cross,
                )  # fmt: skip
            kind = CrossModalAttention if cross else SelfAttention
            return kind(embed, num_heads, attn_dropout, blocked_attention)

        self.encoders = nn.ModuleDict(
            {
                m: ModalityEncoder(
                    seq_len=shapes[m]["seq_len"],
                    feat_dim=shapes[m]["feat_dim"],
                    hidden=hidden,
                    conv_out=shapes[m].get("conv_out"),
                    input_dropout=input_dropout.get(m, 0.0),
                    fused_gru=fused_gru,
                )
                for m in self.modalities
            }
        )
        self.self_attention = None
        self.cross_attention = None
        streams = []  # number of temporal averages in each pooled set
        if fusion in ("self", "cross_self"):
            self.self_attention = nn.ModuleDict({m: attention(False) for m in self.modalities})
            streams.append(len(self.self_attention))
        if fusion in ("cross", "cross_self"):
            self.cross_attention = nn.ModuleDict(
                {f"{s}2{t}": attention(True) for s, t in cross_pairs(self.modalities)}
            )
            streams.append(len(self.cross_attention))
        self.pool = POOLINGS[pooling]()
        in_features = sum(self.pool.out_features(k, embed) for k in streams)
        self.classifier = Classifier(in_features, classifier_hidden, num_classes)

    def encode(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """{m: [B, T_m, D_m]} -> {m: e_m [B, T'_m, E]}."""
        return {m: self.encoders[m](batch[m]) for m in self.modalities}

    def valid_steps(self, batch: Mapping) -> dict[str, Tensor]:
        """{m: bool [B, T'_m]}, True on the valid steps of each encoded stream, from the
        batch's ``lengths`` (valid input frames) through each encoder's rule."""
        lengths = batch.get("lengths")
        missing = [m for m in self.modalities if lengths is None or m not in lengths]
        if missing:
            raise ValueError(
                f"mask_padding needs the batch's valid lengths; batch['lengths'] has no "
                f"{', '.join(missing)}"
            )
        valid = {}
        for m in self.modalities:
            encoder = self.encoders[m]
            n = encoder.out_lengths(lengths[m].to(batch[m].device))
            steps = torch.arange(encoder.out_len, device=n.device)
            valid[m] = steps[None, :] < n[:, None]
        return valid

    def attend(
        self, encoded: Mapping[str, Tensor], valid: Mapping[str, Tensor] | None = None
    ) -> list[Tensor]:
        """Temporal averages of every attention output, one [B, K, E] stack per set.
        ``valid`` ({m: bool [B, T'_m]}): mask padded keys and average valid steps only."""
        sets = []

        def mask(m: str) -> Tensor | None:
            return None if valid is None else valid[m]

        if self.self_attention is not None:
            sets.append(
                torch.stack(
                    [
                        temporal_average(
                            self._attention_output(
                                self.self_attention[m], encoded[m], key_valid=mask(m)
                            ),
                            mask(m),
                        )
                        for m in self.modalities
                    ],
                    dim=1,
                )
            )
        if self.cross_attention is not None:
            sets.append(
                torch.stack(
                    [
                        temporal_average(
                            self._attention_output(
                                self.cross_attention[f"{s}2{t}"],
                                encoded[t],
                                encoded[s],
                                key_valid=mask(s),
                            ),
                            mask(t),
                        )
                        for s, t in cross_pairs(self.modalities)
                    ],
                    dim=1,
                )
            )
        return sets

    def _attention_output(
        self, attention: nn.Module, *streams: Tensor, key_valid: Tensor | None = None
    ) -> Tensor:
        masked = {} if key_valid is None else {"key_valid": key_valid}
        if not self.attention_weights:
            return attention(*streams, **masked)
        out, _weights = attention(*streams, need_weights=True, **masked)
        return out

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        valid = self.valid_steps(batch) if self.mask_padding else None
        sets = self.attend(self.encode(batch), valid)
        pooled = torch.cat([self.pool(s) for s in sets], dim=-1)
        return self.classifier(pooled)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
