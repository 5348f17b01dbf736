"""model.network.mask_padding: valid lengths in batches, key-padding masks, valid-step averages."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from selfcross.models import CrossModalAttention, EmotionNet, SelfAttention, temporal_average
from selfcross.models.encoders import ModalityEncoder, valid_after_conv
from selfcross.models.kernels import blocked_dropout_attention, dropout_keep_mask
from selfcross.models.transformer import TransformerStack
from tests.conftest import SMALL_SHAPES
from tests.helpers.modelkit import MODELS, architecture

LAYERS = {"cross_self_transformer": {"num_layers": 2}}  # a stack: the mask reaches each layer


def make_batch(lengths: dict[str, list[int]], shapes=SMALL_SHAPES, seed=0):
    """Features zero beyond each utterance's valid length, as the fold format pads them."""
    gen = torch.Generator().manual_seed(seed)
    batch: dict = {"lengths": {}}
    for m, n in lengths.items():
        n = torch.tensor(n)
        x = torch.randn(len(n), shapes[m]["seq_len"], shapes[m]["feat_dim"], generator=gen)
        valid = torch.arange(shapes[m]["seq_len"])[None, :] < n[:, None]
        batch[m] = x * valid[..., None]
        batch["lengths"][m] = n
    return batch


def full(modalities: str, b: int = 3) -> dict[str, list[int]]:
    return {m: [SMALL_SHAPES[m]["seq_len"]] * b for m in modalities}


def network(model: str, modalities: str, mask: bool, **kw) -> EmotionNet:
    torch.manual_seed(0)
    settings = {**architecture(model), **LAYERS.get(model, {}), **kw}
    return EmotionNet(list(modalities), SMALL_SHAPES, mask_padding=mask, **settings)


# -- valid lengths through the time-wise convolution ---------------------------------------


def test_valid_length_through_the_convolution_by_hand():
    # Audio 1000 -> 500: ceil(n / 2). Video 32 -> 25: ceil(n * 25 / 32).
    audio = valid_after_conv(torch.tensor([0, 1, 2, 3, 999, 1000]), 1000, 500)
    assert audio.tolist() == [0, 1, 1, 2, 500, 500]
    video = valid_after_conv(torch.tensor([0, 1, 2, 13, 31, 32]), 32, 25)
    # 25/32 = 0.78125 per frame: 1 -> 0.78 -> 1, 2 -> 1.56 -> 2, 13 -> 10.16 -> 11,
    # 31 -> 24.2 -> 25, 32 -> 25.
    assert video.tolist() == [0, 1, 2, 11, 25, 25]
    assert valid_after_conv(torch.tensor([0, 5, 7]), 7, 7).tolist() == [0, 5, 7]
    enc = ModalityEncoder(seq_len=10, feat_dim=3, conv_out=5)
    assert enc.out_lengths(torch.tensor([0, 1, 4, 5, 10])).tolist() == [0, 1, 2, 3, 5]
    assert ModalityEncoder(seq_len=7, feat_dim=3).out_lengths(torch.tensor([3])).tolist() == [3]


# -- attention modules ------------------------------------------------------------------------


def _attention_pair(kind):
    torch.manual_seed(1)
    module = kind(embed_dim=12, num_heads=3, dropout=0.0).eval()
    return module


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("kind", [SelfAttention, CrossModalAttention])
def test_padded_keys_get_no_attention(kind, need_weights):
    """The output ignores what sits in padded key frames; the weights there are 0."""
    attn = _attention_pair(kind)
    gen = torch.Generator().manual_seed(2)
    target = torch.randn(3, 5, 12, generator=gen)
    source = target if kind is SelfAttention else torch.randn(3, 7, 12, generator=gen)
    n = torch.tensor([2, source.shape[1], 4])
    valid = torch.arange(source.shape[1])[None, :] < n[:, None]
    noisy_source = source + 50.0 * (~valid)[..., None] * torch.randn(source.shape, generator=gen)
    args = (target,) if kind is SelfAttention else (target, source)
    noisy = (noisy_source,) if kind is SelfAttention else (target, noisy_source)
    out = attn(*args, need_weights=need_weights, key_valid=valid)
    out_noisy = attn(*noisy, need_weights=need_weights, key_valid=valid)
    if need_weights:
        (out, weights), (out_noisy, _) = out, out_noisy
        assert weights.shape == (3, 5, source.shape[1])
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5))
        assert weights.masked_select(~valid[:, None, :]).abs().max() == 0
    # Rows compared: every query of a cross module; the valid ones of a self module (its noisy
    # frames are also queries).
    rows = valid if kind is SelfAttention else torch.ones(3, 5, dtype=torch.bool)
    torch.testing.assert_close(out_noisy[rows], out[rows])
    unmasked = attn(*args, need_weights=need_weights)
    unmasked_noisy = attn(*noisy, need_weights=need_weights)
    if need_weights:
        unmasked, unmasked_noisy = unmasked[0], unmasked_noisy[0]
    assert not torch.allclose(unmasked_noisy[rows], unmasked[rows], atol=1e-3)


