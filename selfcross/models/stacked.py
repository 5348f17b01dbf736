"""K networks of one architecture as one: the members of a seed group (``seed_group=K``).

:func:`stack_networks` takes K :class:`~selfcross.models.EmotionNet` of one configuration (each
built by its seed's stream: its own initialisation) and returns one network whose parameters
carry a leading member dimension. It is a copy of the first network with every part that holds
parameters or draws dropout replaced by its stacked form, so the forward pass is
``EmotionNet``'s own code, run once over all members:

- a batch is the K members' batches one after the other along the batch axis, [K * B, ...]
  (each member has its own shuffling), and so is every activation;
- ``nn.Linear`` and ``nn.LayerNorm`` become one batched matmul (normalisation) over [K, ...]
  weights; the encoders' time-wise convolution a batched matmul; the bi-GRU steps all members
  and both directions together (2K recurrences of one batched matmul per step; on CPU with
  ``fused_gru`` the fused kernel of :mod:`selfcross.models.stgru`);
- attention projects all members at once and attends over K * B sequences; with dropout in
  training on CPU one blocked kernel runs over all members, drawing each member's masks from
  its stream's generator (:func:`~selfcross.models.kernels.grouped_dropout_attention`), else
  each member's explicit weights are dropped with its own stream;
- every dropout draws each member's mask from that member's :class:`SeedStream`, in the order
  the single run draws it, so a member replays its single run's dropout exactly.

:meth:`StackedModule.member_state` gives back member k's parameters under the single network's
names (its checkpoint loads into an ``EmotionNet``).
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from selfcross.models.attention import CrossModalAttention
from selfcross.models.encoders import ModalityEncoder
from selfcross.models.kernels import grouped_dropout_attention
from selfcross.models.networks import EmotionNet
from selfcross.models.stgru import stacked_fused_bigru
from selfcross.models.streams import SeedStream


@functools.cache
def _gru_template(dim: int, hidden: int) -> nn.GRU:
    """A bidirectional ``nn.GRU`` whose parameters :meth:`StackedEncoder.per_member` replaces
    (``torch.func.functional_call``); its own are never used, so one per shape serves every
    call."""
    return nn.GRU(dim, hidden, batch_first=True, bidirectional=True, device="meta")


def _stack(tensors: Sequence[Tensor]) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]).contiguous())


def _members(x: Tensor, k: int) -> Tensor:
    """[K * B, ...] -> [K, B * ..., last]: each member's rows as one matrix."""
    return x.reshape(k, -1, x.shape[-1])


class StackedModule(nn.Module):
    """A part of K members; ``names`` maps each stacked parameter to the single part's names."""

    names: dict[str, tuple[str, ...]]

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member ``k``'s parameters under the single part's names."""
        out = {}
        for stacked, singles in self.names.items():
            value = getattr(self, stacked)[k]
            if len(singles) == 1:
                out[singles[0]] = value.detach().clone()
            else:  # one stacked parameter per direction: [K, 2, ...]
                out.update({s: value[i].detach().clone() for i, s in enumerate(singles)})
        return out


class StackedLinear(StackedModule):
    """K ``nn.Linear``: [K * B, ..., in] -> [K * B, ..., out]."""

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.weight = _stack([layer.weight for layer in layers])
        self.bias = _stack([layer.bias for layer in layers])
        self.names = {"weight": ("weight",), "bias": ("bias",)}

    def forward(self, x: Tensor) -> Tensor:
        k = self.weight.shape[0]
        out = torch.baddbmm(self.bias.unsqueeze(1), _members(x, k), self.weight.transpose(1, 2))
        return out.view(*x.shape[:-1], -1)


class StackedLayerNorm(StackedModule):
    """K ``nn.LayerNorm`` over the last dimension."""

    def __init__(self, norms: Sequence[nn.LayerNorm]):
        super().__init__()
        self.weight = _stack([n.weight for n in norms])
        self.bias = _stack([n.bias for n in norms])
        self.eps = norms[0].eps
        self.names = {"weight": ("weight",), "bias": ("bias",)}

    def forward(self, x: Tensor) -> Tensor:
        k = self.weight.shape[0]
        y = _members(F.layer_norm(x, x.shape[-1:], eps=self.eps), k)
        return torch.addcmul(self.bias.unsqueeze(1), y, self.weight.unsqueeze(1)).view_as(x)


class StreamDropout(nn.Module):
    """Dropout with each member's mask from its own stream."""

    def __init__(self, p: float, streams: Sequence[SeedStream]):
        super().__init__()
        self.p, self.streams = p, list(streams)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        rows = x.view(len(self.streams), -1, *x.shape[1:]).unbind(0)
        return torch.cat([s.dropout(r, self.p) for s, r in zip(self.streams, rows, strict=True)])


