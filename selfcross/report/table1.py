"""The paper's Table 1: Self vs Cross on every modality subset, beside the paper's numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from selfcross.report import paper
from selfcross.report.render import (
    Report,
    Section,
    Value,
    cell_csv,
    comparison_csv,
    csv_row,
    format_p,
    legend_marks,
    our_value,
    paper_value,
)
from selfcross.report.select import (
    Selection,
    missing_report,
    modality_label,
    provenance,
    shown_metrics,
)
from selfcross.report.stats import compare

METRIC_TITLES = {
    "wa": "WA (weighted accuracy: mean per-class recall)",
    "uwa": "UWA (unweighted accuracy: share classified correctly)",
    "wf1": "WF1 (weighted F1: per-class F1 weighted by class support)",
    "mf1": "MF1 (macro-F1: mean per-class F1)",
}
"""Titles of Table 1's blocks, one per metric shown (``--metrics``)."""

TABLE1_HEADER = [
    "Modality", "MDRE", "AMH", "Cross (paper)", "Cross (ours)", "Self (paper)", "Self (ours)",
    "p t-test", "p paired", "pairs",
]  # fmt: skip
OWN_HEADER = ["Modality", "Cross", "Self", "p t-test", "p paired", "pairs"]
"""Table 1's header on a dataset the paper does not report (MELD): our columns only."""


REFERENCES, OURS = paper.TABLE1_REFERENCES, ("cross", "self")
"""Table 1's reference and own columns: the paper has values for WA and UWA only; a block of
another metric (``--metrics wf1,mf1``) has no reference values."""


def table1_cells() -> list[tuple[str, str]]:
    return [(m, mod) for mod in paper.TABLE1_MODALITIES for m in ("cross", "self")]


def build_table1(
    selection: Selection, allow_mixed_data: bool = False, metrics: Sequence[str] | None = None
) -> Report:
    """Table 1: Self vs Cross on every modality subset, beside the paper's numbers; one block
    per metric of ``metrics`` (default: the dataset's, ``select.shown_metrics``)."""
    protocol = selection.protocol
    with_paper = paper.reported(selection.datasets)
    sections, csv_rows = [], []
    for metric in shown_metrics(selection, metrics):
        rows = []
        for modality in paper.TABLE1_MODALITIES:
            ref = paper.TABLE1[modality].get(metric) or dict.fromkeys((*REFERENCES, *OURS))
            cross, self_ = selection.cell("cross", modality), selection.cell("self", modality)
            ours = {"cross": our_value(cross, metric), "self": our_value(self_, metric)}
            test = compare(self_.runs, cross.runs, metric)
            candidates = [ref[r][0] for r in paper.TABLE1_REFERENCES if ref[r] is not None]
            if not with_paper:
                ref = {name: None for name in ref}
                candidates = []
            candidates += [v.mean for v in ours.values() if v.mean is not None]
            best = max(candidates, default=None)
            starred = None
            if test.significant:
                starred = "self" if ours["self"].mean >= ours["cross"].mean else "cross"
            ours = {
                name: replace(v, bold=v.mean is not None and v.mean == best, star=name == starred)
                for name, v in ours.items()
            }
            refs = {
                r: Value(ref[r][0], ref[r][1], bold=ref[r][0] == best) if ref[r] else Value(None)
                for r in paper.TABLE1_REFERENCES
            }
            paper_star = (modality, metric) in paper.TABLE1_STARRED
            tests = [
                format_p(test.p_ind),
                format_p(test.p_rel),
                str(test.n_pairs) if cross.applicable else "-",
            ]
            if with_paper:
                rows.append(
                    [
                        modality_label(modality),
                        refs["mdre"],
                        refs["amh"],
                        paper_value(ref["cross"]),
                        ours["cross"],
                        paper_value(ref["self"], star=paper_star),
                        ours["self"],
                        *tests,
                    ]
                )
            else:
                rows.append([modality_label(modality), ours["cross"], ours["self"], *tests])
            for r in paper.TABLE1_REFERENCES if with_paper else ():
                csv_rows.append(
                    csv_row(
                        "table1", modality, metric, r,
                        paper_mean=ref[r][0] if ref[r] else None,
                        paper_std=ref[r][1] if ref[r] else None,
                        bold=refs[r].bold,
                    )
                )  # fmt: skip
            for name, cell, other in (("cross", cross, "self"), ("self", self_, "cross")):
                comparison = comparison_csv(other, test) if cross.applicable else {}
                csv_rows.append(
                    csv_row(
                        "table1", modality, metric, name,
                        **cell_csv(cell, metric, protocol),
                        paper_mean=ref[name][0] if ref[name] else None,
                        paper_std=ref[name][1] if ref[name] else None,
                        bold=ours[name].bold,
                        **comparison,
                    )
                )  # fmt: skip
        header = TABLE1_HEADER if with_paper else OWN_HEADER
        sections.append(Section(METRIC_TITLES[metric], header, rows))
    if with_paper:
        legend = [
            "MDRE [19] and AMH [3, 7] (bi-modal MHA, tri-modal AMH) and the (paper) columns are "
            "the paper's reported values over 50 runs; in them * is the paper's own mark.",
            "Bold: the best mean of the row among MDRE, AMH, Cross (ours) and Self (ours).",
            *legend_marks(protocol, "on the higher of Cross (ours) and Self (ours)"),
        ]
    else:
        legend = [
            f"The paper reports no results on {', '.join(sorted(selection.datasets))}: no "
            "reference columns. Bold: the better mean of the row.",
            *legend_marks(protocol, "on the higher of Cross and Self"),
        ]
    return Report(
        name="table1",
        title=f"Table 1: {selection.n_classes}-class emotion recognition, mean ± std over runs "
        f"({selection.scheme})",
        sections=sections,
        legend=legend,
        notes=provenance(selection, allow_mixed_data),
        missing=missing_report(selection),
        csv_rows=csv_rows,
    )