def test_fused_and_weight_paths_agree_with_masks():
    attn = _attention_pair(CrossModalAttention)
    gen = torch.Generator().manual_seed(3)
    target, source = torch.randn(4, 5, 12, generator=gen), torch.randn(4, 6, 12, generator=gen)
    valid = torch.arange(6)[None, :] < torch.tensor([1, 3, 6, 0])[:, None]
    fused = attn(target, source, key_valid=valid)
    weighted, _ = attn(target, source, need_weights=True, key_valid=valid)
    torch.testing.assert_close(fused, weighted)
    attn.record_weights = True
    recorded = attn(target, source, key_valid=valid)
    torch.testing.assert_close(recorded, fused)
    assert attn.last_weights.shape == (4, 3, 5, 6)  # per head


def test_a_sample_without_valid_keys_attends_to_nothing():
    """Zero-length video (drop_zero_video=false): zero output and weights, no NaN, and finite
    gradients; the other samples are untouched."""
    attn = _attention_pair(CrossModalAttention).train()
    attn.mha.dropout = 0.0
    gen = torch.Generator().manual_seed(4)
    target = torch.randn(3, 5, 12, generator=gen, requires_grad=True)
    source = torch.randn(3, 6, 12, generator=gen, requires_grad=True)
    valid = torch.arange(6)[None, :] < torch.tensor([6, 0, 2])[:, None]
    out = attn(target, source, key_valid=valid)
    assert torch.isfinite(out).all()
    assert out[1].abs().max() == 0
    out.sum().backward()
    assert torch.isfinite(target.grad).all() and torch.isfinite(source.grad).all()
    attn.record_weights = True
    attn(target, source, key_valid=valid)
    weights = attn.last_weights
    assert weights[1].abs().max() == 0
    torch.testing.assert_close(weights[[0, 2]].sum(-1), torch.ones(2, 3, 5))
    alone = attn(target[[0, 2]], source[[0, 2]], key_valid=valid[[0, 2]])
    torch.testing.assert_close(out[[0, 2]], alone)
    # CPU training with dropout: the blocked kernel, whose softmax would be NaN on a row of
    # -inf only (and its backward pass NaN for the whole sample).
    attn.record_weights = False
    attn.mha.dropout = 0.3
    target.grad = source.grad = None
    out = attn(target, source, key_valid=valid)
    assert torch.isfinite(out).all() and out[1].abs().max() == 0
    out.sum().backward()
    assert torch.isfinite(target.grad).all() and torch.isfinite(source.grad).all()
    assert torch.isfinite(attn.mha.in_proj_weight.grad).all()


def test_blocked_kernel_with_a_key_mask_is_masked_dropout_attention():
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(4, 6, 3, generator=gen, dtype=torch.float64) for _ in range(3))
    valid = torch.arange(6)[None, :] < torch.tensor([6, 1, 3, 5])[:, None]
    bias = torch.zeros(4, 1, 6, dtype=torch.float64).masked_fill(~valid[:, None], -math.inf)
    p = 0.3
    out = blocked_dropout_attention(
        q, k, v, p, block=3, generator=torch.Generator().manual_seed(9), bias=bias
    )
    keep = dropout_keep_mask((4, 6, 6), p, torch.Generator().manual_seed(9))
    weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(3) + bias, dim=-1)
    assert weights.masked_select(~valid[:, None]).max() == 0
    torch.testing.assert_close(out, (weights * keep / (1 - p)) @ v, rtol=0, atol=1e-12)

    qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))

    def attend(q, k, v):
        return blocked_dropout_attention(
            q, k, v, p, block=3, generator=torch.Generator().manual_seed(9), bias=bias
        )

    assert torch.autograd.gradcheck(attend, (qg, kg, vg))


