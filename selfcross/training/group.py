"""A seed group: K seeds of one (model, modality, fold) trained as one stacked network.

Each member is the run of its seed (:mod:`selfcross.models.streams`): its initialisation, its
shuffling of the train split and its dropout masks come from its seed's stream, in the order a
single run draws them. The K networks are stacked into one (:func:`stack_networks`) and one
forward/backward pass per step trains them all; everything else is per member, as a single run
has it:

- **optimiser**: Adam with each member's own moments, step count and learning rate
  (:class:`StackedAdam`; the configured ``torch.optim.Adam`` settings);
- **learning-rate schedule**: the configured scheduler (``ReduceLROnPlateau`` on ``val/loss``), one
  per member, stepped after each validation as Lightning steps it;
- **early stopping**: Lightning's rule (``monitor.metric``, ``callbacks.early_stopping.patience``
  and ``min_delta``); a member that stops is frozen (no update, no more validation) while the
  others go on;
- **best checkpoint**: the first epoch of the best ``monitor.metric`` (Lightning's
  ``ModelCheckpoint`` with ``save_top_k: 1``), whose weights are tested;
- **history**: the single run's entries (epoch, lr, train and validation loss and metrics).

A member's history equals its single run's to float rounding when the single run uses the same
kernels (``tests/training/test_group.py``).

**Device and precision**: the group trains where its single run would
(:func:`selfcross.training.gpus.run_device`: ``trainer.accelerator``/``devices`` and the job's
GPU slot), in its precision (``32-true``, or ``bf16-mixed``: the forward passes under autocast,
as Lightning runs them); parameters, Adam's moments, batches and dropout masks live on that
device (on CUDA each member's masks come from a CUDA generator of its own,
:mod:`selfcross.models.streams`), and what is saved is moved to the CPU first.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig

from selfcross.errors import ConfigError
from selfcross.models import EmotionRecognizer
from selfcross.models.metrics import per_class_recall
from selfcross.models.stacked import StackedNet, stack_networks
from selfcross.models.streams import SeedStream


class StackedAdam:
    """``torch.optim.Adam`` (L2 weight decay, no amsgrad) over stacked parameters [K, ...], with
    per-member learning rates, step counts and moments; inactive members are not updated."""

    def __init__(self, params, members: int, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params = [p for p in params if p.requires_grad]
        self.beta1, self.beta2 = betas
        self.eps, self.weight_decay = eps, weight_decay
        self.steps = torch.zeros(members, dtype=torch.float64)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lrs: Sequence[float], active: Sequence[bool]) -> None:
        self.steps += torch.tensor(list(active)).double()
        steps = self.steps.clamp(min=1)
        correction1 = 1 - self.beta1**steps
        step_size = (torch.tensor(list(lrs), dtype=torch.float64) / correction1).float()
        device = self.params[0].device  # the counters stay on the CPU, in float64
        active_t = torch.tensor(list(active), device=device)
        step_size = torch.where(active_t, step_size.to(device), 0.0)
        correction2_sqrt = (1 - self.beta2**steps).sqrt().float().to(device)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            keep = active_t.view(shape)
            grad = p.grad if self.weight_decay == 0 else p.grad.add(p, alpha=self.weight_decay)
            m.copy_(torch.where(keep, m.lerp(grad, 1 - self.beta1), m))
            new_v = v.mul(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            v.copy_(torch.where(keep, new_v, v))
            denom = (v.sqrt() / correction2_sqrt.view(shape)).add_(self.eps)
            p.sub_(step_size.view(shape) * m / denom)


def group_optimizer(cfg: DictConfig, params, members: int) -> StackedAdam:
    """The configured optimiser for a group: ``torch.optim.Adam`` only."""
    options = {k: v for k, v in cfg.model.optimizer.items() if not k.startswith("_")}
    if get_class(cfg.model.optimizer._target_) is not torch.optim.Adam:
        raise ConfigError(
            f"model.optimizer._target_={cfg.model.optimizer._target_}: seed_group trains "
            "torch.optim.Adam only"
        )
    unknown = set(options) - {"lr", "betas", "eps", "weight_decay", "amsgrad"}
    if unknown or options.get("amsgrad"):
        raise ConfigError(f"model.optimizer: seed_group does not support {sorted(unknown)}")
    return StackedAdam(params, members, tuple(options.get("betas", (0.9, 0.999))),
                       options.get("eps", 1e-8), options.get("weight_decay", 0.0))  # fmt: skip


@dataclass
class Member:
    """One seed of the group: its module (metrics, factories), stream, schedule and stopping."""

    seed: int
    module: EmotionRecognizer
    stream: SeedStream
    schedule: torch.optim.Optimizer
    """A parameterless stand-in whose learning rate the member's scheduler adjusts."""
    scheduler: object | None
    history: list[dict] = field(default_factory=list)
    train_values: list[dict] = field(default_factory=list)
    """Per epoch, the training metrics a single run logs (``train/wa``, ...)."""
    best_score: float = -math.inf
    """The best checkpoint's score (``monitor.metric``, negated when minimised)."""
    stop_score: float = -math.inf
    """Early stopping's best score (improvements by more than ``min_delta`` only)."""
    best_epoch: int = 0
    best_state: dict | None = None
    wait: int = 0
    stopped: bool = False
    test_report: dict = field(default_factory=dict)
    done_epochs: int = 0
    """Epochs trained before this process (a resumed member)."""
    idle: bool = False
    """Frozen this epoch: stopped early, or still catching up with its saved epoch."""

    @property
    def lr(self) -> float:
        return self.schedule.param_groups[0]["lr"]


