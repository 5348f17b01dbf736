"""A seed group trains each member as its single run: the same history (fused kernels off) to
1e-5, the same learning-rate drops, early stop, best epoch and test scores."""

from __future__ import annotations

import pytest
import torch

from selfcross.errors import ConfigError
from selfcross.training.experiment import train_and_test
from selfcross.training.group import StackedAdam, group_optimizer, train_group

PLAIN = ("model.network.fused_gru=false", "model.network.blocked_attention=false")
SEEDS = (1, 2)


def singles_and_group(make_cfg, data_dir, tmp_path, *overrides, kernels=PLAIN):
    def cfg_for(seed, where):
        return make_cfg(f"paths.data_dir={data_dir}", "debug=fast", *kernels, *overrides,
                        f"seed={seed}", f"paths.output_dir={tmp_path / where}")  # fmt: skip

    singles = [train_and_test(cfg_for(s, f"single{s}")).record for s in SEEDS]
    members = train_group(cfg_for(SEEDS[0], "group"), SEEDS)
    return singles, members


def assert_same_history(single, member, tol=1e-5):
    assert [h["epoch"] for h in member.history] == [h["epoch"] for h in single.history]
    for a, b in zip(single.history, member.history, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], abs=tol, rel=0), (a["epoch"], key)


@pytest.mark.parametrize("model", ["self", "cross_transformer"])
def test_each_members_two_epochs_are_its_single_runs(make_cfg, data_dir, tmp_path, model):
    singles, members = singles_and_group(
        make_cfg, data_dir, tmp_path, f"model={model}", "trainer.max_epochs=2"
    )
    for single, member in zip(singles, members, strict=True):
        assert member.seed == single.seed
        assert_same_history(single, member)
        assert member.best_epoch == single.best_epoch
        assert member.test_report["uwa"] == pytest.approx(single.test_uwa, abs=1e-5)
        assert member.test_report["confusion"] == single.confusion
    # the members are different runs: their own initialisation, shuffling and dropout
    assert members[0].history[0]["train/loss"] != members[1].history[0]["train/loss"]


def test_with_the_blocked_attention_kernel_a_members_epochs_are_its_single_runs(
    make_cfg, data_dir, tmp_path
):
    """The group's one blocked dropout-attention call over all members draws each member's
    masks as its single run's kernel does."""
    singles, members = singles_and_group(
        make_cfg, data_dir, tmp_path, "model=self", "trainer.max_epochs=2",
        kernels=("model.network.fused_gru=false",),
    )  # fmt: skip
    for single, member in zip(singles, members, strict=True):
        assert_same_history(single, member)
        assert member.test_report["confusion"] == single.confusion


def test_lr_drops_early_stop_and_best_epoch_happen_where_the_single_runs_do(
    make_cfg, data_dir, tmp_path
):
    """No epoch after the first improves by the plateau's threshold or the stopping's
    min_delta: the learning rate drops after epoch 2 and training stops after epoch 3."""
    singles, members = singles_and_group(
        make_cfg, data_dir, tmp_path, "model=cross", "trainer.max_epochs=6",
        "model.scheduler.patience=0", "+model.scheduler.threshold=0.5",
        "callbacks.early_stopping.patience=2", "+callbacks.early_stopping.min_delta=0.5",
    )  # fmt: skip
    for single, member in zip(singles, members, strict=True):
        assert [h["lr"] for h in single.history] == pytest.approx([1e-3, 1e-3, 1e-4])
        assert [h["lr"] for h in member.history] == [h["lr"] for h in single.history]
        assert member.stopped and member.best_epoch == single.best_epoch
        assert_same_history(single, member)


def test_stacked_adam_is_adam_per_member_and_leaves_a_frozen_member_alone():
    torch.manual_seed(0)
    weights = [torch.randn(3, 4) for _ in range(3)]
    stacked = torch.nn.Parameter(torch.stack(weights))
    singles = [torch.nn.Parameter(w.clone()) for w in weights]
    lrs = [1e-3, 1e-2, 5e-2]
    adams = [
        torch.optim.Adam([p], lr=lr, weight_decay=0.01) for p, lr in zip(singles, lrs, strict=True)
    ]
    optimizer = StackedAdam([stacked], 3, weight_decay=0.01)
    for step in range(4):
        grads = [torch.randn(3, 4) for _ in range(3)]
        active = [True, True, step < 2]  # the last member stops after two steps
        stacked.grad = torch.stack(grads)
        optimizer.step(lrs, active)
        for p, adam, g, on in zip(singles, adams, grads, active, strict=True):
            if on:
                p.grad = g
                adam.step()
    for k in range(3):
        torch.testing.assert_close(stacked[k].detach(), singles[k].detach(), rtol=1e-6, atol=1e-7)


def test_a_group_trains_adam_only(make_cfg):
    cfg = make_cfg("model.optimizer._target_=torch.optim.SGD")
    with pytest.raises(ConfigError, match="model.optimizer._target_=torch.optim.SGD"):
        group_optimizer(cfg, [torch.nn.Parameter(torch.zeros(2, 1))], 2)