def test_blocked_training_path_with_masks_matches_sdpa_without_drops():
    """The module's CPU training path (blocked kernel) and PyTorch's masked SDPA agree."""
    attn = _attention_pair(CrossModalAttention).train()
    attn.mha.dropout = 1e-12  # blocked kernel taken, nothing dropped
    gen = torch.Generator().manual_seed(6)
    target, source = torch.randn(3, 5, 12, generator=gen), torch.randn(3, 6, 12, generator=gen)
    valid = torch.arange(6)[None, :] < torch.tensor([6, 2, 4])[:, None]
    blocked = attn(target, source, key_valid=valid)
    attn.blocked = False
    reference = attn(target, source, key_valid=valid)
    torch.testing.assert_close(blocked, reference, rtol=1e-5, atol=1e-6)


def test_transformer_stack_honours_the_mask():
    torch.manual_seed(7)
    stack = TransformerStack(12, 3, 0.0, 24, "pre", num_layers=2, cross=True).eval()
    gen = torch.Generator().manual_seed(8)
    target, source = torch.randn(2, 5, 12, generator=gen), torch.randn(2, 6, 12, generator=gen)
    valid = torch.arange(6)[None, :] < torch.tensor([3, 6])[:, None]
    noisy = source + 30.0 * (~valid)[..., None]
    torch.testing.assert_close(
        stack(target, noisy, key_valid=valid), stack(target, source, key_valid=valid)
    )
    assert not torch.allclose(stack(target, noisy), stack(target, source), atol=1e-3)


def test_temporal_average_over_valid_steps():
    x = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]], [[7.0], [7.0], [7.0]]])
    valid = torch.tensor([[True, True, False], [True, True, True], [False, False, False]])
    assert temporal_average(x, valid).flatten().tolist() == [2.0, 4.0, 0.0]
    assert temporal_average(x).flatten().tolist() == pytest.approx([104 / 3, 4.0, 7.0])


