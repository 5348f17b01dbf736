"""Blanking a modality and modality dropout: zeros or the train means in place of a modality,
the dropout masks (never every modality, reproducible, off at zero), the module dropping
modalities in training only, and the default leaving the config hashes as they were.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from selfcross.models.blanking import blank, dropout_masks, train_means

# -- blanking ----------------------------------------------------------------------------------


def hand_batch(b: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "T": torch.randn(b, 4, 5, generator=g) + 1.0,
        "V": torch.randn(b, 2, 3, generator=g) + 1.0,
        "A": torch.randn(b, 6, 2, generator=g) + 1.0,
        "label": torch.tensor([0, 1, 2][:b]),
        "lengths_A": torch.tensor([6, 3, 1][:b]),
    }


def test_blank_zeros_every_sample_and_nothing_else():
    batch = hand_batch()
    out = blank(batch, {"V": True}, "zeros")
    assert torch.equal(out["V"], torch.zeros(3, 2, 3))
    for key in ("T", "A", "label", "lengths_A"):
        assert out[key] is batch[key]
    assert (batch["V"] != 0).all()  # the input batch is not modified


def test_blank_rows_with_train_mean():
    batch = hand_batch()
    means = {"A": torch.tensor([10.0, -20.0])}
    out = blank(batch, {"A": torch.tensor([False, True, False])}, "train_mean", means)
    expected = batch["A"].clone()
    expected[1, :, 0] = 10.0
    expected[1, :, 1] = -20.0
    assert torch.equal(out["A"], expected)
    assert torch.equal(out["T"], batch["T"]) and torch.equal(out["V"], batch["V"])


def test_blank_refuses_an_unknown_fill_and_a_missing_mean():
    with pytest.raises(Exception, match="fill='ones'"):
        blank(hand_batch(), {"T": True}, "ones")
    with pytest.raises(ValueError, match="train mean of T"):
        blank(hand_batch(), {"T": True}, "train_mean", {})


def test_train_means_are_the_mean_over_every_train_frame():
    rng = np.random.default_rng(1)
    audio = rng.normal(size=(5, 7, 3)).astype(np.float32)  # N, L, D all different
    audio[:, 5:] = 0.0  # padding counts as frames
    ids = rng.integers(0, 4, size=(5, 6))
    embedding = rng.normal(size=(4, 2)).astype(np.float32)
    train = SimpleNamespace(features={"A": audio, "T": ids})
    dm = SimpleNamespace(fold_data=SimpleNamespace(splits={"train": train}, embedding=embedding))
    means = train_means(dm, ["T", "A"])
    hand_a = [
        sum(float(audio[n, t, d]) for n in range(5) for t in range(7)) / 35 for d in range(3)
    ]
    hand_t = [
        sum(float(embedding[ids[n, t], d]) for n in range(5) for t in range(6)) / 30
        for d in range(2)
    ]
    assert means["A"].shape == (3,) and means["T"].shape == (2,)
    np.testing.assert_allclose(means["A"].numpy(), hand_a, rtol=1e-6)
    np.testing.assert_allclose(means["T"].numpy(), hand_t, rtol=1e-6)


# -- modality dropout ----------------------------------------------------------------------------


def test_dropout_never_blanks_every_modality_and_keeps_its_rate():
    torch.manual_seed(0)
    n, p = 20000, 0.9
    masks = dropout_masks(n, "TVA", p)
    dropped = torch.stack([masks[m] for m in "TVA"], dim=1)
    assert not dropped.all(dim=1).any()
    # Per modality: drawn blank (p), minus the all-blank draws where it is the one kept.
    expected = p - p**3 / 3
    for m in "TVA":
        assert abs(masks[m].float().mean().item() - expected) < 0.015
    assert (dropped.sum(dim=1) == 2).float().mean().item() > 0.5  # mostly one kept
    two = dropout_masks(n, "TA", p)
    assert not (two["T"] & two["A"]).any()


def test_dropout_is_reproducible_and_off_at_zero():
    torch.manual_seed(5)
    a = dropout_masks(64, "TV", 0.3)
    torch.manual_seed(5)
    b = dropout_masks(64, "TV", 0.3)
    assert all(torch.equal(a[m], b[m]) for m in "TV")
    state = torch.get_rng_state()
    zero = dropout_masks(64, "TVA", 0.0)
    assert not any(zero[m].any() for m in "TVA")
    assert torch.equal(state, torch.get_rng_state())  # p=0 draws nothing: the paper's runs
    assert not dropout_masks(64, "A", 0.9)["A"].any()  # one modality: nothing to drop


class Recording(torch.nn.Module):
    """Wraps a network and keeps the inputs it was called with."""

    def __init__(self, network):
        super().__init__()
        self.inner = network
        self.seen: list[dict[str, torch.Tensor]] = []
        self.classifier = network.classifier

    def forward(self, batch):
        self.seen.append({k: v.clone() for k, v in batch.items()})
        return self.inner(batch)


def test_module_drops_modalities_in_training_only(make_cfg):
    from hydra.utils import instantiate

    cfg = make_cfg("data.preset=tiny", "model=cross", "model.modality_dropout=0.9")
    module = instantiate(cfg.model)
    module.network = Recording(module.network)
    module.log = lambda *args, **kwargs: None  # no trainer here
    batch = {
        "T": torch.randn(64, 8, 16) + 2.0,
        "V": torch.randn(64, 5, 24) + 2.0,
        "A": torch.randn(64, 12, 20) + 2.0,
        "label": torch.randint(0, 7, (64,)),
    }
    torch.manual_seed(0)
    module.train()
    module.training_step(batch, 0)
    seen = module.network.seen[-1]
    blanked = torch.stack([(seen[m] == 0).flatten(1).all(dim=1) for m in "TVA"], dim=1)
    kept = torch.tensor([[torch.equal(seen[m][i], batch[m][i]) for m in "TVA"] for i in range(64)])
    assert torch.equal(blanked, ~kept)  # each modality either untouched or all zeros
    assert blanked.any() and not blanked.all(dim=1).any()
    module.eval()
    with torch.no_grad():
        first = module.validation_step(batch, 0) or module(batch)
        second = module(batch)
        module.test_step(batch, 0)
    for inputs in module.network.seen[1:]:
        assert all(torch.equal(inputs[m], batch[m]) for m in "TVA")
    assert torch.equal(first, second)


def test_module_dropout_fills_with_train_means(make_cfg):
    from hydra.utils import instantiate

    cfg = make_cfg(
        "data.preset=tiny",
        "modality=TV",
        "model.modality_dropout=0.5",
        "model.modality_dropout_fill=train_mean",
    )
    module = instantiate(cfg.model)
    module.network = Recording(module.network)
    module.log = lambda *args, **kwargs: None
    module.fill_means = {"T": torch.arange(16.0) + 100.0, "V": -torch.arange(24.0) - 100.0}
    batch = {"T": torch.randn(40, 8, 16), "V": torch.randn(40, 5, 24)}
    batch["label"] = torch.randint(0, 7, (40,))
    torch.manual_seed(1)
    module.training_step(batch, 0)
    seen = module.network.seen[-1]
    for m in "TV":
        filled = (seen[m] == module.fill_means[m]).all(dim=(1, 2))
        untouched = (seen[m] == batch[m]).all(dim=(1, 2))
        assert filled.any() and torch.equal(filled, ~untouched)
    assert not ((seen["T"][:, 0, 0] >= 100) & (seen["V"][:, 0, 0] <= -100)).any()


def test_module_takes_the_train_means_once_from_its_trainers_datamodule(make_cfg, monkeypatch):
    """fill=train_mean: the first training step computes the means of the modalities present
    from the trainer's datamodule; later steps reuse them."""
    from types import SimpleNamespace

    from hydra.utils import instantiate

    means = {"T": torch.arange(16.0) + 100.0, "V": -torch.arange(24.0) - 100.0}
    calls = []
    monkeypatch.setattr(
        "selfcross.models.module.train_means",
        lambda datamodule, modalities: calls.append((datamodule, list(modalities))) or means,
    )
    cfg = make_cfg("data.preset=tiny", "modality=TV", "model.modality_dropout=0.5",
                   "model.modality_dropout_fill=train_mean")  # fmt: skip
    module = instantiate(cfg.model)
    module.network = Recording(module.network)
    module.log = lambda *args, **kwargs: None
    module.trainer = SimpleNamespace(datamodule="the datamodule")
    batch = {"T": torch.randn(40, 8, 16), "V": torch.randn(40, 5, 24)}
    batch["label"] = torch.randint(0, 7, (40,))
    torch.manual_seed(1)
    module.training_step(batch, 0)
    module.training_step(batch, 1)
    assert calls == [("the datamodule", ["T", "V"])]
    for seen in module.network.seen:
        filled = (seen["V"] == means["V"]).all(dim=(1, 2))
        assert filled.any() and torch.equal(filled, ~(seen["V"] == batch["V"]).all(dim=(1, 2)))


def test_modality_dropout_default_keeps_config_hashes(make_cfg):
    from omegaconf import open_dict

    from selfcross.training.resume import config_hash

    default = make_cfg()
    before = make_cfg()  # a configuration written before these keys existed
    with open_dict(before):
        del before.model["modality_dropout"]
        del before.model["modality_dropout_fill"]
    assert config_hash(before) == config_hash(default)
    default = config_hash(default)
    assert config_hash(make_cfg("model.modality_dropout=0.1")) != default
