"""The seed group's fused bi-GRU is K members' nn.GRU: outputs and every gradient."""

from __future__ import annotations

import pytest
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


def test_the_per_member_kernel_path_equals_the_recurrence_with_its_gradients():
    """What a group runs on a GPU (each member through nn.GRU's kernel, cuDNN there), checked
    on CPU against the 2K-recurrence reference: outputs and every gradient."""
    from selfcross.models.encoders import ModalityEncoder
    from selfcross.models.stacked import StackedEncoder
    from selfcross.models.streams import SeedStream

    k, batch, steps, dim = 3, 4, 9, 5
    encoders = []
    for seed in range(k):
        torch.manual_seed(seed)
        encoders.append(ModalityEncoder(seq_len=steps, feat_dim=dim, hidden=6))
    stacked = StackedEncoder(encoders, [SeedStream(s) for s in range(k)])
    x = torch.randn(k * batch, steps, dim, requires_grad=True)
    grad = torch.randn(k * batch, steps, 12)
    results = {}
    for path in ("recurrent", "per_member"):
        stacked.zero_grad()
        x.grad = None
        out = getattr(stacked, path)(x)
        out.backward(grad)
        results[path] = (out.detach(), x.grad.clone(),
                         [p.grad.clone() for p in stacked.parameters()])  # fmt: skip
    ref, got = results["recurrent"], results["per_member"]
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-4, atol=1e-6)
    for mine, theirs in zip(got[2], ref[2], strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)
    assert ref[0][:batch].abs().sum() != ref[0][batch : 2 * batch].abs().sum()  # members differ


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_encoder_runs_each_member_through_cudnn():
    from selfcross.models.encoders import ModalityEncoder
    from selfcross.models.stacked import StackedEncoder
    from selfcross.models.streams import SeedStream

    torch.manual_seed(0)
    encoders = [ModalityEncoder(seq_len=50, feat_dim=8, hidden=6) for _ in range(2)]
    stacked = StackedEncoder(encoders, [SeedStream(s) for s in range(2)]).cuda()
    x = torch.randn(2 * 4, 50, 8, device="cuda")
    torch.testing.assert_close(stacked(x), stacked.recurrent(x), rtol=1e-4, atol=1e-5)
