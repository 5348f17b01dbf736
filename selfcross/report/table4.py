"""Table 4 (ours): the bi-modal Self and Cross models untuned (Table 1's runs) vs tuned for their
own case (``experiment=tuned``, docs/tuning.md), beside the paper's values and the best
published T+A figures.

The paper's first hypothesis for its bi-modal gap: its bi-modal models are the tri-modal
architecture with a modality removed, never tuned for the bi-modal case. Each tuned model is
tested against its untuned one, and tuned Self against tuned Cross (does the paper's conclusion
survive tuning?). The untuned and the tuned runs come from two folders (``--results``,
``--tuned``); every tuned run must carry ``tuned.study`` in its configuration and no untuned one
may.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from selfcross.analysis import pooling
from selfcross.analysis.pooling import (
    config_difference,
)
from selfcross.errors import DataError
from selfcross.report import paper
from selfcross.report.render import (
    Report,
    Section,
    Value,
    cell_csv,
    comparison_section,
    csv_row,
    legend_marks,
    our_value,
    paper_value,
    publish,
)
from selfcross.report.select import (
    MODEL_LABELS,
    Protocol,
    Selection,
    gather,
    missing_report,
    modality_label,
    provenance,
    shown_metrics,
)
from selfcross.report.stats import compare
from selfcross.report.table1 import METRIC_TITLES
from selfcross.training.tuned import BEST_FILE

TABLE4_MODELS = ("self", "cross")
TABLE4_MODALITIES = ("TV", "TA", "VA")
TUNED_KEYS = ("tuned.study", "tuned.trial", "tuned.value", "tuned.allow_unfinished")
"""The keys ``experiment=tuned`` adds to a run's configuration."""
OBJECTIVE_NAMES = {"val/uwa": "UWA", "val/wa": "WA", "val/wf1": "WF1", "val/f1": "MF1"}
"""A study's objective (``training.search.OBJECTIVES``) as the tables name its metric."""


def study_objective(run) -> str:
    """The validation metric the tuned run's study maximised: ``objective`` of the study's
    ``best.json`` when the folder ``tuned.study`` names can be read from here, else the run's
    own ``monitor.metric`` (a study maximises the selection metric of its runs: MELD's val/wf1),
    else ``val/uwa`` (the objective of every study before there was a choice)."""
    study = _value(run.config.get("tuned.study"))
    if isinstance(study, str) and study:
        try:
            best = json.loads((Path(study) / BEST_FILE).read_text())
        except (OSError, ValueError):
            best = None
        if isinstance(best, dict) and best.get("objective") in OBJECTIVE_NAMES:
            return best["objective"]
    monitored = _value(run.config.get("monitor.metric"))
    return monitored if monitored in OBJECTIVE_NAMES else "val/uwa"


def objective_name(objective: str) -> str:
    """``val/wf1`` -> ``validation WF1``."""
    return f"validation {OBJECTIVE_NAMES.get(objective, objective)}"


def _value(text):
    """A value of a run's flattened configuration (JSON text), None if absent or not JSON."""
    try:
        return None if text is None else json.loads(text)
    except ValueError:
        return None


def table4_cells() -> list[tuple[str, str]]:
    return [(m, mod) for mod in TABLE4_MODALITIES for m in TABLE4_MODELS]


def check_kinds(untuned: Selection, tuned: Selection) -> None:
    """Refuse a tuned run among the untuned ones and an untuned run among the tuned ones."""
    for selection, want, where in ((untuned, False, "--results"), (tuned, True, "--tuned")):
        for cell in selection.cells.values():
            for run in cell.runs.values():
                if ("tuned.study" in run.config) != want:
                    kind = "a tuned run (tuned.study set)" if not want else "not a tuned run"
                    raise DataError(
                        run.path,
                        f"{kind} in {where}; give the untuned runs (Table 1's sweep) with "
                        "--results and the experiment=tuned runs with --tuned",
                    )


