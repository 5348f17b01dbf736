"""The seed group's bi-GRU: K members' bidirectional GRUs as 2K recurrences of one fused kernel.

:class:`~selfcross.models.kernels._FusedBiGRU` steps a single network's two directions together
(seven ops per time step on [2, B, H], nothing recorded by autograd per step, a hand-written
backward pass of three ops per step with the weight gradients as single matmuls). Here the same
recurrence (:func:`~selfcross.models.kernels.gru_steps` and its backward, shared) runs over a
member axis: the recurrences are the K members' two directions,
[2K, B, H] per step, so a group of K costs the single network's number of small ops, each on K
times the data. Gates as nn.GRU: r, z, n; h' = (1 - z) * n + z * h.
:meth:`selfcross.models.stacked.StackedEncoder.recurrent` is the same maths written with
autograd, the reference in ``tests/models/test_stacked_gru.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from selfcross.models.kernels import gru_steps, gru_steps_backward


class _StackedFusedBiGRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):
        # x [K * B, T, D]; w_ih [2K, 3H, D], w_hh [2K, 3H, H], b_ih and b_hh [2K, 3H], ordered
        # (member, direction); direction 0 forward, 1 reverse.
        k2, hidden = w_hh.shape[0], w_hh.shape[-1]
        k = k2 // 2
        rows, steps, dim = x.shape
        batch = rows // k
        x_tb = x.view(k, batch, steps, dim).transpose(1, 2)  # [K, T, B, D]
        x_dirs = torch.stack([x_tb, x_tb.flip(1)], dim=1).reshape(k2, steps, batch, dim)
        hs, gh, rz, new = gru_steps(x_dirs, w_ih, w_hh, b_ih, b_hh)
        ctx.save_for_backward(x_dirs, w_ih, w_hh, hs, gh, rz, new)
        states = hs[1:].view(steps, k, 2, batch, hidden)
        out = x.new_empty(k, batch, steps, 2, hidden)
        out[..., 0, :] = states[:, :, 0].permute(1, 2, 0, 3)
        out[..., 1, :] = states[:, :, 1].flip(0).permute(1, 2, 0, 3)
        return out.view(rows, steps, 2 * hidden)

    @staticmethod
    def backward(ctx, grad_y):
        x_dirs, w_ih, w_hh, hs, gh, rz, new = ctx.saved_tensors
        k2, steps, batch, dim = x_dirs.shape
        k, hidden = k2 // 2, w_hh.shape[-1]
        gy = grad_y.reshape(k, batch, steps, 2, hidden).permute(2, 0, 3, 1, 4)  # [T, K, 2, B, H]
        dh5 = hs.new_empty(steps, k, 2, batch, hidden)
        dh5[:, :, 0] = gy[:, :, 0]
        dh5[:, :, 1] = gy[:, :, 1].flip(0)
        dh = dh5.view(steps, k2, batch, hidden)
        grad_dirs, *grad_weights = gru_steps_backward(dh, x_dirs, w_ih, w_hh, hs, gh, rz, new)
        grad_dirs = grad_dirs.view(k, 2, steps, batch, dim)
        grad_x = grad_dirs[:, 0].add_(grad_dirs[:, 1].flip(1)).transpose(1, 2)
        return grad_x.reshape(k * batch, steps, dim), *grad_weights


@torch.compiler.disable
def stacked_fused_bigru(x: Tensor, w_ih, w_hh, b_ih, b_hh) -> Tensor:
    """K members' bi-GRUs: x [K * B, T, D] and weights [K, 2, ...] -> [K * B, T, 2H]; zero
    initial states, as nn.GRU's default."""
    k2 = 2 * w_ih.shape[0]
    return _StackedFusedBiGRU.apply(
        x.contiguous(),
        w_ih.reshape(k2, *w_ih.shape[2:]),
        w_hh.reshape(k2, *w_hh.shape[2:]),
        b_ih.reshape(k2, -1),
        b_hh.reshape(k2, -1),
    )