def build_members(cfg: DictConfig, seeds: Sequence[int], saved=None):
    """Each seed's module built from its stream (its initialisation; a resumed member's saved
    weights and stream), and the stacked network."""
    from selfcross.training import groupstate

    members = []
    for seed in seeds:
        stream = SeedStream(seed)
        module = stream.build(lambda: instantiate(cfg.model))
        lr = float(cfg.model.optimizer.get("lr", 1e-3))
        schedule = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
        factory = module.scheduler_factory
        scheduler = factory(optimizer=schedule) if factory is not None else None
        members.append(Member(seed, module, stream, schedule, scheduler))
        if saved and seed in saved:
            groupstate.restore_network(members[-1], saved[seed])
    net = stack_networks([m.module.network for m in members], [m.stream for m in members])
    return members, net


def precision_context(cfg: DictConfig, device: torch.device):
    """The forward passes' context for ``trainer.precision``: none for ``32-true``, autocast
    to bfloat16 on ``device`` for ``bf16-mixed`` (Lightning's); other precisions refused."""
    precision = str(cfg.trainer.get("precision", "32-true"))
    if precision in ("32", "32-true"):
        return contextlib.nullcontext()
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ConfigError(
        f"trainer.precision={precision}: a seed group trains in 32-true or bf16-mixed"
    )


def net_device(net: torch.nn.Module) -> torch.device:
    return next(net.parameters()).device


def _batch(split, rows: Sequence[torch.Tensor], device: torch.device) -> dict:
    """The members' batches joined along the batch axis, on ``device``."""
    parts = [split.__getitems__(r.tolist()) for r in rows]
    batch = {k: torch.cat([p[k] for p in parts]).to(device) for k in parts[0] if k != "lengths"}
    if "lengths" in parts[0]:
        batch["lengths"] = {
            m: torch.cat([p["lengths"][m] for p in parts]).to(device) for m in parts[0]["lengths"]
        }
    return batch


def _update(member: Member, stage: str, logits, target, loss) -> None:
    module = member.module
    module.metrics[f"{stage}_"].update(logits.argmax(dim=-1), target)
    module.losses[f"{stage}_"].update(loss.detach(), weight=len(target))
    if stage == "test":
        module.test_confusion.update(logits.argmax(dim=-1), target)


def train_epoch(members: list[Member], net: StackedNet, optimizer: StackedAdam, datamodule,
                precision=contextlib.nullcontext) -> None:  # fmt: skip
    """One epoch of every member (stopped ones frozen): each its own order and dropout;
    ``precision()``: the forward pass's context (:func:`precision_context`)."""
    train = datamodule.datasets["train"]
    size = datamodule.batch_size
    orders = [
        torch.arange(len(train)).split(size)
        if m.idle
        else m.stream.epoch_batches(len(train), size)
        for m in members
    ]
    net.train()
    for step_rows in zip(*orders, strict=True):
        batch = _batch(train, step_rows, net_device(net))
        with precision():
            logits = net(batch).float()
        k = len(members)
        logits_k, target_k = logits.view(k, -1, logits.shape[-1]), batch["label"].view(k, -1)
        losses = [F.cross_entropy(lg, t) for lg, t in zip(logits_k, target_k, strict=True)]
        optimizer.zero_grad()
        torch.stack(losses).sum().backward()
        optimizer.step([m.lr for m in members], [not m.idle for m in members])
        for m, lg, t, loss in zip(members, logits_k, target_k, losses, strict=True):
            if not m.idle:
                _update(m, "train", lg, t, loss)


@torch.inference_mode()
def evaluate(members: list[Member], net: StackedNet, split, batch_size: int, stage: str,
             precision=contextlib.nullcontext) -> None:  # fmt: skip
    """Every active member's metrics on ``split`` (the same rows for all)."""
    net.eval()
    k = len(members)
    for start in range(0, len(split), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(split)))
        batch = _batch(split, [rows] * k, net_device(net))
        with precision():
            logits = net(batch).float().view(k, len(rows), -1)
        targets = batch["label"].view(k, -1)
        for m, lg, t in zip(members, logits, targets, strict=True):
            if not m.idle or stage == "test":
                _update(m, stage, lg, t, F.cross_entropy(lg, t))