class StackedEncoder(StackedModule):
    """K :class:`ModalityEncoder`: input dropout, time-wise convolution, bi-GRU."""

    def __init__(self, encoders: Sequence[ModalityEncoder], streams: Sequence[SeedStream]):
        super().__init__()
        first = encoders[0]
        self.seq_len, self.out_len, self.out_dim = first.seq_len, first.out_len, first.out_dim
        drop = first.input_dropout
        self.input_dropout = StreamDropout(
            drop.p if isinstance(drop, nn.Dropout) else 0.0, streams
        )
        self.names = {}
        self.fused = bool(first.fused_gru)
        self.has_conv = first.conv is not None
        if self.has_conv:
            self.conv_weight = _stack([e.conv.weight[..., 0] for e in encoders])  # [K, O, S]
            self.conv_bias = _stack([e.conv.bias for e in encoders])
            self.names.update(conv_weight=("conv.weight",), conv_bias=("conv.bias",))
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            forward, reverse = f"{name}_l0", f"{name}_l0_reverse"
            pairs = [torch.stack([getattr(e.gru, forward), getattr(e.gru, reverse)])
                     for e in encoders]  # fmt: skip
            setattr(self, name, _stack(pairs))  # [K, 2, ...]
            self.names[name] = (f"gru.{name}_l0", f"gru.{name}_l0_reverse")

    def member_state(self, k: int) -> dict[str, Tensor]:
        state = super().member_state(k)
        if self.has_conv:
            state["conv.weight"] = state["conv.weight"].unsqueeze(-1)
        return state

    out_lengths = ModalityEncoder.out_lengths

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_dropout(x)
        k = self.weight_ih.shape[0]
        if self.has_conv:  # [K, O, S] @ [K, S, B * D]
            b, s, d = x.shape[0] // k, x.shape[1], x.shape[2]
            mixed = torch.baddbmm(
                self.conv_bias.unsqueeze(-1),
                self.conv_weight,
                x.view(k, b, s, d).transpose(1, 2).reshape(k, s, b * d),
            )
            x = mixed.view(k, -1, b, d).transpose(1, 2).reshape(k * b, -1, d)
        if self.fused and x.device.type == "cpu" and not torch.is_autocast_enabled("cpu"):
            return stacked_fused_bigru(x, self.weight_ih, self.weight_hh, self.bias_ih,
                                       self.bias_hh)  # fmt: skip
        if x.device.type == "cuda":  # cuDNN's kernel per member beats 2T small steps there
            return self.per_member(x)
        return self.recurrent(x)

    def per_member(self, x: Tensor) -> Tensor:
        """Each member's rows through ``nn.GRU``'s own kernel (cuDNN on a GPU) with that
        member's weights: [K * B, T, D] -> [K * B, T, 2H]. K kernel calls instead of the
        recurrence's 2T batched steps; the same maths as :meth:`recurrent` (checked on CPU)."""
        k, hidden = self.weight_ih.shape[0], self.weight_hh.shape[-1]
        template = _gru_template(x.shape[-1], hidden)
        outs = []
        with warnings.catch_warnings():  # member slices are not one flat cuDNN weight buffer
            warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
            for m, rows in enumerate(x.chunk(k)):
                weights = {}
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    pair = getattr(self, name)[m]
                    weights[f"{name}_l0"], weights[f"{name}_l0_reverse"] = pair[0], pair[1]
                outs.append(functional_call(template, weights, (rows,))[0])
        return torch.cat(outs)

    def recurrent(self, x: Tensor) -> Tensor:
        """2K GRU recurrences (members x directions) stepped together:
        [K * B, T, D] -> [K * B, T, 2H]; the gates as nn.GRU's."""
        k = self.weight_ih.shape[0]
        b, steps, d = x.shape[0] // k, x.shape[1], x.shape[2]
        hidden = self.weight_hh.shape[-1]
        x = x.view(k, b, steps, d)
        x_dirs = torch.stack([x, x.flip(2)], dim=1).view(2 * k, b * steps, d)  # [2K, B*T, D]
        w_ih = self.weight_ih.reshape(2 * k, 3 * hidden, d)
        gi = torch.baddbmm(self.bias_ih.reshape(2 * k, 1, -1), x_dirs, w_ih.transpose(1, 2))
        gi = gi.view(2 * k, b, steps, 3 * hidden)
        w_hh_t = self.weight_hh.reshape(2 * k, 3 * hidden, hidden).transpose(1, 2)
        b_hh = self.bias_hh.reshape(2 * k, 1, -1)
        h = x.new_zeros(2 * k, b, hidden)
        outs = []
        for t in range(steps):
            gh = torch.baddbmm(b_hh, h, w_hh_t)
            g = gi[:, :, t]
            r, z = torch.sigmoid(g[..., : 2 * hidden] + gh[..., : 2 * hidden]).chunk(2, dim=-1)
            n = torch.tanh(g[..., 2 * hidden :] + r * gh[..., 2 * hidden :])
            h = n + z * (h - n)
            outs.append(h)
        out = torch.stack(outs, dim=2).view(k, 2, b, steps, hidden)  # each direction's order
        out = torch.cat([out[:, 0], out[:, 1].flip(2)], dim=-1)
        return out.reshape(k * b, steps, 2 * hidden)


