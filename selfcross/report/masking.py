"""The masking table: tri-modal Self and Cross with and without ``mask_padding``.

The paper's models (and ours, by default) attend over zero-padded frames and average them into
the pooled vector. ``model.network.mask_padding=true`` masks padded keys and averages valid steps
only (docs/diagnostics.md). The runs of ``experiment=mask_padding`` are split by that setting
(a run without the key is unmasked: it was written before the setting existed or at its
default), each side checked and grouped as any table's runs, and each model's masked runs
tested against its unmasked ones (Student's t-test, and the paired one over (fold, seed)).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from selfcross.analysis.results import load_results, warn_skipped
from selfcross.errors import DataError
from selfcross.report.render import (
    Report,
    Section,
    cell_csv,
    comparison_csv,
    csv_row,
    format_rate,
    legend_marks,
    our_value,
    p_cells,
    publish,
)
from selfcross.report.select import (
    MODEL_LABELS,
    Protocol,
    Selection,
    missing_report,
    modality_label,
    provenance,
    select,
    shown_metrics,
)
from selfcross.report.stats import compare
from selfcross.report.table1 import METRIC_TITLES

MASKING_MODELS = ("self", "cross")
MASKING_MODALITY = "TVA"
MASK_KEY = "model.network.mask_padding"
SIDES = ("unmasked", "masked")


def masked(run) -> bool:
    """Whether a run masked padding (its configuration as the hash sees it: ``true`` only when
    set; the default is left out of the hash)."""
    return run.config.get(MASK_KEY, "false") == "true"


def gather_masking(
    directory: Path, protocol: Protocol, allow_mixed_data: bool = False
) -> dict[str, Selection]:
    """The Self and Cross tri-modal runs under ``directory``, split into ``unmasked`` and
    ``masked`` selections (each checked like any table's cells)."""
    runs, skipped = load_results(directory)
    warn_skipped(skipped)
    cells = [(m, MASKING_MODALITY) for m in MASKING_MODELS]
    n_files = len(runs) + len(skipped)
    sides = {
        side: select(
            directory,
            [r for r in runs if masked(r) == (side == "masked")],
            skipped if side == "unmasked" else [],
            protocol,
            cells,
            allow_mixed_data,
            n_files,
        )
        for side in SIDES
    }
    if not any(sides[s].used for s in SIDES):
        raise DataError(
            directory, "no tri-modal Self or Cross run (result.json) found: nothing to tabulate"
        )
    return sides


def _difference(a, b) -> str:
    if a.mean is None or b.mean is None:
        return "-"
    delta = b.mean - a.mean
    return ("+" if delta >= 0 else "-") + format_rate(abs(delta))


def build_masking(
    sides: dict[str, Selection], allow_mixed_data: bool = False, metrics=None
) -> Report:
    """Each metric of ``metrics`` (default: the dataset's, ``select.shown_metrics``) of each
    model unmasked and masked, the difference and the t-tests."""
    protocol = sides["unmasked"].protocol
    shown = shown_metrics(sides["unmasked"], metrics)
    shown_metrics(sides["masked"], shown)  # every masked run has them too
    header = ["Model", "Unmasked (paper)", "Masked", "Masked - unmasked", "p t-test", "p paired",
              "pairs"]  # fmt: skip
    sections, csv_rows = [], []
    for metric in shown:
        rows = []
        for model in MASKING_MODELS:
            cells = {s: sides[s].cell(model, MASKING_MODALITY) for s in SIDES}
            values = {s: our_value(cells[s], metric) for s in SIDES}
            test = compare(cells["masked"].runs, cells["unmasked"].runs, metric)
            if test.significant:
                higher = max(SIDES, key=lambda s: values[s].mean)
                values[higher] = replace(values[higher], star=True)
            rows.append(
                [
                    MODEL_LABELS[model],
                    values["unmasked"],
                    values["masked"],
                    _difference(values["unmasked"], values["masked"]),
                    *p_cells(test),
                ]
            )
            for side in SIDES:
                csv_rows.append(
                    csv_row(
                        "masking", MASKING_MODALITY, metric, f"{model}/{side}",
                        **cell_csv(cells[side], metric, protocol),
                    )
                )  # fmt: skip
            csv_rows.append(
                csv_row(
                    "masking-test", MASKING_MODALITY, metric, f"{model}/masked",
                    **comparison_csv(f"{model}/unmasked", test),
                )
            )  # fmt: skip
        sections.append(Section(METRIC_TITLES[metric], header, rows))
    legend = [
        "Unmasked: the paper's models, attending to zero-padded frames and averaging them; "
        "masked: model.network.mask_padding=true, key-padding masks in every attention module "
        "and temporal averages over valid steps only (docs/diagnostics.md).",
        *legend_marks(protocol, "on the higher of a model's two cells", "masked and unmasked"),
    ]
    notes = []
    for side in SIDES:
        notes += [f"{side}: {line}" for line in provenance(sides[side], allow_mixed_data)]
    missing = []
    for side in SIDES:
        missing += [f"{side}: {line}" for line in missing_report(sides[side])]
    return Report(
        name="masking",
        title=f"Masking padding: tri-modal ({modality_label(MASKING_MODALITY)}) Self and Cross, "
        "mean ± std over runs",
        sections=sections,
        legend=legend,
        notes=notes,
        missing=missing,
        csv_rows=csv_rows,
    )


def make_masking(
    directory: Path,
    out_dir: Path,
    protocol: Protocol,
    allow_mixed_data: bool = False,
    metrics=None,
) -> Report:
    """The masking table from the ``result.json`` files under ``directory``: printed, and
    written as ``<out_dir>/masking.md``, ``.tex`` and ``.csv``."""
    sides = gather_masking(directory, protocol, allow_mixed_data)
    report = build_masking(sides, allow_mixed_data, metrics)
    publish(report, out_dir)
    return report
