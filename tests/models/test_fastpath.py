"""Fast paths compute what the plain paths compute: same logits and gradients, same weights
(attention modules, whole networks, compiled networks, the backend settings and config
switches that select them, and the CUDA paths; the kernels: test_fastpath_kernels.py).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from selfcross.errors import ConfigError
from selfcross.models import CrossModalAttention, EmotionNet, SelfAttention
from selfcross.models import attention as attention_module
from selfcross.models.kernels import blocked_dropout_attention
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
