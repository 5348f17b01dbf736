"""The paper's Table 2: the five tri-modal models, and the tests of Self vs Cross with and
without statistical pooling (SP)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from selfcross.report import paper
from selfcross.report.render import (
    METRIC_MEANINGS,
    METRIC_NAMES,
    Report,
    Section,
    Value,
    cell_csv,
    comparison_csv,
    csv_row,
    legend_marks,
    our_value,
    p_cells,
    paper_value,
)
from selfcross.report.select import (
    MODEL_LABELS,
    TRIMODAL,
    Selection,
    missing_report,
    provenance,
    shown_metrics,
)
from selfcross.report.stats import compare

TABLE2_PAIRS = (("self", "cross"), ("self_nosp", "cross_nosp"))
"""The comparisons Table 2 tests (the paper reports the first in Table 1, the second in text)."""


def table2_cells() -> list[tuple[str, str]]:
    return [(m, TRIMODAL) for m in paper.TABLE2_MODELS]


def build_table2(
    selection: Selection, allow_mixed_data: bool = False, metrics: Sequence[str] | None = None
) -> Report:
    """Table 2: the five tri-modal models, and the t-tests of self vs cross with and w/o SP;
    ``metrics``: the columns (default: the dataset's, ``select.shown_metrics``)."""
    protocol = selection.protocol
    with_paper = paper.reported(selection.datasets)
    shown = shown_metrics(selection, metrics)
    tests = {
        (a, b, metric): compare(
            selection.cell(a, TRIMODAL).runs, selection.cell(b, TRIMODAL).runs, metric
        )
        for a, b in TABLE2_PAIRS
        for metric in shown
    }
    starred = set()
    for (a, b, metric), test in tests.items():
        if test.significant:
            sa = selection.cell(a, TRIMODAL).summary(metric).mean
            sb = selection.cell(b, TRIMODAL).summary(metric).mean
            starred.add((a if sa >= sb else b, metric))
    partner = {a: b for a, b in TABLE2_PAIRS} | {b: a for a, b in TABLE2_PAIRS}
    rows, csv_rows = [], []
    for model in paper.TABLE2_MODELS:
        cell = selection.cell(model, TRIMODAL)
        row: list[Value | str] = [MODEL_LABELS[model]]
        for metric in shown:
            ref = paper.TABLE2[model].get(metric, (None, None)) if with_paper else (None, None)
            ours = replace(our_value(cell, metric), star=(model, metric) in starred)
            row += [paper_value(ref), ours] if with_paper else [ours]
            comparison = {}
            if model in partner:
                other = partner[model]
                pair = (model, other) if (model, other) in TABLE2_PAIRS else (other, model)
                comparison = comparison_csv(other, tests[(*pair, metric)])
            csv_rows.append(
                csv_row(
                    "table2", TRIMODAL, metric, model,
                    **cell_csv(cell, metric, protocol),
                    paper_mean=ref[0], paper_std=ref[1], bold=False, **comparison,
                )
            )  # fmt: skip
        rows.append(row)
    names = [METRIC_NAMES[m] for m in shown]
    header = ["Model", *(f"{n} ({w})" for n in names for w in ("paper", "ours"))]
    if not with_paper:
        header = ["Model", *names]
    test_rows = []
    for (a, b, metric), test in tests.items():
        test_rows.append(
            [
                f"{MODEL_LABELS[a]} vs {MODEL_LABELS[b]}",
                metric.upper(),
                *p_cells(test),
            ]
        )
    sections = [
        Section(f"Tri-modal (T+V+A) models: {' and '.join(names)}", header, rows),
        Section(
            "Self vs Cross, with and without statistical pooling (SP)",
            ["Comparison", "Metric", "p t-test", "p paired", "pairs"],
            test_rows,
        ),
    ]
    meanings = "; ".join(METRIC_MEANINGS[m] for m in shown) + "."
    if with_paper:
        first = f"(paper): the paper's reported values over 50 runs. {meanings}"
    else:
        first = (
            f"The paper reports no results on {', '.join(sorted(selection.datasets))}: no "
            f"reference columns. {meanings}"
        )
    legend = [first, *legend_marks(protocol, "on the higher model of a tested pair")]
    return Report(
        name="table2",
        title="Table 2: tri-modal model variants, mean ± std over runs",
        sections=sections,
        legend=legend,
        notes=provenance(selection, allow_mixed_data),
        missing=missing_report(selection),
        csv_rows=csv_rows,
    )
