"""The seed group's fused bi-GRU is K members' nn.GRU: outputs and every gradient."""

from __future__ import annotations

import torch

from selfcross.models.stgru import stacked_fused_bigru


def test_each_members_rows_are_its_own_bidirectional_gru():
    torch.manual_seed(0)
    k, batch, steps, dim, hidden = 3, 4, 7, 5, 6
    grus = [torch.nn.GRU(dim, hidden, batch_first=True, bidirectional=True) for _ in range(k)]
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    stacked = [
        torch.stack(
            [torch.stack([getattr(g, f"{n}_l0"), getattr(g, f"{n}_l0_reverse")]) for g in grus]
        )
        .detach()
        .requires_grad_()
        for n in names
    ]  # [K, 2, ...] each
    x = torch.randn(k * batch, steps, dim, requires_grad=True)
    out = stacked_fused_bigru(x, *stacked)
    grad = torch.randn_like(out)
    out.backward(grad)
    x_ref = x.detach().clone().requires_grad_()
    for m, gru in enumerate(grus):
        rows = slice(m * batch, (m + 1) * batch)
        ref = gru(x_ref[rows])[0]
        torch.testing.assert_close(out[rows], ref, rtol=1e-5, atol=1e-6)
        ref.backward(grad[rows])
        for i, n in enumerate(names):
            for d, suffix in enumerate(("_l0", "_l0_reverse")):
                torch.testing.assert_close(
                    stacked[i].grad[m, d], getattr(gru, n + suffix).grad, rtol=1e-4, atol=1e-6
                )
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-6)
