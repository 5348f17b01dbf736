"""EmotionNet's settings reach what they configure: attention weights on request, the fused
GRU, the pooling choices, each modality's input dropout, the sizes, attention dropout
(behaviours mutation testing found unchecked, docs/mutation.md).

Each test works through the public interfaces (outputs on hand-made inputs, calls into
PyTorch's own modules), so it holds whatever the attention internals become.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfcross.errors import ConfigError
from selfcross.models import CrossModalAttention, EmotionNet
from tests.conftest import SMALL_SHAPES


def _count_calls(monkeypatch, cls) -> list:
    calls = []
    forward = cls.forward

    def counted(self, *args, **kwargs):
        calls.append(kwargs.get("need_weights"))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(cls, "forward", counted)
    return calls


@pytest.mark.parametrize("attention_weights", [False, True])
def test_attention_weights_are_computed_only_when_asked_for(monkeypatch, attention_weights):
    """By default every attention module runs without weights (the fast path); with
    ``attention_weights`` each of the 3 self and 6 cross modules of Cross+Self asks for them."""
    torch.manual_seed(0)
    kw = {"attention_weights": True} if attention_weights else {}
    net = EmotionNet(["T", "V", "A"], SMALL_SHAPES, fusion="cross_self", **kw).eval()
    calls = _count_calls(monkeypatch, nn.MultiheadAttention)
    batch = {m: torch.randn(2, s["seq_len"], s["feat_dim"]) for m, s in SMALL_SHAPES.items()}
    net(batch)
    assert calls == ([True] * 9 if attention_weights else [])


def test_the_default_encoder_runs_the_fused_gru_on_the_cpu(monkeypatch):
    net = EmotionNet(["A"], SMALL_SHAPES).eval()
    calls = _count_calls(monkeypatch, nn.GRU)
    net({"A": torch.randn(2, 10, 9)})
    assert calls == []
    unfused = EmotionNet(["A"], SMALL_SHAPES, fused_gru=False).eval()
    unfused({"A": torch.randn(2, 10, 9)})
    assert len(calls) == 1


def test_an_unknown_pooling_lists_the_choices():
    with pytest.raises(ConfigError) as caught:
        EmotionNet(["T", "V"], SMALL_SHAPES, pooling="max")
    assert str(caught.value) == "pooling='max': expected one of stat, concat"


def test_each_modalitys_input_dropout_reaches_its_own_encoder():
    """``input_dropout={"T": 0.5}`` drops text features in training and nothing else: with no
    attention dropout, the audio encoding of a batch is the same on every call."""
    torch.manual_seed(0)
    net = EmotionNet(["T", "A"], SMALL_SHAPES, input_dropout={"T": 0.5}, attn_dropout=0.0)
    batch = {
        m: torch.randn(2, SMALL_SHAPES[m]["seq_len"], SMALL_SHAPES[m]["feat_dim"]) for m in "TA"
    }
    net.train()
    with torch.no_grad():
        first, second = net.encode(batch), net.encode(batch)
    assert not torch.allclose(first["T"], second["T"])
    assert torch.equal(first["A"], second["A"])
    net.eval()
    with torch.no_grad():
        assert torch.equal(net.encode(batch)["A"], first["A"])  # audio: no dropout at all


def test_the_hidden_size_and_class_count_reach_the_encoders_and_classifier():
    """E = 2 * hidden everywhere: hidden=8 gives 16-wide encodings and a working network; the
    class count reaches the classifier."""
    net = EmotionNet(
        ["T", "A"], SMALL_SHAPES, fusion="cross", hidden=8, num_heads=2, num_classes=4
    ).eval()
    batch = {
        m: torch.randn(3, SMALL_SHAPES[m]["seq_len"], SMALL_SHAPES[m]["feat_dim"]) for m in "TA"
    }
    encoded = net.encode(batch)
    assert encoded["T"].shape == (3, 7, 16) and encoded["A"].shape == (3, 5, 16)
    assert net(batch).shape == (3, 4)


@pytest.mark.parametrize("blocked", [True, False])
def test_attention_dropout_acts_in_training_on_either_cpu_kernel(blocked):
    """Training with attention dropout: the blocked kernel and PyTorch's own (the CUDA and
    ``blocked_attention=false`` path) both drop weights; evaluation drops nothing."""
    torch.manual_seed(0)
    attn = CrossModalAttention(12, 2, dropout=0.5, blocked=blocked)
    target, source = torch.randn(2, 4, 12), torch.randn(2, 6, 12)
    with torch.no_grad():
        attn.train()
        assert not torch.allclose(attn(target, source), attn(target, source))
        attn.eval()
        assert torch.equal(attn(target, source), attn(target, source))
