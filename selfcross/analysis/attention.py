"""Attention maps of a finished run, and how much attention goes to padding.

``python -m selfcross.attention <run folder>`` (:mod:`selfcross.attention`) calls
:func:`attention_report`: the run is rebuilt from its ``result.json`` (the resolved
configuration), its best checkpoint is loaded (weights only), and its test split is run once
through the real attention modules, each recording its per-head weights
(``CrossModalAttention.record_weights``, the ``nn.MultiheadAttention`` computation).

Statistics, per attention module and head, over every test utterance: a row of weights is one
query step's distribution over the key steps. Rows counted are the valid query steps of
utterances with at least one valid key (padding after a time-wise convolution is defined by
:meth:`~selfcross.models.encoders.ModalityEncoder.out_lengths`). For each row,
``entropy`` = -sum p log p (nats) and ``padding_share`` = the mass on padded keys; the json holds
their means over rows, and ``uniform_entropy``, the mean of log(number of keys the row could
attend to): all keys unmasked, the valid ones with ``mask_padding``.

Figures: for N test utterances (chosen by :func:`pick_utterances`), one PNG each with one heatmap
per attention module (query step x key step, mean over heads), padded steps hatched.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from selfcross.analysis.reload import ReloadedRun, reload_run
from selfcross.errors import ConfigError
from selfcross.utils.io import write_json_atomic

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
OUT_DIR = "attention"
JSON_FILE = "attention.json"


# -- rebuilding a run -------------------------------------------------------------------------


def rebuild_run(run_dir: str | Path) -> ReloadedRun:
    """The run's module with its best weights, in eval mode, and its data module (set up)."""
    return reload_run(Path(run_dir))


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


# -- figures ----------------------------------------------------------------------------------


def draw_utterance(path: Path, sites: list[Site], entry: dict, title: str) -> None:
    """One PNG: a heatmap per attention module, padded query rows and key columns hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    cols = min(3, len(sites))
    rows = math.ceil(len(sites) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(sites) :]:
        ax.axis("off")
    for ax, site in zip(axes.flat, sites, strict=False):
        heat = entry["maps"][site.name]
        lq, lk = heat.shape
        image = ax.imshow(
            heat, aspect="auto", origin="upper", cmap="viridis", interpolation="nearest",
            extent=(-0.5, lk - 0.5, lq - 0.5, -0.5), vmin=0.0, vmax=float(heat.max()) or 1.0,
        )  # fmt: skip
        nq, nk = entry["valid"][site.query], entry["valid"][site.key]
        if nk == 0 and not heat.any():
            ax.text((lk - 1) / 2, (lq - 1) / 2, "no valid key:\nattends to nothing",
                    ha="center", va="center", fontsize=9, color="white")  # fmt: skip
        hatch = {"facecolor": (1, 1, 1, 0.35), "edgecolor": "white", "hatch": "//", "lw": 0}
        if nk < lk:
            ax.add_patch(Rectangle((nk - 0.5, -0.5), lk - nk, lq, **hatch))
            ax.axvline(nk - 0.5, color="red", lw=1.2, ls="--")
        if nq < lq:
            ax.add_patch(Rectangle((-0.5, nq - 0.5), lk, lq - nq, **hatch))
            ax.axhline(nq - 0.5, color="red", lw=1.2, ls="--")
        ax.set_title(f"{site.name}\nquery {site.query} ({nq}/{lq} valid), "
                     f"key {site.key} ({nk}/{lk} valid)", fontsize=9)  # fmt: skip
        ax.set_xlabel(f"key step ({site.key})", fontsize=8)
        ax.set_ylabel(f"query step ({site.query})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    fig.suptitle(title + "   (mean over heads; hatched beyond the red line: padding)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the report -------------------------------------------------------------------------------


def attention_report(run_dir: str | Path, utterances: int = 4, out: Path | None = None) -> dict:
    """Write ``<run>/attention/attention.json`` and one PNG per picked utterance; return the
    json's content."""
    if utterances < 1:
        raise ConfigError(f"--utterances {utterances}: expected at least 1")
    run = rebuild_run(run_dir)
    out = Path(out) if out is not None else run.run_dir / OUT_DIR
    labels = np.asarray(run.datamodule.datasets["test"].labels)
    picked = pick_utterances(labels, utterances)
    sites, stats, maps = collect(run, picked)
    out.mkdir(parents=True, exist_ok=True)
    names = list(run.record.class_names)
    record = run.record
    figures = []
    for k, index in enumerate(picked):
        entry = maps[index]
        name = names[entry["label"]] if entry["label"] < len(names) else str(entry["label"])
        png = out / f"utterance{k + 1}_test{index}_{name}.png"
        title = (
            f"{record.model} {record.modality}, fold {record.fold} seed {record.seed}, "
            f"mask_padding={run.module.network.mask_padding}: test utterance {index} ({name})"
        )
        draw_utterance(png, sites, entry, title)
        figures.append(
            {"index": index, "label": name, "lengths": entry["lengths"],
             "valid_steps": entry["valid"], "png": png.name}
        )  # fmt: skip
    result = {
        "run": str(run.run_dir),
        "model": record.model,
        "modality": record.modality,
        "fold": record.fold,
        "seed": record.seed,
        "mask_padding": bool(run.module.network.mask_padding),
        "checkpoint": str(run.checkpoint),
        "split": "test",
        "n_utterances": len(labels),
        "valid_rule": "after a time-wise conv: ceil(n * out_len / seq_len) leading steps",
        "modules": {
            s.name: {
                "query": s.query,
                "key": s.key,
                "heads": s.module.mha.num_heads,
                **stats[s.name].summary(),
            }
            for s in sites
        },  # fmt: skip
        "utterances": figures,
    }
    write_json_atomic(out / JSON_FILE, result)
    return result


def print_summary(result: dict, out: Path) -> None:
    print(f"{result['model']} {result['modality']} (mask_padding={result['mask_padding']}), "
          f"{result['n_utterances']} test utterances")  # fmt: skip
    print(f"{'module':<32} {'entropy':>8} {'uniform':>8} {'on padding':>10}")
    for name, m in result["modules"].items():
        print(f"{name:<32} {m['entropy_mean']:8.3f} {m['uniform_entropy']:8.3f} "
              f"{m['padding_share_mean']:10.1%}")  # fmt: skip
    print(f"wrote {out / JSON_FILE} and {len(result['utterances'])} PNGs")


def load_report(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
