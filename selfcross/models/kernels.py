"""Exact CPU training kernels for the two layers where the step's time goes.

PyTorch's fused attention on CPU refuses dropout, so a training step with the paper's attention
dropout (0.1) falls back to the math path: it materialises the [B*H, L, S] scores several times
over (a 500x500 audio self-attention at batch 32 is 48M values, 192 MB each time), runs a
"safe" softmax with three extra passes, and draws the dropout mask with ``bernoulli_``, which on
non-Intel CPUs is a serial Mersenne-Twister loop. :func:`blocked_dropout_attention` computes the
same function block by block, so every [rows, L, S] intermediate stays in cache, saves only a
one-byte dropout mask and a per-row log-sum-exp for the backward pass (the probabilities are
recomputed there, as flash attention does), and draws the mask from 32 random bits per element,
two elements per 64-bit draw.

:func:`fused_bigru` does the same for the bi-GRU: PyTorch's CPU GRU records a dozen small ops per
direction and time step; the fused one steps both directions together in seven unrecorded ops
and has a hand-written backward pass.

Both are exact (tests compare values and gradients with PyTorch's layers in float64), run only
on CPU (CUDA has cuDNN's GRU and fused attention with dropout), and are opaque to
``torch.compile``: it runs them eagerly rather than unrolling their Python loops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

BLOCK_BYTES = 1 << 20
"""Target size of one block of float32 scores: small enough to stay in a core's cache."""


def drop_threshold(p: float) -> int:
    """int32 threshold t such that P(uniform int32 < t) = p, to within 2**-32."""
    return -(2**31) + round(p * 2**32)


