"""Table 5 (ours): does "Self ≈ Cross" survive the protocol?

    python -m selfcross.tables table5 --results multirun/table5 [--block random=multirun/...]

Self vs Cross on the multi-modal subsets (T+V, T+A, V+A, T+V+A) under each evaluation scheme,
one block per scheme: 7-class IEMOCAP on random folds (Table 1's runs), the 4-class set,
leave-one-session-out, and MELD; then cross-corpus, IEMOCAP -> MELD and MELD -> IEMOCAP on the
shared classes (the ``cross_corpus-*.json`` that ``selfcross.evaluate`` wrote in the runs of the
random and MELD blocks). Each block has its dataset's own metrics (IEMOCAP WA and UWA, MELD
weighted F1 and accuracy; ``--metrics`` for all), the paper's t-test and the paired one, and its
scheme in its title; a block is selected and checked as any table's cells, so runs of different
schemes are never pooled. A block's runs are ``<results>/<block>/`` unless ``--block
name=DIR`` says otherwise; absent blocks are left out and said (docs/protocols.md, "Table 5").
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from selfcross.analysis.crosscorpus import load_cross_corpus
from selfcross.analysis.results import load_results, warn_skipped
from selfcross.errors import ConfigError, DataError
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
    manifest_folds,
    missing_report,
    modality_label,
    provenance,
    select,
    shown_metrics,
)
from selfcross.report.stats import compare

MODELS = ("self", "cross")
MODALITIES = ("TV", "TA", "VA", "TVA")
BLOCKS = {
    "random": "7-class IEMOCAP, random folds (Table 1's runs)",
    "4class": "4-class IEMOCAP (angry, happy+excited, sad, neutral)",
    "session": "IEMOCAP, leave one session out",
    "meld": "MELD, the official split",
}
"""The in-corpus blocks, in the table's order: folder name -> title."""
CROSS_BLOCKS = {
    "iemocap_meld": ("random", "cross-corpus IEMOCAP -> MELD, shared classes"),
    "meld_iemocap": ("meld", "cross-corpus MELD -> IEMOCAP, shared classes"),
}
"""The cross-corpus blocks: class map -> (the block whose runs were scored, title)."""


def block_dirs(results: Path, blocks: list[str] | None) -> dict[str, Path]:
    """Block name -> its runs' folder: ``<results>/<name>`` or, a sweep's name being one folder,
    ``<results>-<name>`` (``multirun/demo5-meld``), or as ``--block name=DIR`` says."""
    results = Path(results)
    dirs = {}
    for name in BLOCKS:
        inner, beside = results / name, results.with_name(f"{results.name}-{name}")
        dirs[name] = inner if inner.is_dir() or not beside.is_dir() else beside
    for item in blocks or []:
        name, sep, folder = item.partition("=")
        if not sep or name not in BLOCKS or not folder:
            raise ConfigError(f"--block {item}: expected NAME=DIR with NAME one of "
                              f"{', '.join(BLOCKS)}")  # fmt: skip
        dirs[name] = Path(folder)
    return {name: d for name, d in dirs.items() if d.is_dir()}


def block_protocol(directory: Path, protocol: Protocol) -> Protocol:
    """The protocol's seeds over the folds the block's data has (its root's manifest)."""
    folds = manifest_folds(directory)
    if folds is None:
        return protocol
    kept = tuple(f for f in protocol.folds if f in folds)
    return replace(protocol, folds=kept or folds)


def gather_table5(results: Path, protocol: Protocol, blocks=None, allow_mixed_data=False):
    """``{block: Selection}`` for the in-corpus blocks found, then the cross-corpus ones
    (``{map: (Selection, target label, unusable files)}``)."""
    dirs = block_dirs(results, blocks)
    if not dirs:
        raise DataError(results, f"no block folder ({', '.join(BLOCKS)}, in it or beside it as "
                        "<results>-NAME; or --block NAME=DIR): nothing to tabulate")  # fmt: skip
    cells = [(m, mod) for mod in MODALITIES for m in MODELS]
    inside, across = {}, {}
    for name, directory in dirs.items():
        runs, skipped = load_results(directory)
        warn_skipped(skipped)
        grid = block_protocol(directory, protocol)
        inside[name] = select(directory, runs, skipped, grid, cells, allow_mixed_data)
        for cmap, (source, _) in CROSS_BLOCKS.items():
            if source != name:
                continue
            found = load_cross_corpus(runs, cmap)
            if found.scored:
                chosen = select(directory, found.scored, [], grid, cells, allow_mixed_data)
                across[cmap] = (chosen, found.target, found.skipped)
    return inside, across


