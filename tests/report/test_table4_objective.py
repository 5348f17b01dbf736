"""Table 4 names the validation metric each study maximised (best.json's ``objective``; MELD's
studies maximise validation weighted F1), not always the paper's validation UWA."""

from __future__ import annotations

import json

import pytest

from tests.helpers.reportkit import GRID, KEYS, md_tables, run_main, write_result

SETTINGS = "Tuned settings (from the tuned runs' result.json)"
SETTINGS_COLUMN = "Study, best trial, settings changed"


def config(model: str, metric: str, study: str | None = None) -> dict:
    cfg = {"model": {"optimizer": {"lr": 0.001}}, "monitor": {"metric": metric, "mode": "max"}}
    if study is not None:
        cfg["model"]["optimizer"]["lr"] = 0.004
        cfg["tuned"] = {"study": study, "trial": 4, "value": 0.612, "allow_unfinished": False}
    return cfg


def table(tmp_path, monitor: str, study_for=lambda model: f"multirun/tune-{model}-TA"):
    untuned, tuned = tmp_path / "untuned", tmp_path / "tuned"
    for model in ("self", "cross"):
        for fold, seed in KEYS:
            write_result(untuned, model, "TA", fold, seed, 0.5, config=config(model, monitor))
            write_result(tuned, model, "TA", fold, seed, 0.55,
                         config=config(model, monitor, study_for(model)))  # fmt: skip
    out = tmp_path / "t"
    run_main("table4", "--results", str(untuned), "--tuned", str(tuned), "--out", str(out),
             *GRID)  # fmt: skip
    text = (out / "table4.md").read_text()
    settings = {r["Cell"]: r[SETTINGS_COLUMN] for r in md_tables(text)[SETTINGS]}
    return settings, text


@pytest.mark.parametrize(
    "monitor, name", [("val/wf1", "validation WF1"), ("val/uwa", "validation UWA")]
)
def test_the_studys_own_metric_is_named(tmp_path, monitor, name):
    """Without the study folder at hand: the tuned runs' monitor.metric (the objective)."""
    settings, text = table(tmp_path, monitor)
    assert settings["Self T+A"] == (
        f"study multirun/tune-self-TA, trial 4 ({name} 0.612): model.optimizer.lr 0.001 -> 0.004"
    )
    assert f"(objective: {name} only; docs/tuning.md)" in text
    other = "validation UWA" if name != "validation UWA" else "validation WF1"
    assert other not in text


def test_best_json_names_the_objective_when_the_study_is_at_hand(tmp_path):
    """A study's best.json says which metric it maximised; it wins over the runs' monitor."""
    studies = {}
    for model in ("self", "cross"):
        folder = tmp_path / "studies" / f"tune-{model}-TA"
        folder.mkdir(parents=True)
        objective = "val/wf1" if model == "self" else "val/f1"
        (folder / "best.json").write_text(json.dumps({"objective": objective, "value": 0.612}))
        studies[model] = str(folder)
    settings, text = table(tmp_path, "val/uwa", lambda model: studies[model])
    assert "(validation WF1 0.612)" in settings["Self T+A"]
    assert "(validation MF1 0.612)" in settings["Cross T+A"]
    assert "(objective: validation MF1 and validation WF1 only; docs/tuning.md)" in text
