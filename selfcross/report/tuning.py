"""The tuning table of one study (``python -m selfcross.tables tuning --results <study dir>``):
every trial, the best settings beside the untuned ones, and Optuna's parameter importances.

The study is read from ``<study dir>/study.db`` (selfcross.training.study) or the shared storage
its ``best.json`` records (selfcross.training.storage); the values are the
trials' objective, the mean best-validation UWA over the tuning folds (no test split is ever
read while tuning). Importances are Optuna's default evaluator, PED-ANOVA, which needs no
extra package and handles the per-width head counts; they are computed over the complete
trials and are only indicative with few of them.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from selfcross.errors import DataError
from selfcross.report.render import (
    Report,
    Section,
    Value,
    csv_text,
    format_rate,
    make_out_dir,
    print_report,
    say_written,
    to_latex,
    to_markdown,
)
from selfcross.report.select import MODEL_LABELS, modality_label
from selfcross.training.storage import open_shared, parse_storage
from selfcross.training.study import STUDY_DB, interrupted, n_counted, open_storage
from selfcross.training.tuned import BEST_FILE
from selfcross.utils import atomic

CSV_FIELDS = ("kind", "trial", "state", "value", "param", "setting", "untuned", "importance",
              "note")  # fmt: skip
"""Rows of tuning-<cell>.csv: ``trial`` (state, value, note), ``setting`` (one per trial and
parameter), ``best`` (the best trial's settings beside the untuned ones), ``importance``."""


def load_study(directory: Path, storage: str | None = None):
    """The Optuna study of the study folder ``directory``: its ``study.db``, or the shared
    storage ``storage`` (a URL with credentials) or, by default, the one its ``best.json``
    records (without credentials). DataError if there is none; ConfigError naming the storage
    if it cannot be reached."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = Path(directory) / STUDY_DB
    recorded = _recorded_storage(Path(directory))
    if storage is None and recorded is None:
        if not db.is_file():
            raise DataError(directory, f"no {STUDY_DB}: not a study folder of selfcross.tune")
        opened, names = open_storage(db)
        if len(names) != 1:
            raise DataError(db, f"expected one study, found {len(names)}")
        return optuna.load_study(study_name=names[0], storage=opened)
    setting = parse_storage(storage or recorded["storage"])
    opened, names = open_shared(setting, heartbeat_s=60, grace_s=180)
    name = (recorded or {}).get("study_name") or Path(directory).name
    if name not in names:
        raise DataError(directory, f"no study {name} in tune.storage={setting.masked}")
    return optuna.load_study(study_name=name, storage=opened)


def _recorded_storage(directory: Path) -> dict | None:
    """The shared storage ``best.json`` records (``storage``, ``study_name``), or None."""
    import json

    try:
        best = json.loads((directory / BEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    return best if isinstance(best, dict) and isinstance(best.get("storage"), str) else None


def shown(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def trial_note(trial, retried: set[int]) -> str:
    attrs = trial.user_attrs
    if trial.number in retried:
        return "interrupted; retried"
    if "retry_of" in attrs:
        return f"retries trial {attrs['retry_of']}"
    return str(attrs.get("invalid") or attrs.get("error") or "")


def importances(study) -> tuple[dict[str, float], str]:
    """Optuna's parameter importances (PED-ANOVA) and a note; empty with the reason when they
    cannot be computed (too few complete trials, a constant objective)."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}, f"not computed: {len(complete)} complete trial(s), at least 2 needed"
    if len({t.value for t in complete}) == 1:
        return {}, "not computed: every complete trial has the same value"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError) as err:
        return {}, f"not computed: {str(err).splitlines()[0]}"
    result = {k: float(v) for k, v in result.items() if math.isfinite(v)}
    return result, (
        f"PED-ANOVA (Optuna's default evaluator) over {len(complete)} complete trials; "
        "normalised to sum 1; indicative only with few trials"
    )


