"""The paper's Figure 3: row-normalised confusion matrices of tri-modal Self and Cross on one
fold, summed over its seeds; drawn with matplotlib and printed as tables.

The runs are selected exactly as for the tables (:func:`selfcross.report.select.select`: same
protocol grid, same data-source checks, same missing-run report).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfcross.analysis.results import RunResult, Skipped, load_results, warn_skipped
from selfcross.errors import DataError
from selfcross.report.render import (
    DAGGER,
    console,
    make_out_dir,
    print_missing_and_notes,
    say_written,
)
from selfcross.report.select import (
    MODEL_LABELS,
    TRIMODAL,
    Cell,
    Protocol,
    Selection,
    format_ints,
    missing_report,
    provenance,
    select,
)
from selfcross.utils import atomic

FIGURE3_MODELS = ("self", "cross")
"""Left and right panel (the paper's order)."""


def abbreviate(class_names: Sequence[str]) -> list[str]:
    """``angry`` -> ``ang``: the paper's three-letter class labels."""
    return [name[:3].lower() for name in class_names]


def row_normalise(counts: np.ndarray) -> np.ndarray:
    """[C, C] counts -> each row divided by its sum (a true class's recall profile); NaN rows
    where the class has no test utterance."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / totals, np.nan)


@dataclass
class ConfusionPanel:
    """One model's confusion matrix summed over its runs on one fold."""

    cell: Cell
    counts: np.ndarray | None
    """[C, C] summed counts (rows true, columns predicted); None without runs."""
    class_names: tuple[str, ...] | None

    @property
    def normalised(self) -> np.ndarray | None:
        return None if self.counts is None else row_normalise(self.counts)


def confusion_panel(cell: Cell) -> ConfusionPanel:
    runs = [cell.runs[k] for k in sorted(cell.runs)]
    if not runs:
        return ConfusionPanel(cell, None, None)
    first = runs[0]
    for run in runs[1:]:
        if run.class_names != first.class_names:
            raise DataError(
                run.path, f"class_names {list(run.class_names)} differ from {first.path}'s"
            )
    return ConfusionPanel(cell, np.sum([r.confusion for r in runs], axis=0), first.class_names)


def figure3_panels(
    directory: Path,
    runs: list[RunResult],
    skipped: list[Skipped],
    seeds: Sequence[int],
    fold: int | None = None,
    allow_mixed_data: bool = False,
) -> tuple[dict[str, ConfusionPanel], Selection]:
    """Tri-modal Self and Cross confusion panels on ``fold`` (default: the lowest present),
    summed over ``seeds``. Runs without a confusion matrix are skipped (counted missing)."""
    n_files = len(runs) + len(skipped)
    usable, skipped = [], list(skipped)
    for run in runs:
        if run.model in FIGURE3_MODELS and run.modality == TRIMODAL and run.confusion is None:
            skipped.append(Skipped(run.path, "no confusion matrix or class_names"))
        else:
            usable.append(run)
    present = sorted(
        {r.fold for r in usable if r.model in FIGURE3_MODELS and r.modality == TRIMODAL}
    )
    candidates = [
        r.fold
        for r in usable
        if r.model in FIGURE3_MODELS and r.modality == TRIMODAL and r.seed in seeds
    ]
    if fold is None:
        if not candidates:
            found = f" (folds present: {format_ints(present)})" if present else ""
            raise DataError(
                directory,
                f"no tri-modal self or cross run with seed {format_ints(seeds)}{found}",
            )
        fold = min(candidates)
    protocol = Protocol((fold,), tuple(seeds))
    wanted = [(m, TRIMODAL) for m in FIGURE3_MODELS]
    selection = select(
        directory, usable, skipped, protocol, wanted, allow_mixed_data, n_files=n_files
    )
    # runs of other folds are not "outside the grid" here: the figure shows one fold
    other_folds = [r for r in selection.outside if r.fold != fold]
    selection.outside = [r for r in selection.outside if r.fold == fold]
    selection.other += len(other_folds)
    if selection.used == 0:
        raise DataError(directory, f"no tri-modal self or cross run on fold {fold}")
    panels = {m: confusion_panel(selection.cell(m, TRIMODAL)) for m in FIGURE3_MODELS}
    names = {p.class_names for p in panels.values() if p.class_names is not None}
    if len(names) > 1:
        a, b = (panels[m].cell.runs[min(panels[m].cell.runs)].path for m in FIGURE3_MODELS)
        raise DataError(b, f"class_names differ from {a}'s")
    return panels, selection


def draw_figure3(panels: dict[str, ConfusionPanel], paths: list[Path]) -> None:
    """Two row-normalised confusion matrices side by side, sized for one paper column."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    style = {"font.size": 7, "axes.titlesize": 7, "axes.titlepad": 3, "pdf.fonttype": 42}
    with matplotlib.rc_context(style):
        fig = Figure(figsize=(3.5, 1.85), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2, sharey=True)
        names = next(p.class_names for p in panels.values() if p.class_names is not None)
        labels = abbreviate(names)
        c = len(labels)
        image = None
        for ax, (model, panel) in zip(axes, panels.items(), strict=True):
            cell = panel.cell
            runs = f"n = {cell.n}" if cell.complete else f"n = {cell.n} of {len(cell.expected)}"
            ax.set_title(f"{MODEL_LABELS[model]} ({runs})" + ("" if cell.complete else DAGGER))
            matrix = panel.normalised if panel.counts is not None else np.full((c, c), np.nan)
            image = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0)
            if panel.counts is None:
                ax.text(c / 2 - 0.5, c / 2 - 0.5, "no runs", ha="center", va="center")
            else:
                for i, j in itertools.product(range(c), range(c)):
                    v = matrix[i, j]
                    text = "-" if np.isnan(v) else ("1.0" if v >= 0.995 else f"{v:.2f}"[1:])
                    colour = "white" if not np.isnan(v) and v > 0.55 else "black"
                    ax.text(j, i, text, ha="center", va="center", fontsize=5.5, color=colour)
            ax.set_xticks(range(c), labels, fontsize=6)
            ax.set_yticks(range(c), labels, fontsize=6)
            ax.tick_params(length=0, pad=1.5)
            ax.set_xlabel("predicted", fontsize=6, labelpad=1)
        axes[0].set_ylabel("true", fontsize=6, labelpad=1)
        bar = fig.colorbar(image, ax=list(axes), shrink=0.8, pad=0.02, aspect=25)
        bar.ax.tick_params(labelsize=5, length=2)
        for path in paths:
            atomic.save_figure(fig, path, dpi=300)


def print_confusion(panels: dict[str, ConfusionPanel], fold: int) -> None:
    from rich.table import Table

    out = console()
    for model, panel in panels.items():
        cell = panel.cell
        mark = DAGGER if not cell.complete else ""
        title = (
            f"Figure 3: {MODEL_LABELS[model]} T+V+A, fold {fold}, {cell.n} run(s){mark}, "
            "row-normalised (rows true, columns predicted)"
        )
        if panel.counts is None:
            out.print(f"{title}: no runs")
            continue
        labels = abbreviate(panel.class_names)
        table = Table(title=title, title_justify="left")
        table.add_column("true")
        for label in labels:
            table.add_column(label, justify="right")
        for label, row in zip(labels, panel.normalised, strict=True):
            table.add_row(label, *("-" if np.isnan(v) else f"{v:.2f}" for v in row))
        out.print(table)


def make_figure3(
    directory: Path,
    out_dir: Path,
    protocol: Protocol,
    allow_mixed_data: bool = False,
    *,
    seed: int | None = None,
    fold: int | None = None,
) -> dict[str, ConfusionPanel]:
    """Figure 3 from the ``result.json`` files under ``directory``: printed, and drawn into
    ``<out_dir>/figure3.png`` and ``.pdf``. ``seed`` picks one seed of the grid (default: all,
    summed); ``fold`` one fold (default: the lowest present)."""
    seeds = (seed,) if seed is not None else protocol.seeds
    runs, skipped = load_results(directory)
    panels, selection = figure3_panels(directory, runs, skipped, seeds, fold, allow_mixed_data)
    warn_skipped(selection.skipped)
    print_confusion(panels, selection.protocol.folds[0])
    print_missing_and_notes(
        console(), missing_report(selection), provenance(selection, allow_mixed_data)
    )
    make_out_dir(out_dir)
    paths = [out_dir / "figure3.png", out_dir / "figure3.pdf"]
    draw_figure3(panels, paths)
    say_written(paths)
    return panels