def check_same_data(untuned: Selection, tuned: Selection) -> None:
    """The two folders' runs must share the data source and, fold by fold, the fingerprint."""
    runs = [r for s in (untuned, tuned) for c in s.cells.values() for r in c.runs.values()]
    pooling.check_same_data(runs, verb="compare")


def tuned_settings(untuned: Selection, tuned: Selection, model: str, modality: str) -> str:
    """What tuning changed in a cell: the study, its trial and value, and the settings that
    differ from the untuned runs' configuration (read from the result files)."""
    runs = list(tuned.cell(model, modality).runs.values())
    if not runs:
        return "-"
    run = runs[0]
    study = run.config.get("tuned.study", "?").strip('"')
    value = run.config.get("tuned.value")
    head = f"study {study}, trial {run.config.get('tuned.trial', '?')}"
    if value not in (None, "null"):
        head += f" ({objective_name(study_objective(run))} {float(value):.3f})"
    base = list(untuned.cell(model, modality).runs.values())
    if not base:
        return head + "; untuned runs missing: no comparison of settings"
    diff = {k: v for k, v in config_difference(base[0], run).items() if not k.startswith("tuned.")}
    changed = ", ".join(f"{k} {a.strip(chr(34))} -> {b.strip(chr(34))}"
                        for k, (a, b) in diff.items())  # fmt: skip
    return f"{head}: {changed or 'the untuned settings'}"


