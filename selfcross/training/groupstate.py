"""A seed group member's state on disk: written after every epoch, read back when a killed group
is rerun, so that each unfinished member continues from its last epoch exactly.

``checkpoints/group-last.ckpt`` in the member's own folder holds everything the member needs to
go on: its network's weights (``state_dict``, named as a single run's module names them), its
Adam moments and step count, its learning rate and scheduler state, early stopping's and the best
checkpoint's counters, the best epoch's weights, its history and its random stream. Values only
(tensors, numbers, lists, strings): it loads with ``weights_only=True``; every tensor is on the
CPU (a group trained on a GPU saves what a CPU can load, ``map_location="cpu"``). It is written
through :class:`~selfcross.training.lightning_io.AtomicCheckpointIO`, as a single run's
checkpoints are: the previous file stays until the new one is whole. (``member`` below: a
:class:`selfcross.training.group.Member`, which calls this module.)

When a member finishes, its best weights become ``checkpoints/best.ckpt`` (the ``state_dict``
that :mod:`selfcross.analysis.reload` loads into the run's model) and ``resume.keep_checkpoints``
prunes the rest as after a single run. The group's file has a name of its own: a single run's
``last.ckpt`` holds Lightning's loop and callback states, which a group does not keep, so a
single run started in a killed member's folder starts over rather than misreading it (and a
group in a killed single run's folder likewise).
"""

from __future__ import annotations

from pathlib import Path

import torch

from selfcross.training.lightning_io import AtomicCheckpointIO
from selfcross.training.record import same_data
from selfcross.training.resume import BEST_CHECKPOINT, CHECKPOINT_DIR, set_aside_unreadable
from selfcross.training.rundir import stored_marks

GROUP_LAST = "group-last.ckpt"
PREFIX = "network."
"""A single run's module holds its network under this name (``state_dict`` keys)."""


def last_path(out_dir: Path) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR / GROUP_LAST


def member_checkpoint(member, k: int, net, optimizer, epoch: int) -> dict:
    """Member ``k``'s state after ``epoch`` (1-based) as a checkpoint's values."""
    state = {PREFIX + name: value.cpu() for name, value in net.member_state(k).items()}
    return {
        "state_dict": state,
        "epoch": epoch,
        "seed_group": {
            "seed": member.seed,
            "exp_avg": [m[k].cpu().clone() for m in optimizer.exp_avg],
            "exp_avg_sq": [v[k].cpu().clone() for v in optimizer.exp_avg_sq],
            "steps": float(optimizer.steps[k]),
            "lr": member.lr,
            "scheduler": None if member.scheduler is None else member.scheduler.state_dict(),
            "history": member.history,
            "train_values": member.train_values,
            "best_score": member.best_score,
            "stop_score": member.stop_score,
            "best_epoch": member.best_epoch,
            "best_state": member.best_state,
            "wait": member.wait,
            "stopped": member.stopped,
            "generator": member.stream.generator.get_state(),
            "device_generator": member.stream.device_state(),
        },
    }


def save_member(out_dir: Path, member, k: int, net, optimizer, epoch: int) -> Path:
    """Write member ``k``'s ``group-last.ckpt`` (atomically)."""
    path = last_path(out_dir)
    AtomicCheckpointIO().save_checkpoint(member_checkpoint(member, k, net, optimizer, epoch), path)
    return path


def load_member(out_dir: Path, digest: str, fingerprint: str) -> dict | None:
    """The state of the member whose folder is ``out_dir``, if it was written under this
    configuration hash and on these data; None to start it over."""
    path = last_path(out_dir)
    stored, trained_on = stored_marks(out_dir)
    if not path.is_file() or stored != digest:
        return None
    if trained_on is not None and not same_data(trained_on, fingerprint):
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        saved["seed_group"]["exp_avg"]  # noqa: B018 (the group's own kind of checkpoint)
    except Exception as err:  # unreadable: the member starts over, the file is kept aside
        set_aside_unreadable(path, err, "the member starts over")
        return None
    return saved


def restore_network(member, saved: dict) -> None:
    """Before stacking: the member's network holds its saved weights and its stream the saved
    state (its initialisation has been drawn already)."""
    weights = {k[len(PREFIX) :]: v for k, v in saved["state_dict"].items()}
    member.module.network.load_state_dict(weights)
    member.stream.generator.set_state(saved["seed_group"]["generator"])
    group = saved["seed_group"]
    member.stream.set_device_state(group.get("device_generator"))
    member.history = list(group["history"])
    member.train_values = list(group["train_values"])
    member.best_score, member.stop_score = group["best_score"], group["stop_score"]
    member.best_epoch, member.best_state = group["best_epoch"], group["best_state"]
    member.wait, member.stopped = group["wait"], group["stopped"]
    member.done_epochs = int(saved["epoch"])
    member.schedule.param_groups[0]["lr"] = group["lr"]
    if member.scheduler is not None and group["scheduler"] is not None:
        member.scheduler.load_state_dict(group["scheduler"])


def restore_optimizer(optimizer, k: int, saved: dict) -> None:
    """Member ``k``'s Adam moments and step count."""
    group = saved["seed_group"]
    with torch.no_grad():
        moments = zip(optimizer.exp_avg, optimizer.exp_avg_sq, group["exp_avg"],
                      group["exp_avg_sq"], strict=True)  # fmt: skip
        for m, v, saved_m, saved_v in moments:
            m[k].copy_(saved_m)
            v[k].copy_(saved_v)
    optimizer.steps[k] = group["steps"]


def write_best(out_dir: Path, member) -> Path:
    """The member's best epoch's weights as ``checkpoints/best.ckpt``, the file a finished
    run's analyses load."""
    path = Path(out_dir) / CHECKPOINT_DIR / BEST_CHECKPOINT
    state = {PREFIX + name: value.cpu() for name, value in member.best_state.items()}
    AtomicCheckpointIO().save_checkpoint({"state_dict": state, "epoch": member.best_epoch}, path)
    return path