def build_tuning(study, directory: Path) -> Report:
    from optuna.trial import TrialState

    ident = study.user_attrs.get("identity") or {}
    model, modality = ident.get("model", "?"), ident.get("modality", "?")
    metric = str(ident.get("objective", "val/uwa")).removeprefix("val/").upper()
    trials = study.get_trials(deepcopy=False)
    retried = interrupted(trials)
    settings_keys: list[str] = []
    for t in trials:
        for key in t.user_attrs.get("values", {}):
            if key not in settings_keys:
                settings_keys.append(key)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    rows, csv_rows = [], []
    for t in trials:
        values = t.user_attrs.get("values", {})
        value = Value(t.value, bold=best is not None and t.number == best.number)
        note = trial_note(t, retried)
        rows.append([str(t.number), t.state.name.lower(), value,
                     *(shown(values.get(k)) for k in settings_keys), note])  # fmt: skip
        csv_rows.append(dict(kind="trial", trial=t.number, state=t.state.name.lower(),
                             value=t.value, note=note))  # fmt: skip
        for key, setting in values.items():
            csv_rows.append(dict(kind="setting", trial=t.number, param=key, setting=setting))
    sections = [
        Section(
            f"Trials (value: mean best-validation {metric} over the tuning folds)",
            ["Trial", "State", "Value", *settings_keys, "Note"],
            rows,
        ),  # fmt: skip
    ]
    untuned = study.user_attrs.get("untuned", {})
    if best is not None:
        best_rows = []
        for key in settings_keys:
            setting = best.user_attrs.get("values", {}).get(key)
            best_rows.append([key, shown(setting), shown(untuned.get(key))])
            csv_rows.append(dict(kind="best", trial=best.number, value=best.value, param=key,
                                 setting=setting, untuned=untuned.get(key)))  # fmt: skip
        folds = best.user_attrs.get("fold_scores") or {}
        per_fold = ", ".join(f"fold {f}: {format_rate(v)}" for f, v in folds.items())
        sections.append(
            Section(
                f"Best trial {best.number}: {format_rate(best.value)} ({per_fold})",
                ["Setting", "Tuned", "Untuned (base configuration)"],
                best_rows,
            )  # fmt: skip
        )
    ranked, importance_note = importances(study)
    if ranked:
        sections.append(
            Section(
                "Parameter importances",
                ["Parameter", "Importance"],
                [[k, f"{v:.3f}"] for k, v in ranked.items()],
            )  # fmt: skip
        )
        for key, value in ranked.items():
            csv_rows.append(dict(kind="importance", param=key, importance=value))
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    legend = [
        f"Value: the objective, mean over the tuning folds of the best validation {metric} "
        "(the runs' selection metric; the paper's UWA is accuracy) of one run per fold; the "
        "test split is never evaluated while tuning. Bold: the best trial.",
        "pruned: the trial's configuration is invalid (Note says why); fail: a run failed "
        "(Note); interrupted trials are retried with the same settings in the same folder.",
        f"Importances: {importance_note}.",
    ]
    recorded = _recorded_storage(directory) or {}
    where = directory / STUDY_DB
    if recorded:
        where = f"{recorded['storage']}, study {recorded.get('study_name')}"
    n_trials, counted = recorded.get("n_trials"), n_counted(trials)
    if isinstance(n_trials, int) and counted > n_trials:  # parallel workers finish theirs
        legend.append(
            f"{counted - n_trials} trial(s) beyond n_trials={n_trials}: with N workers up to "
            "N - 1 trials are under way when the study reaches n_trials, and they finish."
        )
    notes = [
        f"Study: {where} ({len(trials)} trials: {tally})",
        f"Cell: {MODEL_LABELS.get(model, model)} {modality_label(modality)}; tuning folds "
        f"{ident.get('folds')}, training seed {ident.get('seed')}; TPE sampler seed "
        f"{ident.get('sampler_seed')}, {ident.get('n_startup_trials')} random startup trials",
    ]
    return Report(
        name=f"tuning-{model}-{modality}",
        title=f"Tuning {MODEL_LABELS.get(model, model)} on {modality_label(modality)}",
        sections=sections,
        legend=legend,
        notes=notes,
        missing=[],
        csv_rows=csv_rows,
    )


def save_tuning(report: Report, out_dir: Path) -> list[Path]:
    make_out_dir(out_dir)
    md, tex, table = (out_dir / f"{report.name}.{ext}" for ext in ("md", "tex", "csv"))
    no_cells = "## Missing runs\n\nNone: every cell is complete.\n\n"  # a study has no cells
    rows = ({k: ("" if v is None else v) for k, v in r.items()} for r in report.csv_rows)
    return atomic.write_texts(
        {
            md: to_markdown(report).replace(no_cells, ""),
            tex: to_latex(report),
            table: csv_text(CSV_FIELDS, rows),
        },
        newline="",
    )


def make_tuning(directory: Path, out_dir: Path, storage: str | None = None) -> Report:
    """The tuning table of the study in ``directory`` (in ``storage``, when given):
    printed, and written as ``<out_dir>/tuning-<model>-<modality>.md``, ``.tex`` and ``.csv``."""
    report = build_tuning(load_study(directory, storage), Path(directory))
    print_report(report)
    say_written(save_tuning(report, out_dir))
    return report
