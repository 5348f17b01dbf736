"""Table 3 (ours): transformer-encoder layers vs bare attention on the multi-modal subsets.

The paper's second hypothesis for its bi-modal gap: stronger published models use full
transformer encoder layers, not bare multi-head attention. Self, Cross, Self-Transformer and
Cross-Transformer on T+V, T+A, V+A and T+V+A; each transformer model is tested against its bare
model, and Self-Transformer against Cross-Transformer (docs/transformers.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from selfcross.report.render import (
    Report,
    Section,
    cell_csv,
    comparison_section,
    csv_row,
    legend_marks,
    our_value,
)
from selfcross.report.select import (
    MODEL_LABELS,
    Cell,
    Selection,
    missing_report,
    modality_label,
    provenance,
    shown_metrics,
)
from selfcross.report.stats import compare
from selfcross.report.table1 import METRIC_TITLES

TABLE3_MODELS = ("self", "cross", "self_transformer", "cross_transformer")
TABLE3_MODALITIES = ("TV", "TA", "VA", "TVA")
TABLE3_PAIRS = (
    ("self_transformer", "self"),
    ("cross_transformer", "cross"),
    ("self_transformer", "cross_transformer"),
)
"""The tested pairs: each transformer against its bare model, then Self vs Cross within the
transformers."""


def table3_cells() -> list[tuple[str, str]]:
    return [(m, mod) for mod in TABLE3_MODALITIES for m in TABLE3_MODELS]


def parameter_count(cell: Cell) -> str:
    """The runs' parameter count (``n_params`` of result.json); every distinct one if they
    differ, ``?`` for runs whose record has none, ``-`` without runs."""
    counts = sorted({r.n_params for r in cell.runs.values()}, key=lambda c: (c is None, c))
    if not counts:
        return "-"
    return " / ".join("?" if c is None else f"{c:,}" for c in counts)


def pair_label(a: str, b: str) -> str:
    return f"{MODEL_LABELS[a]} vs {MODEL_LABELS[b]}"


def build_table3(
    selection: Selection, allow_mixed_data: bool = False, metrics: Sequence[str] | None = None
) -> Report:
    """Table 3: the four models' values per metric of ``metrics`` (default: the dataset's,
    ``select.shown_metrics``), their parameter counts and the t-tests."""
    protocol = selection.protocol
    shown = shown_metrics(selection, metrics)
    tests = {
        (a, b, modality, metric): compare(
            selection.cell(a, modality).runs, selection.cell(b, modality).runs, metric
        )
        for modality in TABLE3_MODALITIES
        for metric in shown
        for a, b in TABLE3_PAIRS
    }
    header = ["Modality", *(MODEL_LABELS[m] for m in TABLE3_MODELS)]
    sections, csv_rows = [], []
    for metric in shown:
        rows = []
        for modality in TABLE3_MODALITIES:
            values = {m: our_value(selection.cell(m, modality), metric) for m in TABLE3_MODELS}
            best = max((v.mean for v in values.values() if v.mean is not None), default=None)
            starred = set()
            for a, b in TABLE3_PAIRS[:2]:  # a star: the transformer differs from its bare model
                if tests[(a, b, modality, metric)].significant:
                    starred.add(a if values[a].mean >= values[b].mean else b)
            values = {
                m: replace(v, bold=v.mean is not None and v.mean == best, star=m in starred)
                for m, v in values.items()
            }
            rows.append([modality_label(modality), *(values[m] for m in TABLE3_MODELS)])
            for m in TABLE3_MODELS:
                cell = selection.cell(m, modality)
                csv_rows.append(
                    csv_row(
                        "table3", modality, metric, m, **cell_csv(cell, metric, protocol),
                        bold=values[m].bold,
                    )
                )  # fmt: skip
        sections.append(Section(METRIC_TITLES[metric], header, rows))
    section, test_csv = comparison_section(
        "table3",
        "t-tests: transformer vs bare attention, and Self vs Cross within the transformers",
        tests,
        pair_label,
    )
    sections.append(section)
    csv_rows += test_csv
    param_rows = []
    for modality in TABLE3_MODALITIES:
        counts = {m: parameter_count(selection.cell(m, modality)) for m in TABLE3_MODELS}
        param_rows.append([modality_label(modality), *counts.values()])
        for m, text in counts.items():
            csv_rows.append(csv_row("table3-params", modality, "n_params", m, mean=text))
    sections.append(Section("Trainable parameters (n_params of result.json)", header, param_rows))
    legend = [
        "Self-Transformer and Cross-Transformer: Self and Cross with every attention module "
        "replaced by transformer encoder layers (docs/transformers.md). Bold: the best mean of "
        "the row.",
        *legend_marks(
            protocol, "on the higher of a transformer model and its bare model", "the two"
        ),
        "In the t-test section * marks p < .05 by the paper's test; the first two comparisons "
        "ask whether transformer layers help, the third whether Self still beats Cross with them.",
    ]
    return Report(
        name="table3",
        title="Table 3: transformer-encoder layers vs bare attention, mean ± std over runs",
        sections=sections,
        legend=legend,
        notes=provenance(selection, allow_mixed_data),
        missing=missing_report(selection),
        csv_rows=csv_rows,
    )
