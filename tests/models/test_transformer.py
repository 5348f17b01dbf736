"""Transformer-encoder variants: torch's layer, cross-layer roles, parameter counts, training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfcross.errors import ConfigError
from selfcross.models import EmotionNet, TransformerLayer, TransformerStack, count_parameters
from tests.conftest import PAPER_SHAPES, SMALL_SHAPES
from tests.helpers.netkit import E, batch_for, encoders, linear, mha


def copy_from_torch(ours: TransformerLayer, ref: nn.TransformerEncoderLayer) -> None:
    """Give ``ours`` the weights of torch's layer (same layout, other names)."""
    names = {
        "attention.mha.in_proj_weight": "self_attn.in_proj_weight",
        "attention.mha.in_proj_bias": "self_attn.in_proj_bias",
        "attention.mha.out_proj.weight": "self_attn.out_proj.weight",
        "attention.mha.out_proj.bias": "self_attn.out_proj.bias",
    }
    state = ref.state_dict()
    ours.load_state_dict({k: state[names.get(k, k)] for k in ours.state_dict()})


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_layer_equals_torch_encoder_layer(norm):
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(
        E, 6, dim_feedforward=480, dropout=0.1, batch_first=True, norm_first=norm == "pre"
    ).eval()
    with torch.no_grad():  # LayerNorms away from their identity initialisation
        for p in (ref.norm1.weight, ref.norm1.bias, ref.norm2.weight, ref.norm2.bias):
            p.uniform_(0.5, 1.5)
    ours = TransformerLayer(E, 6, 0.1, 480, norm).eval()
    copy_from_torch(ours, ref)
    x = torch.randn(3, 9, E)
    with torch.no_grad():
        expected = ref(x)
        assert torch.allclose(ours(x), expected, atol=1e-5)
        out, weights = ours(x, need_weights=True)
        assert torch.allclose(out, expected, atol=1e-5)
        assert weights.shape == (3, 9, 9)
    # The two layouts differ: post-norm is not pre-norm.
    other = TransformerLayer(E, 6, 0.1, 480, "pre" if norm == "post" else "post").eval()
    copy_from_torch(other, ref)
    with torch.no_grad():
        assert not torch.allclose(other(x), expected, atol=1e-3)


def test_cross_layer_target_queries_source_keys_and_values():
    torch.manual_seed(1)
    layer = TransformerLayer(E, 6, 0.1, 480, "post").eval()
    target, source = torch.randn(2, 5, E), torch.randn(2, 11, E)
    with torch.no_grad():
        out = layer(target, source)
        assert out.shape == (2, 5, E)  # the target's length
        # Written out: the target gives the queries and the residual, the source keys/values.
        attended, _ = layer.attention.mha(target, source, source)
        x = layer.norm1(target + attended)
        x = layer.norm2(x + layer.linear2(layer.linear1(x).relu()))
        assert torch.allclose(out, x, atol=1e-5)
        assert layer(source, target).shape == (2, 11, E)
        same_length = torch.randn(2, 5, E)
        assert not torch.allclose(layer(target, same_length), layer(same_length, target))
        assert not torch.allclose(layer(target, same_length), out[:, :5])


def test_stacked_cross_layers_attend_to_the_source_each_time():
    torch.manual_seed(2)
    stack = TransformerStack(E, 6, 0.1, 480, "post", num_layers=2, cross=True).eval()
    target, source = torch.randn(2, 4, E), torch.randn(2, 7, E)
    first, second = stack.layers
    with torch.no_grad():
        assert torch.allclose(stack(target, source), second(first(target, source), source))
        out, weights = stack(target, source, need_weights=True)
        assert torch.allclose(out, stack(target, source), atol=1e-5)
        assert weights.shape == (2, 4, 7)


def transformer_net(fusion, modality, shapes=PAPER_SHAPES, **kw):
    return EmotionNet(list(modality), shapes, fusion=fusion, transformer=True, **kw)


def layer_params(e=E, ffn=4 * E):
    # attention, feed-forward (two linears), two LayerNorms (weight and bias each)
    return mha(e) + e * ffn + ffn + ffn * e + e + 2 * 2 * e


def test_layer_count_written_out():
    assert layer_params() == 58_080 + 115_800 + 480 == 174_360
    assert count_parameters(TransformerLayer(E, 6, 0.1, 480)) == 174_360


