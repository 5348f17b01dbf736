"""The cross-corpus table: Self and Cross in-corpus (their ``result.json``) and on another
dataset through a class map (their ``cross_corpus-<map>-<target>.json``, written by
``selfcross.evaluate``), with the paper's t-test of Self vs Cross on each side.

    python -m selfcross.tables crosscorpus --results multirun/<sweep> --class-map iemocap_meld

The in-corpus values are over the run's own classes, the cross-corpus ones over the map's
shared classes (the run's classes without a partner masked, the target's left out:
docs/protocols.md, "Cross-corpus evaluation"); both sides are selected and checked as any
table's cells (one configuration, data source and evaluation scheme per cell), and runs scored
on different target data are never pooled.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from selfcross.analysis.crosscorpus import load_cross_corpus
from selfcross.analysis.results import load_results, warn_skipped
from selfcross.errors import DataError
from selfcross.report.render import (
    Report,
    Section,
    cell_csv,
    comparison_csv,
    csv_row,
    legend_marks,
    our_value,
    p_cells,
    publish,
)
from selfcross.report.select import (
    Protocol,
    Selection,
    missing_report,
    modality_label,
    provenance,
    select,
    shown_metrics,
)
from selfcross.report.stats import compare

MODELS = ("self", "cross")
MODALITIES = ("TV", "TA", "VA", "TVA")
SIDES = ("in-corpus", "cross-corpus")


def gather_crosscorpus(
    directory: Path,
    protocol: Protocol,
    class_map: str,
    target: str | None = None,
    allow_mixed_data: bool = False,
) -> tuple[dict[str, Selection], str | None, list[str]]:
    """The Self and Cross multi-modal runs under ``directory``, in-corpus and cross-corpus
    (each checked like any table's cells), the target's label and the unusable score files."""
    runs, skipped = load_results(directory)
    warn_skipped(skipped)
    cells = [(m, mod) for mod in MODALITIES for m in MODELS]
    found = load_cross_corpus(runs, class_map, target)
    if not found.scored:
        raise DataError(directory, f"no run with cross-corpus scores of class_map={class_map}"
                        + (f" on {target}" if target else "") + " (python -m selfcross.evaluate "
                        "RUN ... class_map=NAME writes them): nothing to tabulate")  # fmt: skip
    shown = {r.modality for r in found.scored}
    cells = [(m, mod) for m, mod in cells if mod in shown]
    n_files = len(runs) + len(skipped)
    sides = {
        "in-corpus": select(directory, runs, skipped, protocol, cells, allow_mixed_data, n_files),
        "cross-corpus": select(directory, found.scored, [], protocol, cells, allow_mixed_data,
                               len(found.scored)),
    }  # fmt: skip
    return sides, found.target, found.skipped


def build_crosscorpus(
    sides: dict[str, Selection],
    class_map: str,
    target: str | None,
    unusable: list[str] = (),
    metrics=None,
    allow_mixed_data: bool = False,
) -> Report:
    """Per metric and modality: Self and Cross in-corpus, the t-test, Self and Cross
    cross-corpus, the t-test."""
    protocol = sides["in-corpus"].protocol
    metrics = shown_metrics(sides["cross-corpus"], metrics)
    shown_metrics(sides["in-corpus"], metrics)  # every in-corpus run has them too
    modalities = sorted({mod for _, mod in sides["in-corpus"].cells}, key=MODALITIES.index)
    header = ["Modality"]
    for side in SIDES:
        header += [f"Self {side}", f"Cross {side}", "p t-test", "p paired", "pairs"]
    sections, csv_rows = [], []
    for metric in metrics:
        rows = []
        for mod in modalities:
            row = [modality_label(mod)]
            for side in SIDES:
                cells = {m: sides[side].cell(m, mod) for m in MODELS}
                values = {m: our_value(cells[m], metric) for m in MODELS}
                test = compare(cells["self"].runs, cells["cross"].runs, metric)
                if test.significant:
                    higher = max(MODELS, key=lambda m: values[m].mean)
                    values[higher] = replace(values[higher], star=True)
                row += [values["self"], values["cross"], *p_cells(test)]
                for m in MODELS:
                    csv_rows.append(csv_row(f"crosscorpus/{side}", mod, metric, m,
                                            **cell_csv(cells[m], metric, protocol)))  # fmt: skip
                csv_rows.append(csv_row(f"crosscorpus/{side}-test", mod, metric, "cross",
                                        **comparison_csv("self", test)))  # fmt: skip
            rows.append(row)
        sections.append(Section(metric.upper(), header, rows))
    legend = [
        f"In-corpus: each run's own test split and classes (result.json); cross-corpus: the "
        f"same runs on {target} through class_map={class_map}, over the shared classes (the "
        "run's classes without a partner masked before the arg-max, the target's left out; "
        "cross_corpus-*.json, docs/protocols.md).",
        *legend_marks(protocol, "on the higher of Self and Cross on one side"),
    ]
    notes = []
    for side in SIDES:
        notes += [f"{side}: {line}" for line in provenance(sides[side], allow_mixed_data)]
    notes += [f"Cross-corpus file not used: {line}" for line in unusable]
    missing = []
    for side in SIDES:
        missing += [f"{side}: {line}" for line in missing_report(sides[side])]
    return Report(
        name="crosscorpus",
        title=f"Cross-corpus: Self and Cross in-corpus ({sides['in-corpus'].scheme}) and on "
        f"{target} (class_map={class_map}), mean ± std over runs",
        sections=sections,
        legend=legend,
        notes=notes,
        missing=missing,
        csv_rows=csv_rows,
    )


def make_crosscorpus(
    directory: Path,
    out_dir: Path,
    protocol: Protocol,
    allow_mixed_data: bool = False,
    class_map: str = "iemocap_meld",
    target: str | None = None,
    metrics=None,
) -> Report:
    """The cross-corpus table from the files under ``directory``: printed, and written as
    ``<out_dir>/crosscorpus.md``, ``.tex`` and ``.csv``."""
    sides, chosen, unusable = gather_crosscorpus(
        directory, protocol, class_map, target, allow_mixed_data
    )
    report = build_crosscorpus(sides, class_map, chosen, unusable, metrics, allow_mixed_data)
    publish(report, out_dir)
    return report
