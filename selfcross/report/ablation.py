"""The missing-modality table and figure, built from the runs' ``ablation.json`` files (read by
:func:`selfcross.analysis.ablation.load_ablations`).

Per trained modality set and modality-dropout probability, and per model: each metric shown
(``--metrics``; default the dataset's, IEMOCAP WA and UWA) as mean ± sample std over runs for
every present subset, the drop from the full set (full minus
subset, per run, then mean ± std), and Self vs Cross t-tests on the drops (the paper's
Student's test and the paired one, :func:`selfcross.report.stats.compare`). Multi-modal runs
without a usable ``ablation.json`` for the fill are listed as skipped, with the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from selfcross.analysis.ablation import AblatedRun, load_ablations, present_subsets
from selfcross.analysis.pooling import (
    check_runs,
)
from selfcross.analysis.records import ABLATION_FILE
from selfcross.errors import DataError
from selfcross.report.render import (
    METRIC_MEANINGS,
    METRIC_NAMES,
    Report,
    Section,
    Value,
    console,
    make_out_dir,
    p_cells,
    publish,
)
from selfcross.report.select import MODEL_LABELS, modality_label
from selfcross.report.stats import compare, summarize
from selfcross.utils import atomic

CSV_FIELDS = (
    "table", "trained", "modality_dropout", "fill", "model", "present", "metric", "mean",
    "std", "n", "drop_mean", "drop_std", "compared_with", "p_ttest_ind", "p_ttest_rel",
    "n_pairs", "significant",
)  # fmt: skip
"""Columns of ablation.csv: one row per group x model x present subset x metric, then one per
Self-vs-Cross test on the drops."""

Group = tuple[str, float]
"""(trained modality set, modality dropout probability)."""


def group_runs(ablated: list[AblatedRun]) -> dict[Group, dict[str, dict[tuple, AblatedRun]]]:
    """(modality, dropout) -> model -> (fold, seed) -> run; the runs of one dropout value are
    checked like a table's (one configuration per cell, no duplicates, one data source)."""
    for p in sorted({a.dropout for a in ablated}):
        check_runs([a.run for a in ablated if a.dropout == p])
    groups: dict[Group, dict[str, dict[tuple, AblatedRun]]] = {}
    for a in ablated:
        models = groups.setdefault((a.run.modality, a.dropout), {})
        models.setdefault(a.run.model, {})[(a.run.fold, a.run.seed)] = a
    order = {m: i for i, m in enumerate(MODEL_LABELS)}
    return {
        key: dict(sorted(models.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))
        for key, models in sorted(groups.items(), key=lambda kv: (-len(kv[0][0]), kv[0]))
    }


def group_title(group: Group) -> str:
    modality, p = group
    return f"trained on {modality_label(modality)}, modality dropout p={p:g}"


def shown_metrics(ablated: list[AblatedRun], metrics) -> tuple[str, ...]:
    """``metrics`` (``--metrics``), else the default of the runs' datasets (``metrics`` of
    conf/data/<name>.yaml, each one's in turn)."""
    from selfcross.data.datasets import default_metrics

    if metrics is not None:
        return tuple(metrics)
    names = sorted({a.run.source[0] for a in ablated}) or ["iemocap"]
    return tuple(dict.fromkeys(m for name in names for m in default_metrics(name)))


def summary_of(values: list[float | None]):
    """mean ± std of ``values``; absent (``-``) when a run lacks the score (an older file)."""
    return summarize([]) if any(v is None for v in values) else summarize(values)