@pytest.mark.parametrize(
    "fusion,modality,num_layers,ffn_dim",
    [("self", "TVA", 1, None), ("cross", "TV", 1, None), ("cross", "TVA", 2, 64),
     ("cross_self", "TA", 1, None), ("self", "A", 3, 100)],
)  # fmt: skip
def test_paper_size_counts_by_formula(fusion, modality, num_layers, ffn_dim):
    n = len(modality)
    k = {"self": n, "cross": n * (n - 1), "cross_self": n + n * (n - 1)}[fusion]
    head_in = 2 * E * (2 if fusion == "cross_self" else 1)
    expected = (
        encoders(modality)
        + k * num_layers * layer_params(ffn=ffn_dim or 4 * E)
        + linear(head_in, 60)
        + linear(60, 7)
    )
    m = transformer_net(fusion, modality, num_layers=num_layers, ffn_dim=ffn_dim)
    assert count_parameters(m) == expected


def test_tri_modal_counts_written_out():
    # Table 1's self (1,645,892) and cross (1,820,132) with each 58,080 MHA now a 174,360 layer.
    assert count_parameters(transformer_net("self", "TVA")) == 1_645_892 + 3 * 116_280
    assert count_parameters(transformer_net("cross", "TVA")) == 1_820_132 + 6 * 116_280


def test_every_fusion_runs_and_cross_needs_two_modalities():
    batch = batch_for(SMALL_SHAPES, "TVA")
    for fusion in ("self", "cross", "cross_self"):
        m = transformer_net(fusion, "TVA", SMALL_SHAPES, norm="pre", num_layers=2)
        assert m(batch).shape == (3, 7)
        m.attention_weights = True
        assert m(batch).shape == (3, 7)
    with pytest.raises(ConfigError, match="at least two modalities"):
        transformer_net("cross", "T", SMALL_SHAPES)


def test_bad_settings_are_one_line_config_errors():
    for kw, key in (({"norm": "middle"}, "norm"), ({"num_layers": 0}, "num_layers"),
                    ({"ffn_dim": 0}, "ffn_dim")):  # fmt: skip
        with pytest.raises(ConfigError, match=f"model.network.{key}=") as err:
            transformer_net("self", "TV", SMALL_SHAPES, **kw)
        assert "\n" not in str(err.value)


def test_bare_attention_models_are_unchanged_by_the_new_settings():
    torch.manual_seed(3)
    bare = EmotionNet(["T", "V"], SMALL_SHAPES, fusion="cross")
    torch.manual_seed(3)
    ignored = EmotionNet(["T", "V"], SMALL_SHAPES, fusion="cross", num_layers=4, norm="pre")
    batch = batch_for(SMALL_SHAPES, "TV")
    bare.eval(), ignored.eval()
    with torch.no_grad():
        assert torch.equal(bare(batch), ignored(batch))


def test_model_configs_compose_to_transformer_networks(make_cfg):
    from hydra.utils import instantiate

    for name, fusion in (("self_transformer", "self"), ("cross_transformer", "cross"),
                         ("cross_self_transformer", "cross_self")):  # fmt: skip
        cfg = make_cfg(f"model={name}", "modality=TV", "model.network.num_layers=2")
        network = instantiate(cfg.model.network)
        assert network.fusion == fusion
        stacks = [*(network.self_attention or {}).values()]
        stacks += [*(network.cross_attention or {}).values()]
        assert stacks and all(len(s.layers) == 2 for s in stacks)
        assert stacks[0].layers[0].linear1.out_features == 480
        assert stacks[0].layers[0].norm == "post"


def test_tiny_training_run_learns(tmp_path, data_dir, make_cfg):
    from selfcross.training.experiment import train_and_test

    cfg = make_cfg(
        f"paths.data_dir={data_dir}",
        "model=cross_transformer",
        "modality=TVA",
        "trainer.max_epochs=5",
        "callbacks.early_stopping.patience=5",
    )
    outcome = train_and_test(cfg)
    assert outcome.status == "done"
    record = outcome.record
    history = record.history
    assert record.model == "cross_transformer"
    assert history[-1]["train/loss"] < 0.8 * history[0]["train/loss"]
    chance = record.majority_rate
    assert record.test_uwa > chance + 0.15
    assert record.n_params == count_parameters(instantiate_network(cfg))


def instantiate_network(cfg):
    from hydra.utils import instantiate

    return instantiate(cfg.model.network)


def test_bad_settings_are_rejected_before_any_work(make_cfg):
    from selfcross.config import validate

    cfg = make_cfg("model=cross_transformer", "modality=TV", "model.network.norm=middle")
    with pytest.raises(ConfigError, match=r"model.network.norm='middle': expected one of post"):
        validate(cfg, need_data=False)
    cfg = make_cfg("model=self_transformer", "model.network.num_layers=0")
    with pytest.raises(ConfigError, match="num_layers=0"):
        validate(cfg, need_data=False)
    validate(make_cfg("model=self_transformer", "model.network.norm=pre"), need_data=False)
