"""The heatmaps and console summary of a run's attention (``python -m selfcross.attention``).

What is drawn comes from :mod:`selfcross.analysis.attention` (the measurement, which runs the
network) and :mod:`selfcross.analysis.records` (``attention.json``); this module only renders:
for each picked test utterance one PNG with a heatmap per attention module (query step x key
step, mean over heads, padded steps hatched), and one line per module on the console.
"""

from __future__ import annotations

import math
from pathlib import Path

from selfcross.analysis.records import ATTENTION_FILE, AttentionRecord
from selfcross.utils import atomic


def draw_attention(record: AttentionRecord, sites: list, maps: dict, out: Path) -> list[Path]:
    """One PNG per picked utterance into ``out``, named as ``record`` lists them; ``sites`` and
    ``maps`` are the measurement's (:class:`selfcross.analysis.attention.AttentionMaps`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    title = (
        f"{record.model} {record.modality}, fold {record.fold} seed {record.seed}, "
        f"mask_padding={record.mask_padding}"
    )
    paths = []
    for figure in record.utterances:
        path = out / figure.png
        label = f"{title}: test utterance {figure.index} ({figure.label})"
        draw_utterance(path, sites, maps[figure.index], label)
        paths.append(path)
    return paths


def draw_utterance(path: Path, sites: list, entry: dict, title: str) -> None:
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
    atomic.save_figure(fig, path, dpi=110)
    plt.close(fig)


def print_summary(record: AttentionRecord, out: Path) -> None:
    """Per attention module: mean entropy, uniform attention's entropy, share on padding."""
    print(f"{record.model} {record.modality} (mask_padding={record.mask_padding}), "
          f"{record.n_utterances} test utterances")  # fmt: skip
    print(f"{'module':<32} {'entropy':>8} {'uniform':>8} {'on padding':>10}")
    for name, m in record.modules.items():
        print(f"{name:<32} {m.entropy_mean:8.3f} {m.uniform_entropy:8.3f} "
              f"{m.padding_share_mean:10.1%}")  # fmt: skip
    print(f"wrote {out / ATTENTION_FILE} and {len(record.utterances)} PNGs")