def build_ablation(groups, skipped: list[str], fill: str, directory: Path,
                   metrics=("wa", "uwa")) -> Report:  # fmt: skip
    sections, rows_csv = [], []
    for group, models in groups.items():
        modality, p = group
        tested = "self" in models and "cross" in models
        for metric in metrics:
            header = ["Present"]
            for m in models:
                header += [MODEL_LABELS.get(m, m), f"{MODEL_LABELS.get(m, m)} drop"]
            if tested:
                header += ["p t-test (drops)", "p paired", "pairs"]
            rows = []
            for present in present_subsets(modality):
                full = present == modality
                row = [modality_label(present) + (" (full)" if full else "")]
                for model, runs in models.items():
                    s = summary_of([r.at(present).metric(metric) for r in runs.values()])
                    d = summary_of([r.drop(present).metric(metric) for r in runs.values()])
                    n = len(runs) if s.mean is not None else None
                    row += [Value(s.mean, s.std, n), Value(None if full else d.mean, d.std)]
                    rows_csv.append(
                        _csv(group, fill, model, present, metric, mean=s.mean, std=s.std,
                             n=n, drop_mean=None if full else d.mean,
                             drop_std=None if full else d.std)
                    )  # fmt: skip
                lacking = tested and any(
                    r.drop(present).metric(metric) is None
                    for m in ("self", "cross") for r in models[m].values()
                )  # fmt: skip
                if tested and not full and not lacking:
                    c = compare(
                        {k: r.drop(present) for k, r in models["self"].items()},
                        {k: r.drop(present) for k, r in models["cross"].items()},
                        metric,
                    )
                    row += p_cells(c)
                    rows_csv.append(
                        _csv(group, fill, "self", present, metric, table="ablation-test",
                             compared_with="cross", p_ttest_ind=c.p_ind, p_ttest_rel=c.p_rel,
                             n_pairs=c.n_pairs, significant=c.significant)
                    )  # fmt: skip
                elif tested:
                    row += ["-", "-", "-"]
                rows.append(row)
            title = f"{METRIC_NAMES[metric]}, {group_title(group)}"
            sections.append(Section(title, header, rows))
    legend = [
        f"Test {', '.join(METRIC_NAMES[m] for m in metrics)} with the modalities not in Present "
        "blanked "
        f"(fill={fill}: {FILL_TEXT[fill]}), scored from each run's best checkpoint; "
        "mean ± sample standard deviation (ddof=1) over n runs, n in parentheses.",
        "drop: full-set score minus this subset's, per run, then mean ± std (positive: the "
        "model loses accuracy without the blanked modalities).",
        "p t-test: Self vs Cross drops by Student's two-sample t-test (scipy.stats.ttest_ind, "
        "equal variances, two-tailed), * where p < .05; p paired: scipy.stats.ttest_rel over "
        "runs matched by fold and seed (pairs: their number).",
        "The full set reproduces each run's result.json exactly (checked when scored).",
        *(METRIC_MEANINGS[m] for m in metrics),
        "-: no value (the full set's drop), or a run's ablation.json holds no such score "
        "(weighted F1 in a file written before it, without a confusion matrix to derive it "
        "from).",
    ]
    n_runs = sum(len(runs) for models in groups.values() for runs in models.values())
    notes = [
        f"Built from the {ABLATION_FILE} files of {n_runs} runs under {directory} "
        "by python -m selfcross.ablate.",
    ]
    return Report(
        name="ablation",
        title=f"Missing-modality evaluation (fill={fill})",
        sections=sections,
        legend=legend,
        notes=notes,
        missing=[f"skipped: {line}" for line in skipped],
        csv_rows=rows_csv,
        csv_fields=CSV_FIELDS,
    )


FILL_TEXT = {
    "zeros": "all zeros",
    "train_mean": "the per-feature mean of the train split's frames",
}


def _csv(group: Group, fill: str, model: str, present: str, metric: str, **values) -> dict:
    row = dict.fromkeys(CSV_FIELDS, "")
    row.update(table="ablation", trained=group[0], modality_dropout=group[1], fill=fill,
               model=model, present=present, metric=metric)  # fmt: skip
    row.update({k: ("" if v is None else v) for k, v in values.items()})
    return row


def draw_ablation(groups, fill: str, path: Path, metrics=("wa", "uwa")) -> None:
    """One column per (trained set, dropout), one row per metric: bars per present subset
    and model, error bars one std."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = list(groups)
    with matplotlib.rc_context({"font.size": 8}):
        fig = Figure(figsize=(3.2 * len(keys) + 0.6, 2.6 * len(metrics)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(metrics), len(keys), squeeze=False, sharey="row")
        for col, group in enumerate(keys):
            models = groups[group]
            subsets = present_subsets(group[0])
            width = 0.8 / max(len(models), 1)
            for row, metric in enumerate(metrics):
                ax = axes[row][col]
                for i, (model, runs) in enumerate(models.items()):
                    stats = [
                        summary_of([r.at(p).metric(metric) for r in runs.values()])
                        for p in subsets
                    ]
                    xs = [j - 0.4 + width * (i + 0.5) for j in range(len(subsets))]
                    ax.bar(xs, [np.nan if s.mean is None else s.mean for s in stats], width,
                           yerr=[s.std or 0.0 for s in stats], capsize=2,
                           label=f"{MODEL_LABELS.get(model, model)} (n={len(runs)})")  # fmt: skip
                ax.set_xticks(range(len(subsets)), [modality_label(p) for p in subsets])
                ax.set_ylim(0, 1)
                ax.grid(axis="y", alpha=0.3)
                if col == 0:
                    ax.set_ylabel(f"test {METRIC_NAMES[metric]}")
                if row == 0:
                    ax.set_title(group_title(group))
                if row == len(metrics) - 1:
                    ax.set_xlabel("present modalities")
                ax.legend(loc="upper right", fontsize=7)
        fig.suptitle(f"Missing-modality evaluation (fill={fill})")
        atomic.save_figure(fig, path, dpi=150)


def make_ablation_report(directory: Path, out_dir: Path, fill: str, metrics=None) -> Report:
    """The table (printed; ``ablation.md``, ``.tex``, ``.csv``) and ``ablation.png``, of
    ``metrics`` (None: the runs' dataset's default, :func:`shown_metrics`)."""
    ablated, skipped, _ = load_ablations(Path(directory), fill)
    if not ablated:
        raise DataError(
            directory,
            f"no run with a usable {ABLATION_FILE} for fill={fill}"
            + (f" ({len(skipped)} skipped, e.g. {skipped[0]})" if skipped else ""),
        )
    groups = group_runs(ablated)
    metrics = shown_metrics(ablated, metrics)
    report = build_ablation(groups, skipped, fill, Path(directory), metrics)
    publish(report, out_dir)
    make_out_dir(out_dir)
    figure = out_dir / "ablation.png"
    draw_ablation(groups, fill, figure, metrics)
    console().print(f"Wrote {figure}")
    return report