def end_of_epoch(member: Member, epoch: int, net: StackedNet, k: int, cfg: DictConfig) -> None:
    """The member's history entry, checkpoint, early stopping and scheduler step."""
    module = member.module
    values = module._epoch_values("val")
    entry = {"epoch": epoch, "lr": member.lr}
    if module.losses["train_"].update_called:
        entry["train/loss"] = float(module.losses["train_"].compute())
    member.train_values.append({k: float(v) for k, v in module._epoch_values("train").items()})
    entry.update({key: float(v) for key, v in values.items()})
    member.history.append(entry)
    metric, mode = cfg.monitor.metric, cfg.monitor.mode
    sign = 1.0 if mode == "max" else -1.0
    score = sign * float(values[metric])
    if score > member.best_score or member.best_epoch == 0:  # ModelCheckpoint: strictly better
        member.best_state = {n: v.cpu() for n, v in net.member_state(k).items()}
        member.best_epoch, member.best_score = epoch, score
    stopping = (cfg.get("callbacks") or {}).get("early_stopping")
    if stopping:
        if score - abs(float(stopping.get("min_delta", 0.0))) > member.stop_score:
            member.wait, member.stop_score = 0, score
        else:
            member.wait += 1
            member.stopped = member.wait >= int(stopping.patience)
    if member.scheduler is not None:
        member.scheduler.step(values[module.scheduler_monitor])


def train_group(cfg: DictConfig, seeds: Sequence[int], datamodule=None, saved=None,
                on_epoch=None, device: torch.device | None = None) -> list[Member]:  # fmt: skip
    """Train the seeds of ``cfg`` (one model, modality and fold) as one group and test each
    member's best epoch; returns the members with their histories and test reports.
    ``datamodule``: the fold's, set up (default: built from ``cfg.data``). ``saved``: per
    seed, the state a killed group saved (:mod:`selfcross.training.groupstate`), from which that
    member continues. ``on_epoch(members, net, optimizer, epoch)``: after each epoch (the
    members' checkpoints). ``device``: where the group trains (default: its single run's,
    :func:`selfcross.training.gpus.run_device`)."""
    from selfcross.training import groupstate
    from selfcross.training.gpus import run_device

    if datamodule is None:
        datamodule = instantiate(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("fit")
    saved = saved or {}
    device = torch.device(device) if device is not None else run_device(cfg.trainer)
    precision = lambda: precision_context(cfg, device)  # noqa: E731
    precision()  # an unsupported precision is refused before any work
    datamodule.place_on(device)
    members, net = build_members(cfg, seeds, saved)
    net.to(device)
    for m in members:
        m.module.to(device)  # its metrics; its network holds the best weights for the test
    optimizer = group_optimizer(cfg, net.parameters(), len(members))
    for k, m in enumerate(members):
        if m.seed in saved:
            groupstate.restore_optimizer(optimizer, k, saved[m.seed])
    dev = datamodule.datasets["dev"]
    for epoch in range(1, int(cfg.trainer.max_epochs) + 1):
        for m in members:
            m.idle = m.stopped or epoch <= m.done_epochs
        if all(m.stopped for m in members):
            break
        if all(m.idle for m in members):  # resumed members catching up with their epoch
            continue
        train_epoch(members, net, optimizer, datamodule, precision)
        for m in members:
            if not m.idle:
                m.stream.validation_pass()
        evaluate(members, net, dev, datamodule.eval_batch_size, "val", precision)
        for k, m in enumerate(members):
            if not m.idle:
                end_of_epoch(m, epoch, net, k, cfg)
        if on_epoch is not None:
            on_epoch(members, net, optimizer, epoch)
    if cfg.get("run_test", True):
        test_members(members, datamodule, precision)
    return members


def test_members(members: list[Member], datamodule, precision=contextlib.nullcontext) -> None:
    """Each member's best weights on the test split, reported as a single run's test."""
    for m in members:
        m.module.network.load_state_dict(m.best_state)
    best = stack_networks([m.module.network for m in members], [m.stream for m in members])
    test, size = datamodule.datasets["test"], datamodule.eval_batch_size
    evaluate(members, best, test, size, "test", precision)
    for m in members:
        module = m.module
        values = module._epoch_values("test")
        confusion = module.test_confusion.compute()
        module.test_confusion.reset()
        recall = [None if r != r else r for r in per_class_recall(confusion).tolist()]
        m.test_report = {
            **{k.split("/", 1)[1]: float(v) for k, v in values.items()},
            "recall": recall,
            "confusion": confusion.long().tolist(),
        }
