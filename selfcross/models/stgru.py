"""The seed group's bi-GRU: K members' bidirectional GRUs as 2K recurrences of one fused kernel.

:class:`~selfcross.models.kernels._FusedBiGRU` steps a single network's two directions together
(seven ops per time step on [2, B, H], nothing recorded by autograd per step, a hand-written
backward pass of three ops per step with the weight gradients as single matmuls). Here the same
computation runs over a member axis: the recurrences are the K members' two directions,
[2K, B, H] per step, so a group of K costs the single network's number of small ops, each on K
times the data. Gates as nn.GRU: r, z, n; h' = (1 - z) * n + z * h.
:meth:`selfcross.models.stacked.StackedEncoder.recurrent` is the same maths written with
autograd, the reference in ``tests/models/test_stacked_gru.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor


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
        gi = torch.baddbmm(
            b_ih.unsqueeze(1), x_dirs.view(k2, steps * batch, dim), w_ih.transpose(1, 2)
        ).view(k2, steps, batch, 3 * hidden)
        w_hh_t = w_hh.transpose(1, 2)
        bias_hh = b_hh.unsqueeze(1)
        hs = x.new_zeros(steps + 1, k2, batch, hidden)
        gh = x.new_empty(steps, k2, batch, 3 * hidden)
        rz = x.new_empty(steps, k2, batch, 2 * hidden)
        new = x.new_empty(steps, k2, batch, hidden)
        diff = x.new_empty(k2, batch, hidden)
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
        r, z, h_prev = rz[..., :hidden], rz[..., hidden:], hs[:-1]
        a = (1 - z) * (1 - new * new)
        to_gh = hs.new_empty(steps, k2, batch, 3, hidden)
        torch.mul(a * gh[..., 2 * hidden :], r * (1 - r), out=to_gh[..., 0, :])
        torch.mul(h_prev - new, z * (1 - z), out=to_gh[..., 1, :])
        torch.mul(a, r, out=to_gh[..., 2, :])
        d_gh = torch.empty_like(gh)
        dh_t, z_t, d_gh_t = dh.unbind(0), z.unbind(0), d_gh.unbind(0)
        to_gh_t, dh3_t = to_gh.unbind(0), dh.unsqueeze(3).unbind(0)
        d_gh4_t = d_gh.view(steps, k2, batch, 3, hidden).unbind(0)
        for t in range(steps - 1, -1, -1):
            torch.mul(to_gh_t[t], dh3_t[t], out=d_gh4_t[t])
            if t:
                dh_t[t - 1].addcmul_(dh_t[t], z_t[t]).baddbmm_(d_gh_t[t], w_hh)
        d_g = d_gh.transpose(0, 1).reshape(k2, steps * batch, 3 * hidden)
        h_dirs = h_prev.transpose(0, 1).reshape(k2, steps * batch, hidden)
        grad_w_hh = torch.bmm(d_g.transpose(1, 2), h_dirs)
        grad_b_hh = d_g.sum(1)
        d_gi = d_g.view(k2, steps, batch, 3 * hidden)
        torch.mul(dh.transpose(0, 1), a.transpose(0, 1), out=d_gi[..., 2 * hidden :])
        grad_w_ih = torch.bmm(d_g.transpose(1, 2), x_dirs.view(k2, steps * batch, dim))
        grad_b_ih = d_g.sum(1)
        grad_dirs = torch.bmm(d_g, w_ih).view(k, 2, steps, batch, dim)
        grad_x = grad_dirs[:, 0].add_(grad_dirs[:, 1].flip(1)).transpose(1, 2)
        return grad_x.reshape(k * batch, steps, dim), grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh


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