class StackedAttention(StackedModule):
    """K :class:`CrossModalAttention` (or self attention, called with one stream)."""

    def __init__(self, blocks: Sequence[CrossModalAttention], streams: Sequence[SeedStream]):
        super().__init__()
        mha = blocks[0].mha
        self.heads, self.embed, self.p = mha.num_heads, mha.embed_dim, mha.dropout
        self.blocked = blocks[0].blocked
        self.streams = list(streams)
        self.in_weight = _stack([a.mha.in_proj_weight for a in blocks])
        self.in_bias = _stack([a.mha.in_proj_bias for a in blocks])
        self.out_weight = _stack([a.mha.out_proj.weight for a in blocks])
        self.out_bias = _stack([a.mha.out_proj.bias for a in blocks])
        self.names = {
            "in_weight": ("mha.in_proj_weight",),
            "in_bias": ("mha.in_proj_bias",),
            "out_weight": ("mha.out_proj.weight",),
            "out_bias": ("mha.out_proj.bias",),
        }

    def forward(self, target: Tensor, source: Tensor | None = None, need_weights: bool = False,
                key_valid: Tensor | None = None) -> Tensor:  # fmt: skip
        if need_weights:
            raise ValueError("a seed group does not record attention weights")
        source = target if source is None else source
        empty = None
        if key_valid is not None:
            empty = ~key_valid.any(dim=-1)
            key_valid = key_valid | empty[:, None]
        out = self._attend(target, source, key_valid)
        if empty is not None:
            out = out.masked_fill(empty[:, None, None], 0.0)
        return out

    def _attend(self, target: Tensor, source: Tensor, key_valid: Tensor | None) -> Tensor:
        k, e, heads = self.in_weight.shape[0], self.embed, self.heads
        w_q, w_kv = self.in_weight.split([e, 2 * e], dim=1)
        b_q, b_kv = self.in_bias.split([e, 2 * e], dim=1)
        q = torch.baddbmm(b_q.unsqueeze(1), _members(target, k), w_q.transpose(1, 2))
        kv = torch.baddbmm(b_kv.unsqueeze(1), _members(source, k), w_kv.transpose(1, 2))
        key, value = kv.chunk(2, dim=-1)

        def split_heads(x: Tensor, steps: int) -> Tensor:  # -> [K * B, heads, T, E / heads]
            return x.reshape(-1, steps, heads, e // heads).transpose(1, 2)

        q = split_heads(q, target.shape[1])
        key, value = split_heads(key, source.shape[1]), split_heads(value, source.shape[1])
        p = self.p if self.training else 0.0
        if p > 0:
            out = self._dropout_attention(q, key, value, p, key_valid)
        else:
            mask = None if key_valid is None else key_valid[:, None, None, :]
            out = F.scaled_dot_product_attention(q, key, value, attn_mask=mask)
        out = out.transpose(1, 2).reshape(k, -1, e)
        out = torch.baddbmm(self.out_bias.unsqueeze(1), out, self.out_weight.transpose(1, 2))
        return out.view(*target.shape[:-1], e)

    def _dropout_attention(self, q, key, value, p, key_valid) -> Tensor:
        """Attention with each member's weights dropped by its own stream: on CPU one blocked
        kernel over all members (each member's masks from its generator), else member by
        member on the explicit weights."""
        k, heads = len(self.streams), self.heads
        bias = None
        if key_valid is not None:  # 0 on valid keys, -inf on padding: [K * B, S]
            bias = q.new_zeros(key_valid.shape).masked_fill(~key_valid, float("-inf"))
        if self.blocked and q.device.type == "cpu" and not torch.is_autocast_enabled("cpu"):
            if bias is not None:
                bias = bias[:, None, None, :].expand(-1, heads, 1, -1).flatten(0, 1)
            generators = [stream.generator for stream in self.streams]
            q_, key_, value_ = (x.flatten(0, 1) for x in (q, key, value))
            out = grouped_dropout_attention(q_, key_, value_, p, generators, bias=bias)
            return out.unflatten(0, q.shape[:2])
        biases = [None] * k if bias is None else bias.chunk(k)
        parts = zip(self.streams, q.chunk(k), key.chunk(k), value.chunk(k), biases, strict=True)
        outs = []
        for stream, qk, kk, vk, bias_k in parts:
            scale = qk.shape[-1] ** -0.5
            scores = (qk * scale**0.5) @ (kk.transpose(-2, -1) * scale**0.5)
            if bias_k is not None:
                scores = scores + bias_k[:, None, None, :]
            weights = stream.dropout(torch.softmax(scores, dim=-1), p)
            outs.append(weights @ vk)
        return torch.cat(outs)


class StackedNet(EmotionNet):
    """K members of one :class:`EmotionNet` configuration (see the module docstring)."""

    members: int
    streams: list[SeedStream]

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member ``k``'s ``state_dict`` as a single ``EmotionNet`` names it."""
        state = {}
        for name, module in self.named_modules():
            if isinstance(module, StackedModule):
                prefix = f"{name}." if name else ""
                state.update({prefix + n: v for n, v in module.member_state(k).items()})
        return state


def stack_networks(nets: Sequence[EmotionNet], streams: Sequence[SeedStream]) -> StackedNet:
    """One network of the K ``nets`` (one configuration, K initialisations), each member's
    dropout drawn from its stream."""
    if len(nets) != len(streams) or not nets:
        raise ValueError(f"{len(nets)} networks for {len(streams)} streams")
    if nets[0].attention_weights:
        raise ValueError("a seed group runs attention fused (attention_weights=false)")
    group = copy.deepcopy(nets[0])
    group.__class__ = StackedNet
    group.members, group.streams = len(nets), list(streams)
    _replace(group, nets, streams)
    return group


def _replace(parent: nn.Module, nets: Sequence[nn.Module], streams) -> None:
    for name, child in list(parent.named_children()):
        others = [getattr(net, name) for net in nets]
        if isinstance(child, ModalityEncoder):
            new = StackedEncoder(others, streams)
        elif isinstance(child, CrossModalAttention):
            new = StackedAttention(others, streams)
        elif isinstance(child, nn.Linear):
            new = StackedLinear(others)
        elif isinstance(child, nn.LayerNorm):
            new = StackedLayerNorm(others)
        elif isinstance(child, nn.Dropout):
            new = StreamDropout(child.p, streams)
        else:
            _replace(child, others, streams)
            continue
        setattr(parent, name, new)
