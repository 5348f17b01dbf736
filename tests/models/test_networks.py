"""Architecture: output shapes for every model x modality, parameter counts, pooling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from selfcross import fold_problem, modality_problem
from selfcross.errors import ConfigError
from selfcross.models import (
    ConcatPooling,
    CrossModalAttention,
    EmotionNet,
    ModalityEncoder,
    SelfAttention,
    StatisticalPooling,
    count_parameters,
    cross_pairs,
)
from tests.conftest import PAPER_SHAPES, SMALL_SHAPES
from tests.helpers.modelkit import architecture
from tests.helpers.netkit import E, batch_for, encoders, linear, mha

MODELS = ("self", "cross", "self_nosp", "cross_nosp", "cross_self")  # as conf/model/<name>.yaml
SUBSETS = ["T", "V", "A", "TV", "TA", "VA", "TVA"]


def net(model, modality, shapes=SMALL_SHAPES, **kw):
    return EmotionNet(list(modality), shapes, **architecture(model), **kw)


def fusion_and_pooling(model):
    settings = architecture(model)
    return settings["fusion"], settings["pooling"]


@pytest.mark.parametrize("model,modality", list(itertools.product(MODELS, SUBSETS)))
def test_every_model_and_subset(model, modality):
    fusion, pooling = fusion_and_pooling(model)
    if fusion != "self" and len(modality) == 1:
        with pytest.raises(ConfigError, match="at least two modalities"):
            net(model, modality)
        return
    m = net(model, modality)
    batch = batch_for(SMALL_SHAPES, modality)
    encoded = m.encode(batch)
    for mod, e in encoded.items():
        out_len = SMALL_SHAPES[mod]["conv_out"] or SMALL_SHAPES[mod]["seq_len"]
        assert e.shape == (3, out_len, E)
    sets = m.attend(encoded)
    k_self, k_cross = len(modality), len(modality) * (len(modality) - 1)
    expected_k = {"self": [k_self], "cross": [k_cross], "cross_self": [k_self, k_cross]}[fusion]
    assert [s.shape for s in sets] == [(3, k, E) for k in expected_k]
    assert m(batch).shape == (3, 7)
    if pooling == "stat":
        assert m.classifier[0].in_features == 2 * E * len(expected_k)
    else:
        assert m.classifier[0].in_features == E * sum(expected_k)


def test_cross_pairs_are_ordered_and_complete():
    assert cross_pairs(["T", "V", "A"]) == [
        ("V", "T"), ("A", "T"), ("T", "V"), ("A", "V"), ("T", "A"), ("V", "A"),
    ]  # fmt: skip
    assert cross_pairs(["T", "A"]) == [("A", "T"), ("T", "A")]


def test_cross_attention_output_has_target_length():
    attn = CrossModalAttention(E, 6, 0.0)
    target, source = torch.randn(2, 7, E), torch.randn(2, 19, E)
    out, weights = attn(target, source, need_weights=True)
    assert out.shape == (2, 7, E)
    assert weights.shape == (2, 7, 19)  # averaged over heads
    assert torch.allclose(weights.sum(-1), torch.ones(2, 7))
    assert isinstance(attn(target, source), torch.Tensor)  # no weights unless asked


def test_self_attention_is_cross_attention_of_a_stream_with_itself():
    attn = SelfAttention(E, 6, 0.0).eval()
    x = torch.randn(2, 5, E)
    assert torch.allclose(attn(x), CrossModalAttention.forward(attn, x, x))


def test_encoder_conv_reads_time_as_channels():
    enc = ModalityEncoder(seq_len=10, feat_dim=9, hidden=60, conv_out=5)
    assert enc.conv.in_channels == 10 and enc.conv.out_channels == 5
    assert enc(torch.randn(4, 10, 9)).shape == (4, 5, 120)
    text = ModalityEncoder(seq_len=7, feat_dim=11, input_dropout=0.25)
    assert text.conv is None and text(torch.randn(4, 7, 11)).shape == (4, 7, 120)


def test_statistical_pooling_is_mean_and_unbiased_std():
    x = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]]])  # B=1, K=3, E=2
    out = StatisticalPooling()(x)
    assert torch.allclose(out, torch.tensor([[3.0, 6.0, 2.0, 4.0]]))  # [mu || sigma], n-1


def test_statistical_pooling_of_one_stream_has_zero_std():
    x = torch.randn(4, 1, 6)
    out = StatisticalPooling()(x)
    assert torch.equal(out[:, :6], x[:, 0]) and torch.equal(out[:, 6:], torch.zeros(4, 6))


def test_concat_pooling_keeps_stream_order():
    x = torch.arange(12.0).reshape(1, 3, 4)
    assert torch.equal(ConcatPooling()(x), torch.arange(12.0).reshape(1, 12))


# -- parameter counts, computed by hand from the paper's description ------------------------
def test_paper_size_counts_written_out():
    # Tri-modal cross: convs 500,500 + 825; GRUs 130,320 (T) + 759,600 (V) + 65,520 (A);
    # 6 MHAs of 58,080; classifier 14,460 + 427.
    assert count_parameters(net("cross", "TVA", PAPER_SHAPES)) == 1_820_132
    # Tri-modal self: the same with 3 MHAs.
    assert count_parameters(net("self", "TVA", PAPER_SHAPES)) == 1_645_892
    # Uni-modal text self: GRU + one MHA + classifier.
    assert count_parameters(net("self", "T", PAPER_SHAPES)) == 203_287


@pytest.mark.parametrize(
    "model,modality",
    [("self", "TV"), ("cross", "VA"), ("self_nosp", "TVA"), ("cross_nosp", "TVA"),
     ("cross_self", "TVA"), ("cross_self", "TA"), ("self", "A")],
)  # fmt: skip
def test_paper_size_counts_by_formula(model, modality):
    fusion, pooling = fusion_and_pooling(model)
    m_count = len(modality)
    k_self = m_count if fusion in ("self", "cross_self") else 0
    k_cross = m_count * (m_count - 1) if fusion in ("cross", "cross_self") else 0
    if pooling == "stat":
        head_in = 2 * E * ((k_self > 0) + (k_cross > 0))
    else:
        head_in = E * (k_self + k_cross)
    expected = (
        encoders(modality) + (k_self + k_cross) * mha() + linear(head_in, 60) + linear(60, 7)
    )
    assert count_parameters(net(model, modality, PAPER_SHAPES)) == expected


def test_unknown_choices_are_config_errors():
    with pytest.raises(ConfigError, match="fusion"):
        EmotionNet(["T", "V"], SMALL_SHAPES, fusion="both")
    with pytest.raises(ConfigError, match="pooling"):
        EmotionNet(["T", "V"], SMALL_SHAPES, pooling="max")
    with pytest.raises(ConfigError, match="subset"):
        EmotionNet(["T", "X"], SMALL_SHAPES)


# -- the modality and fold rules, stated once beside fusion_problem -------------------------
SUBSET = "choose a non-empty subset of T, V, A"
TWICE = "a modality is listed twice"


@pytest.mark.parametrize(
    ("modalities", "reason"),
    [
        ("TVA", None), (["T"], None), (("A", "T"), None), ("VT", None), (["V", "A"], None),
        ("", SUBSET), ([], SUBSET), ("TX", SUBSET), (["t"], SUBSET), (["TV"], SUBSET),
        ([None], SUBSET), ("TT", TWICE), (["A", "V", "A"], TWICE),
    ],
)  # fmt: skip
def test_modality_problem(modalities, reason):
    assert modality_problem(modalities) == reason


@pytest.mark.parametrize(
    ("fold", "n_folds", "valid"),
    [
        (1, 5, True), (5, 5, True), (3, 5, True), (1, 1, True), (np.int64(2), 5, True),
        (0, 5, False), (6, 5, False), (-1, 5, False), (2, 1, False), (True, 5, False),
        ("1", 5, False), (1.0, 5, False), (None, 5, False),
    ],
)  # fmt: skip
def test_fold_problem(fold, n_folds, valid):
    expected = None if valid else f"fold={fold}: folds are numbered 1..{n_folds}"
    assert fold_problem(fold, n_folds) == expected


def test_every_place_asks_the_modality_and_fold_rules(tmp_path):
    """The network, the data module and the benchmark give the rule's reason (a modality
    listed twice was reordered away by the first two before the rule was stated once)."""
    from selfcross import bench
    from selfcross.data.datamodule import IemocapDataModule

    with pytest.raises(ConfigError, match=rf"^modalities=\['T', 'T'\]: {TWICE}$"):
        EmotionNet(["T", "T"], SMALL_SHAPES)
    with pytest.raises(ConfigError, match=rf"^modalities=\['V', 'V'\]: {TWICE}$"):
        IemocapDataModule(root=str(tmp_path), modalities=["V", "V"])
    with pytest.raises(ConfigError, match=r"^fold=True: folds are numbered 1..5$"):
        IemocapDataModule(root=str(tmp_path), fold=True)
    with pytest.raises(ConfigError, match=r"^--modalities: 'AA' is not a subset of T, V, A$"):
        bench.check_args(bench.parse_args(["--modalities", "AA"]))


# -- roles and modes that shape checks cannot see -------------------------------------------


@pytest.mark.parametrize("attention_weights", [False, True])
def test_network_cross_path_queries_the_target_with_the_source_as_key_and_value(
    attention_weights,
):
    """Each cross stream s2t is nn.MultiheadAttention(query=t, key=s, value=s), time-averaged;
    the streams have different lengths and contents, so swapped roles give other numbers."""
    torch.manual_seed(0)
    m = net("cross_nosp", "TA", attn_dropout=0.0, attention_weights=attention_weights).eval()
    encoded = {"T": torch.randn(2, 7, E), "A": 3 * torch.randn(2, 5, E) + 1}
    (streams,) = m.attend(encoded)
    assert streams.shape == (2, 2, E)
    for i, (s, t) in enumerate(cross_pairs(["T", "A"])):
        reference = torch.nn.MultiheadAttention(E, 6, batch_first=True).eval()
        reference.load_state_dict(m.cross_attention[f"{s}2{t}"].mha.state_dict())
        with torch.no_grad():
            out, _ = reference(query=encoded[t], key=encoded[s], value=encoded[s])
            swapped, _ = reference(query=encoded[s], key=encoded[t], value=encoded[t])
        assert out.shape == (2, encoded[t].shape[1], E)
        assert torch.allclose(streams[:, i], out.mean(dim=1), atol=1e-5)
        assert not torch.allclose(streams[:, i], swapped.mean(dim=1), atol=1e-2)


def test_dropout_is_off_in_eval_and_on_in_training():
    """Input dropout (every modality) and attention dropout act only in train mode."""
    torch.manual_seed(0)
    dropout = {"T": 0.5, "V": 0.5, "A": 0.5}
    for model in ("self", "cross"):
        m = net(model, "TVA", input_dropout=dropout, attn_dropout=0.3)
        batch = batch_for(SMALL_SHAPES, "TVA")
        with torch.no_grad():
            m.eval()
            first, second = m(batch), m(batch)
            assert torch.equal(first, second)
            m.train()
            assert not torch.allclose(m(batch), m(batch))
            assert not torch.allclose(m(batch), first)


def test_each_modalitys_input_dropout_acts_in_training_only():
    torch.manual_seed(0)
    x = torch.randn(4, 7, 11)
    enc = ModalityEncoder(seq_len=7, feat_dim=11, input_dropout=0.5)
    with torch.no_grad():
        enc.eval()
        assert torch.equal(enc(x), enc(x))
        enc.train()
        assert not torch.allclose(enc(x), enc(x))