def block_sections(key: str, title: str, selection: Selection, metrics) -> tuple[list, list]:
    """One section per metric: per modality, Self, Cross and their tests."""
    header = ["Modality", "Self", "Cross", "p t-test", "p paired", "pairs"]
    sections, csv_rows = [], []
    for metric in shown_metrics(selection, metrics):
        rows = []
        for mod in MODALITIES:
            cells = {m: selection.cell(m, mod) for m in MODELS}
            if not any(c.n for c in cells.values()):
                continue
            values = {m: our_value(cells[m], metric) for m in MODELS}
            test = compare(cells["self"].runs, cells["cross"].runs, metric)
            if test.significant:
                higher = max(MODELS, key=lambda m: values[m].mean)
                values[higher] = replace(values[higher], star=True)
            rows.append([modality_label(mod), values["self"], values["cross"], *p_cells(test)])
            for m in MODELS:
                cell = cell_csv(cells[m], metric, selection.protocol)
                csv_rows.append(csv_row(f"table5/{key}", mod, metric, m, **cell))
            csv_rows.append(csv_row(f"table5/{key}-test", mod, metric, "cross",
                                    **comparison_csv("self", test)))  # fmt: skip
        sections.append(Section(f"{title}; {selection.scheme} — {metric.upper()}", header, rows))
    return sections, csv_rows


def build_table5(inside, across, metrics=None, allow_mixed_data=False) -> Report:
    sections, csv_rows, notes, missing = [], [], [], []
    protocols = []
    for name, selection in inside.items():
        found, rows = block_sections(name, BLOCKS[name], selection, metrics)
        sections += found
        csv_rows += rows
        notes += [f"{name}: {line}" for line in provenance(selection, allow_mixed_data)]
        missing += [f"{name}: {line}" for line in missing_report(selection)]
        protocols.append(selection.protocol)
    for cmap, (selection, target, unusable) in across.items():
        title = f"{CROSS_BLOCKS[cmap][1]} ({target}, class_map={cmap})"
        found, rows = block_sections(cmap, title, selection, metrics)
        sections += found
        csv_rows += rows
        notes += [f"{cmap}: cross-corpus file not used: {line}" for line in unusable]
        missing += [f"{cmap}: {line}" for line in missing_report(selection)]
    absent = [n for n in BLOCKS if n not in inside]
    absent += [f"{m} (no cross_corpus-{m}-*.json)" for m in CROSS_BLOCKS if m not in across]
    if absent:
        notes.append(f"Blocks without runs, left out: {', '.join(absent)}")
    legend = [
        "Each block: Self vs Cross under one evaluation scheme (its title), with its dataset's "
        "metrics; cross-corpus blocks: the runs of the source block scored on the other "
        "dataset's test split over the shared classes (the run's classes without a partner "
        "masked before the arg-max, the target's left out; docs/protocols.md).",
        *legend_marks(
            protocols[0] if protocols else Protocol((1,), (1,)),
            "on the higher of Self and Cross in a row",
        ),  # fmt: skip
    ]
    return Report(
        name="table5",
        title="Table 5: Self vs Cross under each evaluation protocol, mean ± std over runs",
        sections=sections,
        legend=legend,
        notes=notes,
        missing=missing,
        csv_rows=csv_rows,
    )


def make_table5(
    results: Path,
    out_dir: Path,
    protocol: Protocol,
    allow_mixed_data: bool = False,
    blocks: list[str] | None = None,
    metrics=None,
) -> Report:
    """Table 5 from the block folders under ``results``: printed, and written as
    ``<out_dir>/table5.md``, ``.tex`` and ``.csv``."""
    inside, across = gather_table5(results, protocol, blocks, allow_mixed_data)
    report = build_table5(inside, across, metrics, allow_mixed_data)
    publish(report, out_dir)
    return report
