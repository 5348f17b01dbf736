"""The fast paths' kernels compute what the plain operations compute: the fused bi-GRU against
nn.GRU (values and gradients), the blocked dropout-attention kernel against finite differences,
explicit dropout attention and SDPA, a seed group's one grouped call against each member's own
call, and the dropout mask's rate, seed and threshold.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selfcross.models.kernels import (
    blocked_dropout_attention,
    drop_threshold,
    dropout_keep_mask,
    fused_bigru,
    grouped_dropout_attention,
)


# -- the bi-GRU kernel ------------------------------------------------------------------------
@pytest.mark.parametrize("batch,steps", [(3, 7), (1, 1)])
def test_fused_bigru_equals_nn_gru_values_and_gradients(batch, steps):
    torch.manual_seed(0)
    gru = nn.GRU(5, 4, batch_first=True, bidirectional=True).double()
    x = torch.randn(batch, steps, 5, dtype=torch.float64, requires_grad=True)
    ref, ours = gru(x)[0], fused_bigru(x, gru)
    assert ours.shape == (batch, steps, 8)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    upstream = torch.randn_like(ref)
    inputs = [x, *gru.parameters()]
    for a, b in zip(
        torch.autograd.grad(ref, inputs, upstream),
        torch.autograd.grad(ours, inputs, upstream),
        strict=True,
    ):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12)


def test_fused_bigru_float32_long_sequence_tracks_nn_gru():
    torch.manual_seed(1)
    gru = nn.GRU(12, 60, batch_first=True, bidirectional=True)
    x = torch.randn(2, 200, 12)
    torch.testing.assert_close(fused_bigru(x, gru), gru(x)[0], rtol=1e-4, atol=1e-5)


# -- the dropout-attention kernel -------------------------------------------------------------
def qkv(n=4, length=6, source=8, dim=3, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(n, t, dim, generator=gen, dtype=dtype).requires_grad_()
        for t in (length, source, source)
    ]


def test_blocked_attention_gradients_match_finite_differences():
    gen = torch.Generator()

    def attend(q, k, v):
        gen.manual_seed(5)  # the same dropout mask on every call
        return blocked_dropout_attention(q, k, v, 0.3, block=3, generator=gen)

    assert torch.autograd.gradcheck(attend, tuple(qkv(n=3, length=3, source=4, dim=2)))


def test_blocked_attention_is_dropout_attention_with_its_mask():
    q, k, v = qkv()
    p = 0.3
    out = blocked_dropout_attention(
        q, k, v, p, block=4, generator=torch.Generator().manual_seed(9)
    )
    keep = dropout_keep_mask((4, 6, 8), p, torch.Generator().manual_seed(9))
    assert 0 < (~keep).sum() < keep.numel()
    weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(3), dim=-1)
    expected = (weights * keep / (1 - p)) @ v
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    # Blocks draw consecutive parts of the same random stream (here an even count each).
    blocked = blocked_dropout_attention(
        q, k, v, p, block=1, generator=torch.Generator().manual_seed(9)
    )
    torch.testing.assert_close(blocked, out, rtol=0, atol=1e-12)


def test_blocked_attention_without_drops_is_sdpa():
    q, k, v = qkv(dtype=torch.float32, n=5, length=7, source=9, dim=4)
    out = blocked_dropout_attention(q, k, v, 1e-12, block=2)  # threshold: nothing is dropped
    ref = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    upstream = torch.randn_like(ref)
    for a, b in zip(
        torch.autograd.grad(ref, (q, k, v), upstream),
        torch.autograd.grad(out, (q, k, v), upstream),
        strict=True,
    ):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("masked", [False, True], ids=["no-bias", "key-padding-bias"])
def test_one_grouped_call_is_each_sets_own_call_with_its_generator(masked):
    """A seed group's attention: set g of one grouped call draws its masks from its generator in
    the blocks of a call on its rows alone (7 rows, blocks of 3: a short last block and odd
    mask sizes), and gets that call's output and gradients."""
    sets, n, seeds = 3, 7, (11, 12, 13)
    q, k, v = qkv(n=sets * n, length=5, source=3, dim=2)
    bias = None
    if masked:  # the last key of every other row padded
        bias = torch.zeros(sets * n, 1, 3, dtype=q.dtype)
        bias[::2, :, -1] = float("-inf")
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    out = grouped_dropout_attention(q, k, v, 0.3, generators, block=3, bias=bias)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), upstream)
    for g, seed in enumerate(seeds):
        rows = slice(g * n, (g + 1) * n)
        own = torch.Generator().manual_seed(seed)
        parts = [x[rows].detach().requires_grad_() for x in (q, k, v)]
        alone = blocked_dropout_attention(*parts, 0.3, block=3, generator=own,
                                          bias=None if bias is None else bias[rows])  # fmt: skip
        assert torch.equal(out[rows], alone)
        for grad, part in zip(
            grads, torch.autograd.grad(alone, parts, upstream[rows]), strict=True
        ):
            torch.testing.assert_close(grad[rows], part, rtol=0, atol=1e-15)
        assert torch.equal(generators[g].get_state(), own.get_state())  # as many draws


def test_dropout_mask_rate_seed_and_threshold():
    assert drop_threshold(0.0) == -(2**31) and drop_threshold(0.5) == 0
    keep = dropout_keep_mask((1000, 1000), 0.1, torch.Generator().manual_seed(1))
    assert keep.dtype == torch.bool
    rate = 1 - keep.float().mean().item()
    assert abs(rate - 0.1) < 5 * math.sqrt(0.09 / 1e6)
    # Neighbours come from the two halves of one 64-bit draw: they must be independent.
    both = (~keep[:, 0::2] & ~keep[:, 1::2]).float().mean().item()
    assert abs(both - 0.01) < 5 * math.sqrt(0.0099 / 5e5)
    again = dropout_keep_mask((1000, 1000), 0.1, torch.Generator().manual_seed(1))
    other = dropout_keep_mask((1000, 1000), 0.1, torch.Generator().manual_seed(2))
    assert torch.equal(keep, again) and not torch.equal(keep, other)
    floats = dropout_keep_mask((3, 5), 0.5, out=torch.empty(3, 5))
    assert set(floats.unique().tolist()) <= {0.0, 1.0}


def test_blocked_attention_rejects_no_dropout():
    with pytest.raises(ValueError, match="0 < p < 1"):
        blocked_dropout_attention(*qkv(), 0.0)