def dropout_keep_mask(
    shape: tuple[int, ...],
    p: float,
    generator: torch.Generator | None = None,
    out: Tensor | None = None,
    words: Tensor | None = None,
) -> Tensor:
    """Dropout keep mask: False (0.0 in a float ``out``) where an element is dropped.

    Elements are dropped i.i.d. with probability ``p``. Each gets 32 uniform bits, half of one
    full-range int64 draw of the (seedable) CPU generator, so ``p`` is resolved to 2**-32
    (float32 uniforms resolve 2**-24); ``bernoulli_`` is a serial loop on non-Intel CPUs and
    about 2.5x slower. ``words`` (int64, half as many as the mask) is an optional buffer.
    """
    n = math.prod(shape)
    if words is None:
        words = torch.empty((n + 1) // 2, dtype=torch.int64)
    words = words[: (n + 1) // 2]
    words.random_(-(2**63), None, generator=generator)
    bits = words.view(torch.int32)[:n].view(shape)
    return torch.ge(bits, drop_threshold(p), out=out)


def _as_float(mask: Tensor, out: Tensor) -> Tensor:
    """A boolean mask as 0/1 floats (a comparison writes floats faster than a bool cast does)."""
    return torch.ne(mask.view(torch.uint8), 0, out=out)


def block_rows(rows: int, length: int, source_length: int, block_bytes: int = BLOCK_BYTES) -> int:
    """How many of the ``rows`` [L, S] score matrices one block holds."""
    return max(1, min(rows, block_bytes // (4 * length * source_length)))


def _softmax(scores: Tensor, out: Tensor) -> Tensor:
    """Row softmax into a preallocated buffer (a fresh large CPU tensor costs page faults)."""
    return torch.ops.aten._softmax.out(scores, -1, False, out=out)


class _BlockedDropoutAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(D)) with dropout, times v, for G sets of N rows at once:
    q [N, G, L, D], k and v [N, G, S, D]. Set g's masks come from ``generators[g]``, block by
    block over N, as a call on that set alone draws them; a block holds the rows of every set
    (G = 1 for a single run, the K members of a seed group otherwise).

    Saves q, k, v, the output and the one-byte dropout mask; the backward pass recomputes the
    attention probabilities block by block. The 1 / (1 - p) rescaling is applied to the small
    [N, G, L, D] tensors rather than to the scores.
    """

    @staticmethod
    def forward(ctx, q, k, v, p, block, generators, bias=None):
        n, sets, length, _ = q.shape
        source_length = k.shape[2]
        scale = q.shape[-1] ** -0.5
        qs = q * scale
        out = torch.empty_like(q)
        keep = torch.empty(n, sets, length, source_length, dtype=torch.bool)
        scores = q.new_empty(min(block, n) * sets, length, source_length)
        probs = torch.empty_like(scores)
        words = torch.empty((min(block, n) * length * source_length + 1) // 2, dtype=torch.int64)
        for i in range(0, n, block):
            j = min(i + block, n)
            s, pr = scores[: (j - i) * sets], probs[: (j - i) * sets]
            by_set = s.view(j - i, sets, length, source_length)
            torch.bmm(qs[i:j].flatten(0, 1), k[i:j].flatten(0, 1).transpose(1, 2), out=s)
            if bias is not None:
                by_set.add_(bias[i:j])
            _softmax(s, pr)
            # The 0/1 mask as floats (reusing the scores buffer), kept as bytes for backward;
            # each set's block drawn whole from its own generator.
            for g, generator in enumerate(generators):
                dropout_keep_mask((j - i, length, source_length), p, generator,
                                  out=by_set[:, g], words=words)  # fmt: skip
            keep[i:j].copy_(by_set)
            pr.mul_(s)
            torch.bmm(pr, v[i:j].flatten(0, 1), out=out[i:j].flatten(0, 1))
        out.mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(qs, k, v, out, keep)
        ctx.p, ctx.block, ctx.scale, ctx.bias = p, block, scale, bias
        return out

    @staticmethod
    def backward(ctx, grad_out):
        qs, k, v, out, keep = ctx.saved_tensors
        keep_scale = 1.0 / (1.0 - ctx.p)
        grad_out = grad_out.contiguous()
        grad_q, grad_k, grad_v = torch.empty_like(qs), torch.empty_like(k), torch.empty_like(v)
        # Softmax backward: dS = P * (dP - rowsum(P * dP)), with dP = c * dropout(dO v^T) for
        # c = 1 / (1 - p). rowsum(P * dP) = rowsum(dO * O) comes from the small tensors, and c
        # moves out of the [L, S] work onto grad_q and grad_k.
        delta = (grad_out * out).sum(-1, keepdim=True).mul_(1.0 / keep_scale)
        n, sets, length, _ = qs.shape
        scores = qs.new_empty(min(ctx.block, n) * sets, length, k.shape[2])
        probs, work, kept = (torch.empty_like(scores) for _ in range(3))
        for i in range(0, n, ctx.block):
            j = min(i + ctx.block, n)
            rows = (j - i) * sets
            s, pr, w, kf = scores[:rows], probs[:rows], work[:rows], kept[:rows]
            q_i, k_i, v_i, g_i = (x[i:j].flatten(0, 1) for x in (qs, k, v, grad_out))
            torch.bmm(q_i, k_i.transpose(1, 2), out=s)
            if ctx.bias is not None:
                s.view(j - i, sets, length, -1).add_(ctx.bias[i:j])
            _softmax(s, pr)
            _as_float(keep[i:j].flatten(0, 1), kf)
            torch.mul(pr, kf, out=w)
            torch.bmm(w.transpose(1, 2), g_i, out=grad_v[i:j].flatten(0, 1))
            torch.bmm(g_i, v_i.transpose(1, 2), out=w)
            w.mul_(kf).sub_(delta[i:j].flatten(0, 1)).mul_(pr)
            torch.bmm(w, k_i, out=grad_q[i:j].flatten(0, 1))
            torch.bmm(w.transpose(1, 2), q_i, out=grad_k[i:j].flatten(0, 1))
        grad_q.mul_(ctx.scale * keep_scale)
        grad_k.mul_(keep_scale)
        grad_v.mul_(keep_scale)
        return grad_q, grad_k, grad_v, None, None, None, None


@torch.compiler.disable
def blocked_dropout_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    p: float,
    block: int | None = None,
    generator: torch.Generator | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    """Scaled dot-product attention with dropout ``p`` on the weights, computed block-wise.

    The same function as ``F.scaled_dot_product_attention(q, k, v, dropout_p=p)``:
    q [N, L, D], k and v [N, S, D] -> [N, L, D], with N = batch x heads. ``block`` rows of N
    per block (default: :data:`BLOCK_BYTES` of scores); ``generator`` draws the dropout mask.
    ``bias`` (float [N, 1 or L, S], no gradient) is added to the scores before the softmax, e.g.
    0 on valid keys and -inf on padded ones (a key-padding mask; every row needs a finite entry).
    """
    return grouped_dropout_attention(q, k, v, p, [generator], block, bias)


@torch.compiler.disable
def grouped_dropout_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    p: float,
    generators: Sequence[torch.Generator | None],
    block: int | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    """:func:`blocked_dropout_attention` of G = ``len(generators)`` sets of rows in one call:
    q [G * N, L, D], k and v [G * N, S, D], ``bias`` [G * N, 1 or L, S], set g the rows
    g * N ... (g + 1) * N - 1 (a seed group's members, one after the other).

    Set g's output and gradients are those of ``blocked_dropout_attention`` on its rows with
    ``generators[g]``: its masks are drawn from its generator block by block, in the same blocks
    (``block`` rows of N; by default those of a call on N rows). Each block's matmuls, softmax
    and elementwise work run once over the block's rows of all sets, so a seed group of K runs
    as many of these ops as one run does, each on K times the rows.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"dropout p={p}: the blocked kernel is for 0 < p < 1")
    sets = len(generators)
    if sets == 0 or q.shape[0] % sets:
        raise ValueError(f"{q.shape[0]} rows cannot be split into {sets} sets")
    n = q.shape[0] // sets

    def by_block(x: Tensor) -> Tensor:  # [G * N, ...] -> [N, G, ...]
        if sets == 1:
            return x.contiguous().unsqueeze(1)
        return x.reshape(sets, n, *x.shape[1:]).transpose(0, 1).contiguous()

    block = block or block_rows(n, q.shape[1], k.shape[1])
    if bias is not None:
        bias = by_block(bias.detach())
    out = _BlockedDropoutAttention.apply(
        by_block(q), by_block(k), by_block(v), p, block, tuple(generators), bias
    )
    return out.transpose(0, 1).reshape(q.shape)


def gru_steps(x_dirs: Tensor, w_ih, w_hh, b_ih, b_hh) -> tuple[Tensor, ...]:
    """D GRU recurrences stepped together (a bi-GRU's two directions, or a seed group's 2K):
    x_dirs [D, T, B, In] time-major in each recurrence's own order, weights [D, ...]. Returns
    what the backward pass needs: hs [T + 1, D, B, H] (hs[0] the zero initial state), the
    hidden projections gh [T, D, B, 3H], the gates r and z as rz [T, D, B, 2H] and the
    candidate states new [T, D, B, H]. Seven ops per step on [D, B, H], none recorded."""
    recurrences, steps, batch, dim = x_dirs.shape
    hidden = w_hh.shape[-1]
    # All input projections in one matmul: gi [D, T, B, 3H].
    gi = torch.baddbmm(
        b_ih.unsqueeze(1), x_dirs.view(recurrences, steps * batch, dim), w_ih.transpose(1, 2)
    ).view(recurrences, steps, batch, 3 * hidden)
    w_hh_t = w_hh.transpose(1, 2)
    bias_hh = b_hh.unsqueeze(1)
    hs = x_dirs.new_zeros(steps + 1, recurrences, batch, hidden)
    gh = x_dirs.new_empty(steps, recurrences, batch, 3 * hidden)
    rz = x_dirs.new_empty(steps, recurrences, batch, 2 * hidden)
    new = x_dirs.new_empty(steps, recurrences, batch, hidden)
    diff = x_dirs.new_empty(recurrences, batch, hidden)
    # Per-step views, taken once: indexing inside the loop would cost more than the maths.
    h_t, gh_t, rz_t, new_t = hs.unbind(0), gh.unbind(0), rz.unbind(0), new.unbind(0)
    gi_rz, gi_n = gi[..., : 2 * hidden].unbind(1), gi[..., 2 * hidden :].unbind(1)
    gh_rz, gh_n = gh[..., : 2 * hidden].unbind(0), gh[..., 2 * hidden :].unbind(0)
    r_t, z_t = rz[..., :hidden].unbind(0), rz[..., hidden:].unbind(0)
    for t in range(steps):
        torch.baddbmm(bias_hh, h_t[t], w_hh_t, out=gh_t[t])
        torch.add(gi_rz[t], gh_rz[t], out=rz_t[t]).sigmoid_()
        torch.addcmul(gi_n[t], r_t[t], gh_n[t], out=new_t[t]).tanh_()
        torch.sub(h_t[t], new_t[t], out=diff)
        torch.addcmul(new_t[t], z_t[t], diff, out=h_t[t + 1])
    return hs, gh, rz, new


def gru_steps_backward(dh: Tensor, x_dirs, w_ih, w_hh, hs, gh, rz, new) -> tuple[Tensor, ...]:
    """The gradients of :func:`gru_steps` from dh [T, D, B, H], the gradient w.r.t. each
    step's output state in each recurrence's own order (overwritten: it accumulates the
    recurrent gradient). Returns the input's [D, T, B, In] and the weights' and biases'.
    Three ops per step: every factor that does not depend on the incoming gradient is
    computed for all steps at once, and the weight gradients are single matmuls."""
    recurrences, steps, batch, dim = x_dirs.shape
    hidden = w_hh.shape[-1]
    r, z, h_prev = rz[..., :hidden], rz[..., hidden:], hs[:-1]
    # d pre-activation / d h' of each gate, for all steps at once: r, z and n of gh.
    a = (1 - z) * (1 - new * new)
    to_gh = hs.new_empty(steps, recurrences, batch, 3, hidden)
    torch.mul(a * gh[..., 2 * hidden :], r * (1 - r), out=to_gh[..., 0, :])
    torch.mul(h_prev - new, z * (1 - z), out=to_gh[..., 1, :])
    torch.mul(a, r, out=to_gh[..., 2, :])
    d_gh = torch.empty_like(gh)
    dh_t, z_t, d_gh_t = dh.unbind(0), z.unbind(0), d_gh.unbind(0)
    to_gh_t, dh3_t = to_gh.unbind(0), dh.unsqueeze(3).unbind(0)
    d_gh4_t = d_gh.view(steps, recurrences, batch, 3, hidden).unbind(0)
    for t in range(steps - 1, -1, -1):
        torch.mul(to_gh_t[t], dh3_t[t], out=d_gh4_t[t])
        if t:
            dh_t[t - 1].addcmul_(dh_t[t], z_t[t]).baddbmm_(d_gh_t[t], w_hh)
    # Weight gradients as one matmul per recurrence over all steps: [D, T * B, 3H].
    d_g = d_gh.transpose(0, 1).reshape(recurrences, steps * batch, 3 * hidden)
    h_dirs = h_prev.transpose(0, 1).reshape(recurrences, steps * batch, hidden)
    grad_w_hh = torch.bmm(d_g.transpose(1, 2), h_dirs)
    grad_b_hh = d_g.sum(1)
    # The input projection's gradient differs from gh's in the n gate only (no r factor).
    d_gi = d_g.view(recurrences, steps, batch, 3 * hidden)
    torch.mul(dh.transpose(0, 1), a.transpose(0, 1), out=d_gi[..., 2 * hidden :])
    grad_w_ih = torch.bmm(d_g.transpose(1, 2), x_dirs.view(recurrences, steps * batch, dim))
    grad_b_ih = d_g.sum(1)
    grad_dirs = torch.bmm(d_g, w_ih).view(recurrences, steps, batch, dim)
    return grad_dirs, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh


class _FusedBiGRU(torch.autograd.Function):
    """One-layer bidirectional GRU over [B, T, D] with both directions stepped together.

    PyTorch's CPU GRU runs each direction's cell as a dozen small autograd-recorded ops per
    time step. Here one step is seven ops on [2, B, H] tensors (both directions at once: the
    reverse direction reads time-flipped input projections), nothing is recorded per step, and
    the backward pass is three ops per step (:func:`gru_steps`, :func:`gru_steps_backward`).
    Gates as nn.GRU: r, z, n; h' = (1 - z) * n + z * h.
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):
        # w_ih [2, 3H, D], w_hh [2, 3H, H], b_ih and b_hh [2, 3H]; index 0 forward, 1 reverse.
        batch, steps, _ = x.shape
        hidden = w_hh.shape[-1]
        # Time-major input of each direction in its own order, [2, T, B, D].
        x_tb = x.transpose(0, 1)
        x_dirs = torch.stack([x_tb, x_tb.flip(0)])
        hs, gh, rz, new = gru_steps(x_dirs, w_ih, w_hh, b_ih, b_hh)
        ctx.save_for_backward(x_dirs, w_ih, w_hh, hs, gh, rz, new)
        out = x.new_empty(batch, steps, 2, hidden)
        out[:, :, 0] = hs[1:, 0].transpose(0, 1)
        out[:, :, 1] = hs[1:, 1].flip(0).transpose(0, 1)
        return out.view(batch, steps, 2 * hidden)

    @staticmethod
    def backward(ctx, grad_y):
        x_dirs, w_ih, w_hh, hs, gh, rz, new = ctx.saved_tensors
        _, steps, batch, _ = x_dirs.shape
        hidden = w_hh.shape[-1]
        # Gradient w.r.t. each step's output state, [T, 2, B, H] in each direction's order.
        gy = grad_y.view(batch, steps, 2, hidden).permute(1, 2, 0, 3)
        dh = hs.new_empty(steps, 2, batch, hidden)
        dh[:, 0] = gy[:, 0]
        dh[:, 1] = gy[:, 1].flip(0)
        grad_dirs, *grad_weights = gru_steps_backward(dh, x_dirs, w_ih, w_hh, hs, gh, rz, new)
        grad_x = grad_dirs[0].add_(grad_dirs[1].flip(0)).transpose(0, 1)
        return grad_x, *grad_weights


@torch.compiler.disable
def fused_bigru(x: Tensor, gru: torch.nn.GRU) -> Tensor:
    """``gru(x)[0]`` for a one-layer, bidirectional, batch-first nn.GRU, on its own weights.

    x [B, T, D] -> [B, T, 2H]; the initial state is zero, as nn.GRU's default.
    """
    w_ih = torch.stack([gru.weight_ih_l0, gru.weight_ih_l0_reverse])
    w_hh = torch.stack([gru.weight_hh_l0, gru.weight_hh_l0_reverse])
    b_ih = torch.stack([gru.bias_ih_l0, gru.bias_ih_l0_reverse])
    b_hh = torch.stack([gru.bias_hh_l0, gru.bias_hh_l0_reverse])
    return _FusedBiGRU.apply(x.contiguous(), w_ih, w_hh, b_ih, b_hh)