def build_table4(
    untuned: Selection,
    tuned: Selection,
    allow_mixed_data: bool = False,
    metrics: Sequence[str] | None = None,
) -> Report:
    """Table 4 per metric of ``metrics`` (default: the dataset's, ``select.shown_metrics``);
    the paper's and the published columns where the paper gives the metric (WA, UWA)."""
    protocol = untuned.protocol
    shown = shown_metrics(untuned, metrics)
    shown_metrics(tuned, shown)  # the tuned runs must hold them too
    tests = {}
    for modality in TABLE4_MODALITIES:
        for metric in shown:
            for m in TABLE4_MODELS:
                tests[(f"{m}_tuned", m, modality, metric)] = compare(
                    tuned.cell(m, modality).runs, untuned.cell(m, modality).runs, metric
                )
            tests[("self_tuned", "cross_tuned", modality, metric)] = compare(
                tuned.cell("self", modality).runs, tuned.cell("cross", modality).runs, metric
            )
    # The paper's and the published values are IEMOCAP's: left out for other datasets.
    with_paper = paper.reported(untuned.datasets | tuned.datasets)
    header = ["Modality"]
    for m in TABLE4_MODELS:
        label = MODEL_LABELS[m]
        header += [f"{label} (paper)"] * with_paper + [label, f"{label} tuned"]
    header += ["Published best (T+A)"] * with_paper
    sections, csv_rows = [], []
    for metric in shown:
        rows = []
        for modality in TABLE4_MODALITIES:
            ours = {}
            for m in TABLE4_MODELS:
                ours[m] = our_value(untuned.cell(m, modality), metric)
                ours[f"{m}_tuned"] = our_value(tuned.cell(m, modality), metric)
            best = max((v.mean for v in ours.values() if v.mean is not None), default=None)
            for m in TABLE4_MODELS:
                a, b = ours[f"{m}_tuned"], ours[m]
                if tests[(f"{m}_tuned", m, modality, metric)].significant:
                    higher = f"{m}_tuned" if a.mean >= b.mean else m
                    ours[higher] = replace(ours[higher], star=True)
            ours = {
                k: replace(v, bold=v.mean is not None and v.mean == best) for k, v in ours.items()
            }
            row: list = [modality_label(modality)]
            for m in TABLE4_MODELS:
                reported = paper.TABLE1[modality].get(metric, {}).get(m) if with_paper else None
                if with_paper:
                    row.append(paper_value(reported))
                row += [ours[m], ours[f"{m}_tuned"]]
                for key, selection in ((m, untuned), (f"{m}_tuned", tuned)):
                    stat = reported if key == m else None
                    csv_rows.append(
                        csv_row("table4", modality, metric, key,
                                **cell_csv(selection.cell(m, modality), metric, protocol),
                                paper_mean=stat[0] if stat else None,
                                paper_std=stat[1] if stat else None, bold=ours[key].bold)
                    )  # fmt: skip
            published = paper.PUBLISHED_BEST_TA.get(metric) if modality == "TA" else None
            if with_paper:
                row.append(Value(published))
            else:
                published = None
            if published is not None:
                csv_rows.append(csv_row("table4", modality, metric, "published_best",
                                        paper_mean=published))  # fmt: skip
            rows.append(row)
        sections.append(Section(METRIC_TITLES[metric], header, rows))
    section, test_csv = comparison_section(
        "table4",
        "t-tests: tuned vs untuned, and tuned Self vs tuned Cross",
        tests,
        lambda a, b: f"{pretty(a)} vs {pretty(b)}",
    )
    sections.append(section)
    csv_rows += test_csv
    setting_rows = []
    for modality in TABLE4_MODALITIES:
        for m in TABLE4_MODELS:
            text = tuned_settings(untuned, tuned, m, modality)
            setting_rows.append([f"{MODEL_LABELS[m]} {modality_label(modality)}", text])
            csv_rows.append(csv_row("table4-settings", modality, "settings", m, mean=text))
    title = "Tuned settings (from the tuned runs' result.json)"
    header = ["Cell", "Study, best trial, settings changed"]
    sections.append(Section(title, header, setting_rows))
    objectives = sorted({objective_name(study_objective(run)) for c in tuned.cells.values()
                         for run in c.runs.values()}) or [objective_name("val/uwa")]  # fmt: skip
    legend = [
        "Untuned: Table 1's runs (the paper's settings); tuned: experiment=tuned, the same 5-fold "
        "x 10-seed protocol with the best settings of the cell's Optuna study (objective: "
        f"{' and '.join(objectives)} only; docs/tuning.md). Bold: the best of our four values "
        "in the row.",
        *legend_marks(
            protocol, "on the higher of a tuned model and its untuned model", "the two"
        ),  # fmt: skip
    ]
    if with_paper:
        legend.append(
            "Published best (T+A): the best text+audio figures the paper quotes (0.560 WA, "
            "0.612 UWA; its reference [16]), which its bi-modal models stay below."
        )
    else:
        legend.append("The paper reports no results on this dataset: no reference columns.")
    missing = [f"untuned {line}" for line in missing_report(untuned)]
    missing += [f"tuned {line}" for line in missing_report(tuned)]
    notes = [f"Untuned: {n}" for n in provenance(untuned, allow_mixed_data)]
    notes += [f"Tuned: {n}" for n in provenance(tuned, allow_mixed_data)]
    return Report(
        name="table4",
        title="Table 4: bi-modal models untuned vs tuned for their own case, mean ± std over runs",
        sections=sections,
        legend=legend,
        notes=notes,
        missing=missing,
        csv_rows=csv_rows,
    )


def pretty(key: str) -> str:
    """``self_tuned`` -> ``Self tuned``; ``cross`` -> ``Cross``."""
    model = key.removesuffix("_tuned")
    return MODEL_LABELS[model] + (" tuned" if model != key else "")


def make_table4(
    untuned_dir: Path,
    out_dir: Path,
    protocol: Protocol,
    allow_mixed_data: bool = False,
    *,
    tuned: Path,
    metrics: Sequence[str] | None = None,
) -> Report:
    """Table 4 from the untuned runs under ``untuned_dir`` and the tuned runs under ``tuned``:
    printed, and written as ``<out_dir>/table4.md``, ``.tex`` and ``.csv``."""
    cells = table4_cells()
    untuned_runs = gather(untuned_dir, protocol, cells, allow_mixed_data)
    tuned_runs = gather(tuned, protocol, cells, allow_mixed_data)
    check_kinds(untuned_runs, tuned_runs)
    if not allow_mixed_data:
        check_same_data(untuned_runs, tuned_runs)
    report = build_table4(untuned_runs, tuned_runs, allow_mixed_data, metrics)
    publish(report, out_dir)
    return report
