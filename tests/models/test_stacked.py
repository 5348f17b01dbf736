"""A stacked network of K members computes each member's single network, dropout included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from selfcross.models import EmotionNet
from selfcross.models.stacked import stack_networks
from selfcross.models.streams import SeedStream
from tests.conftest import SMALL_SHAPES

SEEDS = (1, 2, 3)
B = 4
CASES = {
    "self": ("self", {}),
    "cross": ("cross", {}),
    "cross_self-transformer-2-layers": ("cross_self", {"transformer": True, "num_layers": 2}),
    "self-transformer-pre-norm": ("self", {"transformer": True, "norm": "pre"}),
    "cross-masked": ("cross", {"mask_padding": True}),
    "self_nosp": ("self", {"pooling": "concat"}),
}


def member_batches(modalities="TVA"):
    gen = torch.Generator().manual_seed(5)
    batches = []
    for _ in SEEDS:
        shapes = {m: SMALL_SHAPES[m] for m in modalities}
        batch = {m: torch.randn(B, s["seq_len"], s["feat_dim"], generator=gen)
                 for m, s in shapes.items()}  # fmt: skip
        batch["lengths"] = {m: torch.randint(0, s["seq_len"] + 1, (B,), generator=gen)
                            for m, s in shapes.items()}  # fmt: skip
        batch["label"] = torch.randint(0, 7, (B,), generator=gen)
        batches.append(batch)
    joined = {m: torch.cat([b[m] for b in batches]) for m in modalities}
    joined["lengths"] = {m: torch.cat([b["lengths"][m] for b in batches]) for m in modalities}
    return batches, joined


def group_and_singles(fusion, fused, **kw):
    def build():
        return EmotionNet(list("TVA"), SMALL_SHAPES, fusion=fusion, input_dropout={"T": 0.25},
                          fused_gru=fused, blocked_attention=fused, **kw)  # fmt: skip

    streams = [SeedStream(s) for s in SEEDS]
    group = stack_networks([s.build(build) for s in streams], streams)
    replays = [SeedStream(s) for s in SEEDS]
    singles = [(r, r.build(build)) for r in replays]
    return group, singles


@pytest.mark.parametrize("fused", [False, True], ids=["plain-kernels", "fused-kernels"])
@pytest.mark.parametrize("case", CASES)
def test_each_member_computes_its_single_network_and_gradients(case, fused):
    fusion, kw = CASES[case]
    group, singles = group_and_singles(fusion, fused, **kw)
    batches, joined = member_batches()
    for training in (True, False):
        group.train(training)
        logits = group(joined)
        F.cross_entropy(
            logits, torch.cat([b["label"] for b in batches]), reduction="sum"
        ).backward()
        for k, ((stream, net), batch) in enumerate(zip(singles, batches, strict=True)):
            net.train(training)
            net.zero_grad()
            with stream.active():
                single = net(batch)
            F.cross_entropy(single, batch["label"], reduction="sum").backward()
            torch.testing.assert_close(logits[k * B : (k + 1) * B], single, atol=1e-5, rtol=0)
            if training:
                grads = {n: p.grad for n, p in net.named_parameters()}
                stacked = {}
                for name, module in group.named_modules():
                    if hasattr(module, "names"):
                        for stack_name, singles_names in module.names.items():
                            g = getattr(module, stack_name).grad[k]
                            parts = g if len(singles_names) > 1 else g[None]
                            for n, part in zip(singles_names, parts, strict=True):
                                stacked[f"{name}.{n}"] = part
                stacked = {n: g.reshape(grads[n].shape) for n, g in stacked.items()}
                assert stacked.keys() == grads.keys()
                for n in grads:
                    torch.testing.assert_close(stacked[n], grads[n], atol=1e-5, rtol=1e-4)
        group.zero_grad()


def test_dropout_is_drawn_in_training_and_differs_between_members():
    group, _ = group_and_singles("cross", fused=False)
    _, joined = member_batches()
    # every member the same input: in evaluation their outputs differ by weights only
    same = {m: joined[m][:B].repeat(len(SEEDS), 1, 1) for m in "TVA"}
    group.eval()
    evaluated = group(same)
    group.train()
    assert not torch.allclose(group(same), evaluated)


def test_a_members_state_loads_into_its_single_network():
    group, singles = group_and_singles("self", fused=True, transformer=True)
    batches, _ = member_batches()
    net = singles[1][1]
    fresh = EmotionNet(list("TVA"), SMALL_SHAPES, fusion="self", input_dropout={"T": 0.25},
                       transformer=True)  # fmt: skip
    fresh.load_state_dict(group.member_state(1))
    fresh.eval(), net.eval()
    torch.testing.assert_close(fresh(batches[0]), net(batches[0]), atol=0, rtol=0)
