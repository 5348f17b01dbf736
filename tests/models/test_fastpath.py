"""Fast paths compute what the plain paths compute: same logits and gradients, same weights."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from selfcross.errors import ConfigError
from selfcross.models import CrossModalAttention, EmotionNet, SelfAttention
from selfcross.models import attention as attention_module
from selfcross.models.kernels import (
    blocked_dropout_attention,
    drop_threshold,
    dropout_keep_mask,
    fused_bigru,
    grouped_dropout_attention,
)
from selfcross.training.runtime import (
    apply_backend_settings,
    apply_run_settings,
    compile_network,
    compile_options,
)
from tests.conftest import SMALL_SHAPES

E = 120
REFERENCE = {"attention_weights": True, "fused_gru": False, "blocked_attention": False}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def batch_for(shapes, modalities="TVA", b=4, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = {
        m: torch.randn(b, shapes[m]["seq_len"], shapes[m]["feat_dim"], generator=gen).to(dtype)
        for m in modalities
    }
    out["label"] = torch.randint(0, 7, (b,), generator=gen)
    return out


def pair(fusion="cross_self", modalities="TVA", shapes=SMALL_SHAPES, **kw):
    """(fast, reference) networks with the same weights; the reference in float64."""
    torch.manual_seed(0)
    fast = EmotionNet(list(modalities), shapes, fusion=fusion, **kw)
    ref = EmotionNet(list(modalities), shapes, fusion=fusion, **kw, **REFERENCE)
    ref.load_state_dict(fast.state_dict())
    return fast, ref.double()


def grads(net, batch) -> dict[str, torch.Tensor]:
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(batch), batch["label"]).backward()
    return {k: p.grad.clone() for k, p in net.named_parameters()}


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


# -- attention modules ------------------------------------------------------------------------
def test_fused_and_weight_returning_attention_agree():
    attn = CrossModalAttention(E, 6, 0.1).eval()
    target, source = torch.randn(2, 7, E), torch.randn(2, 11, E)
    with torch.no_grad():
        fused = attn(target, source)
        weighted, weights = attn(target, source, need_weights=True)
    assert weights.shape == (2, 7, 11)
    torch.testing.assert_close(fused, weighted, rtol=1e-5, atol=1e-6)


def op_names(fn) -> set[str]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.name for e in prof.events()}


@pytest.mark.parametrize("train", [False, True])
def test_attention_takes_the_fused_kernel_unless_weights_are_asked_for(train):
    """CPU: the flash kernel in evaluation and in training without dropout.

    (nn.MultiheadAttention's own inference fast path for self-attention computes the weights
    explicitly, and is about twice as slow at 500x500: it is not used.)
    """
    attn = SelfAttention(E, 6, 0.0 if train else 0.1).train(train)
    x = torch.randn(2, 9, E)
    with torch.set_grad_enabled(train):
        fused = op_names(lambda: attn(x))
        weighted = op_names(lambda: attn(x, need_weights=True))
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in fused, sorted(fused)
    assert not {"aten::softmax", "aten::_softmax", "aten::bmm"} & fused
    assert {"aten::_softmax", "aten::bmm"} <= weighted
    assert not any("scaled_dot_product" in n for n in weighted)


@pytest.mark.parametrize("self_attention", [True, False])
@pytest.mark.parametrize("blocked", [True, False])
def test_module_paths_equal_multihead_attention(monkeypatch, self_attention, blocked):
    """Our projections + SDPA or the blocked kernel vs nn.MultiheadAttention's own forward."""
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return blocked_dropout_attention(*args, **kwargs)

    monkeypatch.setattr(attention_module, "blocked_dropout_attention", counting)
    torch.manual_seed(0)
    # Dropout so small that nothing is dropped: the training paths run, the maths is the
    # dropout-free function that nn.MultiheadAttention computes in eval mode.
    attn = (SelfAttention if self_attention else CrossModalAttention)(E, 6, 1e-12, blocked)
    attn.double()
    streams = [torch.randn(3, 9, E, dtype=torch.float64)]
    if not self_attention:
        streams.append(torch.randn(3, 5, E, dtype=torch.float64))
    target, source = streams[0], streams[-1]
    ours = attn.train()(*streams)
    reference = attn.mha.eval()(target, source, source, need_weights=False)[0]
    assert calls == ([(18, 9, 20)] if blocked else [])  # B * heads rows of head size 120 / 6
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-10)
    upstream = torch.randn_like(reference)
    params = list(attn.parameters())
    for a, b in zip(
        torch.autograd.grad(reference, params, upstream),
        torch.autograd.grad(ours, params, upstream),
        strict=True,
    ):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-10)