# -- networks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", list(MODELS))
def test_masked_equals_unmasked_without_padding(model):
    batch = make_batch(full("TVA"))
    masked, unmasked = network(model, "TVA", True).eval(), network(model, "TVA", False).eval()
    masked.load_state_dict(unmasked.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(masked(batch), unmasked(batch), rtol=1e-5, atol=1e-6)
    masked.attention_weights = True  # the reference's weight-returning path
    with torch.no_grad():
        torch.testing.assert_close(masked(batch), unmasked(batch), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["self", "cross", "cross_self_transformer", "cross_nosp"])
def test_masked_network_ignores_padded_steps_after_encoding(model):
    """Whatever the encoded streams hold on padded steps, masked pooling does not see it."""
    lengths = {"T": [7, 3, 1], "V": [6, 2, 0], "A": [10, 4, 7]}
    batch = make_batch(lengths)
    net = network(model, "TVA", True).eval()
    with torch.no_grad():
        valid = net.valid_steps(batch)
        assert valid["V"].sum(1).tolist() == [4, 2, 0]  # 6 -> 4 frames: ceil(n * 4 / 6)
        assert valid["A"].sum(1).tolist() == [5, 2, 4]  # 10 -> 5: ceil(n / 2)
        encoded = net.encode(batch)
        noisy = {m: e + 40.0 * (~valid[m])[..., None] for m, e in encoded.items()}
        clean_sets, noisy_sets = net.attend(encoded, valid), net.attend(noisy, valid)
        for a, b in zip(clean_sets, noisy_sets, strict=True):
            torch.testing.assert_close(b, a)
            assert torch.isfinite(a).all()
        plain_sets, plain_noisy = net.attend(encoded), net.attend(noisy)
        assert not torch.allclose(plain_sets[0], plain_noisy[0], atol=1e-3)


def test_zero_length_stream_trains_without_nan():
    lengths = {"T": [7, 3], "V": [0, 6], "A": [10, 0]}
    batch = make_batch(lengths)
    for model in ("cross_self", "cross_self_transformer"):
        net = network(model, "TVA", True).train()
        logits = net(batch)
        assert torch.isfinite(logits).all()
        F.cross_entropy(logits, torch.tensor([0, 1])).backward()
        assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_masking_needs_lengths_in_the_batch():
    batch = make_batch(full("TV"))
    del batch["lengths"]["V"]
    with pytest.raises(ValueError, match=r"batch\['lengths'\] has no V"):
        network("cross", "TV", True)(batch)
    assert network("cross", "TV", False)(batch).shape == (3, 7)  # unmasked: lengths unused


def test_unmasked_network_ignores_lengths():
    batch = make_batch({"T": [7, 2, 1], "A": [3, 10, 1]})
    net = network("cross", "TA", False).eval()
    with torch.no_grad():
        with_lengths = net(batch)
        del batch["lengths"]
        torch.testing.assert_close(net(batch), with_lengths, rtol=0, atol=0)


# -- batches carry the lengths ----------------------------------------------------------------


def test_text_lengths_from_ids_and_dense_rows():
    from selfcross.data.datamodule import text_lengths

    ids = np.array([[5, 2, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [3, 0, 0, 0]])
    lengths = text_lengths(ids, rows=3)
    assert lengths.tolist() == [2, 0, 4, 1] and lengths.dtype == np.int64  # a mask's bound
    dense = np.zeros((3, 4, 2), dtype=np.float32)
    dense[0, :3] = 1.0
    dense[1, 0, 1] = -2.0
    assert text_lengths(dense).tolist() == [3, 1, 0]


@pytest.fixture(scope="module")
def tiny_module(tmp_path_factory):
    from hydra.utils import instantiate

    from selfcross.config import compose
    from tests.conftest import base_overrides

    tmp = tmp_path_factory.mktemp("masking")
    cfg = compose([*base_overrides(tmp), "data.preset=tiny", "data.drop_zero_video=false"])
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    return cfg, dm


def test_batches_carry_the_folds_lengths(tiny_module):
    _, dm = tiny_module
    fold = dm.fold_data.splits["test"]
    loader = dm.test_dataloader()
    batch = next(iter(loader))
    b = len(batch["label"])
    assert set(batch["lengths"]) == set(dm.modalities) == {"T", "V", "A"}
    for m in ("A", "V"):
        assert batch["lengths"][m].dtype == torch.int64
        assert batch["lengths"][m].tolist() == fold.lengths[m][:b].tolist()
    assert (batch["lengths"]["V"] == 0).any() or (fold.lengths["V"] == 0).any()
    ids = np.asarray(fold.features["T"][:b])
    assert batch["lengths"]["T"].tolist() == (ids != 0).sum(1).tolist()  # padding at the end
    for m in ("A", "V"):  # the features are zero beyond the lengths
        x, n = batch[m], batch["lengths"][m]
        beyond = torch.arange(x.shape[1])[None, :] >= n[:, None]
        assert x[beyond].abs().max() == 0
    item = dm.datasets["test"][1]
    assert item["lengths"]["A"] == batch["lengths"]["A"][1]
    moved = dm.datasets["test"].to(torch.device("cpu"), torch.float16)
    assert moved.lengths["A"].dtype == torch.int64


def test_masked_recognizer_trains_on_real_batches(tiny_module):
    from hydra.utils import instantiate

    cfg, dm = tiny_module
    cfg = OmegaConf.merge(cfg, {"model": {"network": {"mask_padding": True}}})
    module = instantiate(cfg.model)
    batch = next(iter(dm.train_dataloader()))
    module.train()
    loss = module._step(batch, "train")
    loss.backward()
    assert torch.isfinite(loss)


def test_mask_padding_default_keeps_config_hashes(make_cfg):
    from selfcross.training.resume import config_hash

    cfg = make_cfg()
    assert cfg.model.network.mask_padding is False
    old = OmegaConf.to_container(cfg, resolve=False)
    del old["model"]["network"]["mask_padding"]  # a run written before the setting existed
    assert config_hash(cfg) == config_hash(OmegaConf.create(old))
    assert config_hash(make_cfg("model.network.mask_padding=true")) != config_hash(cfg)
