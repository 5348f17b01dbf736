"""Attention maps of a finished run, and how much attention goes to padding.

:func:`measure_attention` rebuilds the run from its ``result.json`` (the resolved configuration)
and its best checkpoint (weights only, :mod:`selfcross.analysis.reload`) and runs its test split
once through the real attention modules, each recording its per-head weights
(``CrossModalAttention.record_weights``, the ``nn.MultiheadAttention`` computation).

Statistics, per attention module and head, over every test utterance: a row of weights is one
query step's distribution over the key steps. Rows counted are the valid query steps of
utterances with at least one valid key (padding after a time-wise convolution is defined by
:meth:`~selfcross.models.encoders.ModalityEncoder.out_lengths`). For each row,
``entropy`` = -sum p log p (nats) and ``padding_share`` = the mass on padded keys; the record
(:class:`~selfcross.analysis.records.AttentionRecord`, ``attention.json``) holds their means
over rows, and ``uniform_entropy``, the mean of log(number of keys the row could attend to): all
keys unmasked, the valid ones with ``mask_padding``. For N test utterances (chosen by
:func:`pick_utterances`) the mean-over-heads maps are kept for the heatmaps that
:mod:`selfcross.report.attention` draws.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from selfcross.analysis.records import AttentionRecord, ModuleAttention, UtteranceFigure
from selfcross.analysis.reload import ReloadedRun, reload_run
from selfcross.errors import ConfigError

log = logging.getLogger(__name__)

VALID_RULE = "after a time-wise conv: ceil(n * out_len / seq_len) leading steps"


# -- capturing weights ------------------------------------------------------------------------


@dataclass
class Site:
    """One attention module of a network: its name, query and key modalities."""

    name: str
    query: str
    key: str
    module: torch.nn.Module


def attention_sites(network) -> list[Site]:
    """Every attention module (``CrossModalAttention``) of an ``EmotionNet``, in network order.

    Bare attention: ``self_attention.T``, ``cross_attention.V2T`` (source 2 target); in
    transformer stacks one per layer, ``self_attention.T.layers.0``.
    """
    from selfcross.models.attention import CrossModalAttention

    sites = []
    for name, module in network.named_modules():
        if not isinstance(module, CrossModalAttention):
            continue
        group, pair, *rest = name.split(".")
        if group == "self_attention":
            query = key = pair
        else:
            key, query = pair.split("2")
        label = ".".join([group, pair, *rest[:2]]) if rest else name
        sites.append(Site(label, query, key, module))
    return sites


def row_entropy(weights: torch.Tensor) -> torch.Tensor:
    """-sum p log p over the last axis, in nats (0 log 0 = 0)."""
    return -torch.special.xlogy(weights, weights).sum(dim=-1)


@dataclass
class HeadStats:
    """Running sums over rows, per head."""

    heads: int
    rows: float = 0.0
    entropy: np.ndarray = field(default=None)
    padding: np.ndarray = field(default=None)
    uniform: float = 0.0

    def __post_init__(self):
        self.entropy = np.zeros(self.heads)
        self.padding = np.zeros(self.heads)

    def add(self, weights: torch.Tensor, query_valid, key_valid, masked: bool) -> None:
        """weights [B, H, Lq, Lk]; query_valid [B, Lq], key_valid [B, Lk] (bool)."""
        rows = query_valid & key_valid.any(dim=-1, keepdim=True)  # [B, Lq]
        w = weights.double()
        entropy = row_entropy(w)  # [B, H, Lq]
        padding = (w * (~key_valid)[:, None, None, :]).sum(dim=-1)  # [B, H, Lq]
        keep = rows[:, None, :].double()
        self.entropy += (entropy * keep).sum(dim=(0, 2)).numpy()
        self.padding += (padding * keep).sum(dim=(0, 2)).numpy()
        attendable = (
            key_valid.sum(-1) if masked else torch.full_like(key_valid.sum(-1), w.shape[-1])
        )
        per_row = torch.log(attendable.clamp(min=1).double())[:, None] * rows.double()
        self.uniform += float(per_row.sum())
        self.rows += float(rows.sum())

    def summary(self) -> dict:
        n = max(self.rows, 1.0)
        return {
            "rows": int(self.rows),
            "entropy": [float(v) for v in self.entropy / n],
            "padding_share": [float(v) for v in self.padding / n],
            "entropy_mean": float(self.entropy.sum() / n / self.heads),
            "padding_share_mean": float(self.padding.sum() / n / self.heads),
            "uniform_entropy": float(self.uniform / n),
        }


def pick_utterances(labels: np.ndarray, n: int, seed: int = 0) -> list[int]:
    """``n`` test indices spanning the classes, reproducibly: each class's utterances in a
    seeded random order, then one per class in turn (class ids ascending) until ``n``."""
    rng = np.random.default_rng(seed)
    queues = [
        list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels).tolist()
    ]
    picked: list[int] = []
    while len(picked) < min(n, len(labels)):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(int(queue.pop(0)))
    return picked


@torch.no_grad()
def collect(run: ReloadedRun, picked: list[int]) -> tuple[list[Site], dict, dict]:
    """Run the test split once. Returns the sites, per-site :class:`HeadStats`, and for each
    picked index the mean-over-heads maps and valid lengths."""
    network = run.module.network
    sites = attention_sites(network)
    if not sites:
        raise ConfigError(f"{run.run_dir}: the model has no attention module")
    for site in sites:
        site.module.record_weights = True
    stats = {s.name: HeadStats(s.module.mha.num_heads) for s in sites}
    maps: dict[int, dict] = {}
    wanted = set(picked)
    start = 0
    try:
        for batch in run.datamodule.test_dataloader():
            run.module(batch)
            valid = network.valid_steps(batch)
            size = len(batch["label"])
            here = [i for i in range(size) if start + i in wanted]
            for site in sites:
                weights = site.module.last_weights
                stats[site.name].add(
                    weights, valid[site.query], valid[site.key], network.mask_padding
                )
                for i in here:
                    entry = maps.setdefault(
                        start + i, {"maps": {}, "label": int(batch["label"][i])}
                    )
                    entry["maps"][site.name] = weights[i].mean(dim=0).numpy()
                    entry["valid"] = {m: int(v[i].sum()) for m, v in valid.items()}
                    entry["lengths"] = {m: int(n[i]) for m, n in batch["lengths"].items()}
            start += size
    finally:
        for site in sites:
            site.module.record_weights = False
            site.module.last_weights = None
    return sites, stats, maps


# -- the measurement -------------------------------------------------------------------------


@dataclass
class AttentionMaps:
    """What one pass over a run's test split gave: per-site statistics, and for each picked
    utterance its mean-over-heads maps (``maps[index]["maps"][site]``, [Lq, Lk] arrays), label
    id, valid steps and lengths per modality."""

    run: ReloadedRun
    sites: list[Site]
    stats: dict[str, HeadStats]
    picked: list[int]
    maps: dict[int, dict]
    n_utterances: int

    def label(self, index: int) -> str:
        """The class name of a picked utterance (its id if the record names fewer classes)."""
        names = list(self.run.record.class_names)
        label = self.maps[index]["label"]
        return names[label] if label < len(names) else str(label)

    def png_name(self, k: int, index: int) -> str:
        """The heatmap file of the k-th picked utterance (0-based)."""
        return f"utterance{k + 1}_test{index}_{self.label(index)}.png"

    def record(self) -> AttentionRecord:
        """The ``attention.json`` record of this measurement."""
        run, record = self.run, self.run.record
        return AttentionRecord(
            run=str(run.run_dir),
            model=record.model,
            modality=record.modality,
            fold=record.fold,
            seed=record.seed,
            mask_padding=bool(run.module.network.mask_padding),
            checkpoint=str(run.checkpoint),
            split="test",
            n_utterances=self.n_utterances,
            valid_rule=VALID_RULE,
            modules={
                s.name: ModuleAttention(
                    query=s.query,
                    key=s.key,
                    heads=s.module.mha.num_heads,
                    **self.stats[s.name].summary(),
                )
                for s in self.sites
            },
            utterances=[
                UtteranceFigure(
                    index=index,
                    label=self.label(index),
                    lengths=self.maps[index]["lengths"],
                    valid_steps=self.maps[index]["valid"],
                    png=self.png_name(k, index),
                )
                for k, index in enumerate(self.picked)
            ],
        )


def measure_attention(run_dir: str | Path, utterances: int = 4) -> AttentionMaps:
    """Rebuild the run in ``run_dir`` and run its test split once, keeping the maps of
    ``utterances`` picked test utterances."""
    if utterances < 1:
        raise ConfigError(f"--utterances {utterances}: expected at least 1")
    run = reload_run(Path(run_dir))
    labels = np.asarray(run.datamodule.datasets["test"].labels)
    picked = pick_utterances(labels, utterances)
    sites, stats, maps = collect(run, picked)
    return AttentionMaps(run, sites, stats, picked, maps, len(labels))