# -- whole networks ---------------------------------------------------------------------------
@pytest.mark.parametrize("fusion,modalities", [("cross_self", "TVA"), ("self", "TV")])
def test_float32_fast_network_gives_the_float64_reference_logits(fusion, modalities):
    fast, ref = pair(fusion, modalities)
    fast.eval(), ref.eval()
    batch = batch_for(SMALL_SHAPES, modalities)
    with torch.no_grad():
        logits = fast(batch)
        expected = ref({k: v.double() if v.is_floating_point() else v for k, v in batch.items()})
    torch.testing.assert_close(logits.double(), expected, rtol=1e-4, atol=1e-5)


def test_fast_training_path_has_the_reference_gradients():
    """CPU kernels on vs PyTorch's layers with weights returned, both in float64, training mode.

    Dropout is disabled (input) or negligible (attention: 1e-12, which still routes attention
    through the blocked kernel), so both compute the same deterministic function.
    """
    fast, ref = pair(attn_dropout=1e-12, input_dropout={})
    fast.double().train(), ref.train()
    batch = batch_for(SMALL_SHAPES, dtype=torch.float64)
    fast_grads, ref_grads = grads(fast, batch), grads(ref, batch)
    assert fast_grads.keys() == ref_grads.keys()
    for name, g in ref_grads.items():
        torch.testing.assert_close(fast_grads[name], g, rtol=1e-7, atol=1e-9, msg=name)


def test_compiled_network_matches_eager():
    """Graph capture through Dynamo and AOT autograd (the CPU kernels run as graph breaks)."""
    eager, _ = pair("cross", "TVA", input_dropout={})
    compiled, _ = pair("cross", "TVA", input_dropout={})
    assert compile_network(compiled, {"backend": "aot_eager"})
    eager.eval(), compiled.eval()
    batch = batch_for(SMALL_SHAPES)
    with torch.no_grad():
        torch.testing.assert_close(compiled(batch), eager(batch), rtol=1e-5, atol=1e-6)
    assert list(compiled.state_dict()) == list(eager.state_dict())  # no "_orig_mod." keys


@pytest.mark.slow
def test_inductor_compiled_training_matches_eager():
    eager, _ = pair("self", "TV", attn_dropout=0.0, input_dropout={})
    compiled, _ = pair("self", "TV", attn_dropout=0.0, input_dropout={})
    compile_network(compiled, True)
    eager.train(), compiled.train()
    batch = batch_for(SMALL_SHAPES, "TV")
    g_eager, g_compiled = grads(eager, batch), grads(compiled, batch)
    for name, g in g_eager.items():
        torch.testing.assert_close(g_compiled[name], g, rtol=1e-4, atol=1e-5, msg=name)


# -- settings and config ----------------------------------------------------------------------
@pytest.fixture
def restore_backend():
    threads = torch.get_num_threads()
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def test_backend_settings(restore_backend):
    settings = apply_backend_settings(tf32=False, cpu_threads=1)
    assert settings == {"tf32": False, "cpu_threads": 1, "cudnn": True}
    assert torch.get_num_threads() == 1
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    apply_backend_settings(tf32=True)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    with pytest.raises(ConfigError, match="cpu_threads=0"):
        apply_backend_settings(cpu_threads=0)


def test_compile_options():
    assert compile_options(False) is None and compile_options(None) is None
    assert compile_options(True) == {"backend": "inductor", "mode": None}
    assert compile_options({"mode": "max-autotune"}) == {
        "backend": "inductor",
        "mode": "max-autotune",
    }
    assert compile_options({"enabled": False, "mode": "max-autotune"}) is None
    with pytest.raises(ConfigError, match="unknown key"):
        compile_options({"fullgraph": True})
    with pytest.raises(ConfigError, match="model.compile"):
        compile_options("yes")


def test_config_switches_reach_the_network(make_cfg, restore_backend):
    cfg = make_cfg("model=cross", "modality=TV")
    net = instantiate(cfg.model.network)
    assert not net.attention_weights
    assert all(e.fused_gru for e in net.encoders.values())
    assert all(a.blocked for a in net.cross_attention.values())
    cfg = make_cfg(
        "model.network.attention_weights=true",
        "model.network.fused_gru=false",
        "model.network.blocked_attention=false",
        "model.tf32=false",
        "threads=1",
    )
    module = instantiate(cfg.model)
    net = module.network
    assert net.attention_weights
    assert not any(e.fused_gru for e in net.encoders.values())
    assert not any(a.blocked for a in net.self_attention.values())
    assert module.compile_setting is False and module.tf32 is False
    settings = apply_run_settings(module, cfg.threads)
    assert settings["cpu_threads"] == 1 and settings["compile"] is False
    assert settings["tf32"] is False and not torch.backends.cuda.matmul.allow_tf32


def test_run_settings_compile_the_network_and_take_the_launchers_thread_share(
    make_cfg, restore_backend, monkeypatch
):
    from selfcross.training.runtime import ENV_THREADS

    monkeypatch.setenv(ENV_THREADS, "1")
    cfg = make_cfg("model=cross", "modality=TV", "model.compile={backend: eager}")
    module = instantiate(cfg.model)
    settings = apply_run_settings(module, threads=None)
    assert settings["cpu_threads"] == 1 and settings["compile"] is True


# -- GPU --------------------------------------------------------------------------------------
@pytest.mark.gpu
@needs_cuda
def test_cuda_cudnn_gru_and_fused_attention_match_the_cpu_kernels():
    fast, ref = pair("cross_self", "TVA", attn_dropout=0.0, input_dropout={})
    batch = batch_for(SMALL_SHAPES, dtype=torch.float64)
    fast.double().eval(), ref.eval()
    with torch.no_grad():
        cpu = ref(batch)
        cuda = fast.cuda()({k: v.cuda() for k, v in batch.items()}).cpu()
    torch.testing.assert_close(cuda, cpu, rtol=1e-7, atol=1e-9)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_training_attention_is_fused_with_dropout(dtype):
    """On CUDA, training attention with dropout runs a fused SDPA kernel, no explicit softmax."""
    from torch.profiler import ProfilerActivity, profile

    attn = CrossModalAttention(E, 6, 0.1).cuda().train()
    target, source = torch.randn(32, 500, E, device="cuda"), torch.randn(32, 128, E, device="cuda")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            attn(target, source).float().sum().backward()
        torch.cuda.synchronize()
    names = {e.name for e in prof.events()}
    fused = ("_efficient_attention", "_flash_attention", "_cudnn_attention")
    assert any(any(f in n for f in fused) for n in names), sorted(names)
    assert "aten::softmax" not in names and "aten::_softmax" not in names


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("variant", ["bf16-mixed", "compiled"])
def test_cuda_bf16_and_compiled_training_track_float32(variant, restore_backend):
    """Train the same network on the same synthetic batches; the losses must stay together."""
    apply_backend_settings(tf32=False)
    shapes = {
        "T": {"seq_len": 32, "feat_dim": 50, "conv_out": None},
        "V": {"seq_len": 16, "feat_dim": 128, "conv_out": 12},
        "A": {"seq_len": 100, "feat_dim": 40, "conv_out": 50},
    }
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 7, (256,), generator=gen)
    centres = {m: torch.randn(7, 1, s["feat_dim"], generator=gen) for m, s in shapes.items()}
    data = {
        m: centres[m][labels] + torch.randn(256, s["seq_len"], s["feat_dim"], generator=gen)
        for m, s in shapes.items()
    }

    def train(net, autocast):
        net = net.cuda().train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        losses = []
        for _epoch in range(3):
            for i in range(0, 256, 32):
                batch = {m: x[i : i + 32].cuda() for m, x in data.items()}
                target = labels[i : i + 32].cuda()
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                    logits = net(batch)
                loss = F.cross_entropy(logits.float(), target)
                loss.backward()
                opt.step()
                losses.append(loss.item())
        net.eval()
        with torch.no_grad():
            logits = net({m: x[:64].cuda() for m, x in data.items()}).float()
        return losses, logits

    reference, _ = pair("cross", "TVA", shapes=shapes, attn_dropout=0.0, input_dropout={})
    other, _ = pair("cross", "TVA", shapes=shapes, attn_dropout=0.0, input_dropout={})
    if variant == "compiled":
        compile_network(other, True)
    ref_losses, ref_logits = train(reference, autocast=False)
    losses, logits = train(other, autocast=variant == "bf16-mixed")
    assert ref_losses[-1] < 0.7 * ref_losses[0]  # it learns
    tol = 0.1 if variant == "bf16-mixed" else 1e-3
    assert max(abs(a - b) for a, b in zip(ref_losses, losses, strict=True)) < tol
    agree = (logits.argmax(-1) == ref_logits.argmax(-1)).float().mean().item()
    assert agree > (0.9 if variant == "bf16-mixed" else 0.99)
