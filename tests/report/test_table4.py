"""Table 4 from hand-made result.json files (untuned and tuned runs in two folders): cells,
p-values, marks and the tuned settings recomputed from the files; and the tuning table of a
hand-made Optuna study."""

from __future__ import annotations

import csv

import numpy as np
import optuna
import pytest
from scipy import stats

from selfcross.training import study as tuning_study
from tests.helpers.reportkit import (
    GRID,
    KEYS,
    expect_error,
    md_tables,
    mean_std,
    run_main,
    uwa_of,
    write_result,
)

WA_TITLE = "WA (weighted accuracy: mean per-class recall)"
UWA_TITLE = "UWA (unweighted accuracy: share classified correctly)"
TESTS_TITLE = "t-tests: tuned vs untuned, and tuned Self vs tuned Cross"
UNTUNED = {
    ("self", "TA"): [0.50, 0.53, 0.49, 0.52, 0.51, 0.48],
    ("cross", "TA"): [0.47, 0.49, 0.46, 0.50, 0.48, 0.45],
    ("self", "TV"): [0.60, 0.62, 0.64, 0.66, 0.68, 0.70],
}
TUNED = {
    ("self", "TA"): [0.56, 0.55, 0.57, 0.53, 0.58, 0.52],  # far above untuned: a star
    ("cross", "TA"): [0.48, 0.47, 0.49, 0.51, 0.46],  # no fold 2 seed 3; no difference
}
UNTUNED_CONFIG = {"model": {"optimizer": {"lr": 0.001}, "network": {"hidden": 60}}}


def tuned_config(model: str) -> dict:
    return {
        "model": {"optimizer": {"lr": 0.004},
                  "network": {"hidden": 90 if model == "self" else 60}},
        "tuned": {"study": f"multirun/tune-{model}-TA", "trial": 7, "value": 0.6,
                  "allow_unfinished": False},
    }  # fmt: skip


@pytest.fixture
def results(tmp_path):
    untuned, tuned = tmp_path / "untuned", tmp_path / "tuned"
    for (model, modality), wa in UNTUNED.items():
        for (fold, seed), value in zip(KEYS, wa, strict=False):
            write_result(untuned, model, modality, fold, seed, value,
                         uwa=value + 0.05 + 0.01 * seed, config=UNTUNED_CONFIG)  # fmt: skip
    for (model, modality), wa in TUNED.items():
        for (fold, seed), value in zip(KEYS, wa, strict=False):
            write_result(tuned, model, modality, fold, seed, value,
                         uwa=value + 0.05 + 0.01 * seed, config=tuned_config(model))  # fmt: skip
    return untuned, tuned


def fmt(p: float) -> str:
    return "<.0001" if p < 1e-4 else f"{p:.4f}".lstrip("0")


def build(untuned, tuned, out, *extra):
    run_main("table4", "--results", str(untuned), "--tuned", str(tuned), "--out", str(out),
             *GRID, *extra)  # fmt: skip
    return md_tables((out / "table4.md").read_text())


def test_cells_marks_and_reference_columns(results, tmp_path):
    tables = build(*results, tmp_path / "t")
    wa = {r["Modality"]: r for r in tables[WA_TITLE]}
    uwa = {r["Modality"]: r for r in tables[UWA_TITLE]}
    assert set(wa) == {"T+V", "T+A", "V+A"}
    ta = wa["T+A"]
    assert ta["Self (paper)"] == ".518 ± .031" and ta["Cross (paper)"] == ".501 ± .026"
    assert ta["Published best (T+A)"] == ".560" and uwa["T+A"]["Published best (T+A)"] == ".612"
    assert wa["T+V"]["Published best (T+A)"] == "-"
    # tuned Self is far above untuned Self (p < .05): the higher one, tuned, has the star and,
    # as the row's best of our four, the bold
    assert stats.ttest_ind(TUNED[("self", "TA")], UNTUNED[("self", "TA")]).pvalue < 0.05
    assert ta["Self tuned"] == f"**{mean_std(TUNED[('self', 'TA')])}**\\* (6)"
    assert ta["Self"] == mean_std(UNTUNED[("self", "TA")]) + " (6)"
    assert ta["Cross tuned"] == mean_std(TUNED[("cross", "TA")]) + " (5)†"
    assert uwa["T+A"]["Cross"] == mean_std(uwa_of(UNTUNED[("cross", "TA")])) + " (6)"
    assert wa["T+V"]["Self tuned"] == "-" and wa["V+A"]["Self"] == "-"


def test_p_values_are_recomputed_with_scipy(results, tmp_path):
    out = tmp_path / "t"
    tables = build(*results, out)
    tests = {(r["Comparison"], r["Modality"], r["Metric"]): r for r in tables[TESTS_TITLE]}
    st, s = TUNED[("self", "TA")], UNTUNED[("self", "TA")]
    ct, c = TUNED[("cross", "TA")], UNTUNED[("cross", "TA")]
    row = tests[("Self tuned vs Self", "T+A", "WA")]
    assert row["p t-test"] == fmt(stats.ttest_ind(st, s).pvalue) + "*"
    assert row["p paired"] == fmt(stats.ttest_rel(st, s).pvalue)
    row = tests[("Cross tuned vs Cross", "T+A", "UWA")]  # the five matched (fold, seed) pairs
    paired = stats.ttest_rel(uwa_of(ct, KEYS[:5]), uwa_of(c)[:5]).pvalue
    assert row["p paired"] == f"{paired:.4f}".lstrip("0") and row["pairs"] == "5"
    assert row["p t-test"] == f"{stats.ttest_ind(uwa_of(ct, KEYS[:5]), uwa_of(c)).pvalue:.4f}"[1:]
    row = tests[("Self tuned vs Cross tuned", "T+A", "WA")]
    assert row["p t-test"] == fmt(stats.ttest_ind(st, ct).pvalue) + "*"
    assert tests[("Self tuned vs Self", "T+V", "WA")]["p t-test"] == "-"  # no tuned runs
    with (out / "table4.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    tests_csv = {(r["model"], r["compared_with"], r["modality"], r["metric"]): r
                 for r in rows if r["table"] == "table4-test"}  # fmt: skip
    got = float(tests_csv[("self_tuned", "self", "TA", "wa")]["p_ttest_ind"])
    assert got == pytest.approx(stats.ttest_ind(st, s).pvalue)
    cells = {(r["model"], r["modality"], r["metric"]): r for r in rows if r["table"] == "table4"}
    assert float(cells[("cross_tuned", "TA", "wa")]["mean"]) == pytest.approx(np.mean(ct))
    assert cells[("cross_tuned", "TA", "wa")]["missing_runs"] == "f2s3"
    assert float(cells[("self", "TA", "uwa")]["paper_mean"]) == 0.574
    assert float(cells[("published_best", "TA", "uwa")]["paper_mean"]) == 0.612
    for ext in ("md", "tex", "csv"):
        assert (out / f"table4.{ext}").is_file()


def test_tuned_settings_and_missing_runs_are_reported(results, tmp_path):
    out = tmp_path / "t"
    tables = build(*results, out)
    settings = {r["Cell"]: r["Study, best trial, settings changed"]
                for r in tables["Tuned settings (from the tuned runs' result.json)"]}  # fmt: skip
    assert settings["Self T+A"] == (
        "study multirun/tune-self-TA, trial 7 (validation UWA 0.600): "
        "model.network.hidden 60 -> 90, model.optimizer.lr 0.001 -> 0.004"
    )
    assert settings["Cross T+A"].endswith(": model.optimizer.lr 0.001 -> 0.004")
    assert settings["Self T+V"] == "-"
    text = (out / "table4.md").read_text()
    assert "- tuned Cross T+A: 5 of 6 runs; missing fold 2 seed 3" in text
    assert "- tuned Self T+V: 0 of 6 runs; missing all runs" in text
    assert "- untuned Cross T+V: 0 of 6 runs; missing all runs" in text


def test_runs_of_the_wrong_kind_or_other_data_are_refused(results, tmp_path, capsys):
    untuned, tuned = results
    line = expect_error(capsys, "table4", "--results", str(tuned), "--tuned", str(tuned), *GRID)
    assert "a tuned run (tuned.study set) in --results" in line
    line = expect_error(capsys, "table4", "--results", str(untuned), "--tuned", str(untuned),
                        *GRID)  # fmt: skip
    assert "not a tuned run in --tuned" in line
    write_result(tuned, "self", "VA", 1, 1, 0.5, config=tuned_config("self"),
                 data={"fingerprint": "other"})  # fmt: skip
    line = expect_error(capsys, "table4", "--results", str(untuned), "--tuned", str(tuned), *GRID)
    assert "fold 1 data fingerprint other differs" in line


def test_the_tuning_table_of_a_study(tmp_path):
    folder = tmp_path / "tune-synthetic-small-cross-TA"
    folder.mkdir()
    storage = f"sqlite:///{folder / tuning_study.STUDY_DB}"
    study = optuna.create_study(storage=storage, study_name=folder.name, direction="maximize")
    identity = {"model": "cross", "modality": "TA", "folds": [1, 2], "seed": 1,
                "sampler_seed": 0, "n_startup_trials": 10}  # fmt: skip
    study.set_user_attr("identity", identity)
    study.set_user_attr("untuned", {"model.optimizer.lr": 0.001, "data.batch_size": 32})
    lr = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    batch = optuna.distributions.CategoricalDistribution([16, 32, 64])
    rng = np.random.default_rng(0)
    for _ in range(12):
        params = {"model.optimizer.lr": float(10 ** rng.uniform(-4, -2)),
                  "data.batch_size": int(rng.choice([16, 32, 64]))}  # fmt: skip
        value = 0.4 + 30 * params["model.optimizer.lr"]  # the learning rate decides
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={"model.optimizer.lr": lr, "data.batch_size": batch},
            value=value, user_attrs={"values": params, "fold_scores": {"1": value, "2": value}},
        ))  # fmt: skip
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED, user_attrs={"invalid": "data.batch_size=0: bad"}
    ))  # fmt: skip
    out = tmp_path / "t"
    run_main("tuning", "--results", str(folder), "--out", str(out))
    tables = md_tables((out / "tuning-cross-TA.md").read_text())
    best = max(study.get_trials(states=[optuna.trial.TrialState.COMPLETE]), key=lambda t: t.value)
    trials = tables["Trials (value: mean best-validation UWA over the tuning folds)"]
    assert len(trials) == 13 and trials[12]["State"] == "pruned"
    assert trials[12]["Note"] == "data.batch_size=0: bad"
    assert trials[best.number]["Value"].startswith("**")
    title = next(t for t in tables if t.startswith(f"Best trial {best.number}:"))
    rows = {r["Setting"]: r for r in tables[title]}
    assert rows["model.optimizer.lr"]["Tuned"] == f"{best.params['model.optimizer.lr']:.4g}"
    assert rows["data.batch_size"]["Untuned (base configuration)"] == "32"
    importances = {r["Parameter"]: float(r["Importance"])
                   for r in tables["Parameter importances"]}  # fmt: skip
    assert importances["model.optimizer.lr"] > importances["data.batch_size"]
    with (out / "tuning-cross-TA.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    kinds = {r["kind"] for r in rows}
    assert kinds == {"trial", "setting", "best", "importance"}
    assert sum(r["kind"] == "trial" for r in rows) == 13
    # every trial, setting, best setting and importance, each where it belongs in the CSV
    for t in study.get_trials():
        (row,) = [r for r in rows if r["kind"] == "trial" and r["trial"] == str(t.number)]
        assert row["state"] == t.state.name.lower()
        assert row["value"] == ("" if t.value is None else str(t.value))
        settings = {r["param"]: r["setting"] for r in rows
                    if r["kind"] == "setting" and r["trial"] == str(t.number)}  # fmt: skip
        assert settings == {k: str(v) for k, v in t.user_attrs.get("values", {}).items()}
    best_rows = {r["param"]: r for r in rows if r["kind"] == "best"}
    assert {r["trial"] for r in best_rows.values()} == {str(best.number)}
    assert {r["value"] for r in best_rows.values()} == {str(best.value)}
    assert best_rows["model.optimizer.lr"]["setting"] == str(best.params["model.optimizer.lr"])
    assert best_rows["data.batch_size"]["untuned"] == "32"
    assert {r["param"]: float(r["importance"]) for r in rows
            if r["kind"] == "importance"} == pytest.approx(importances, abs=5e-4)  # fmt: skip
    assert (
        "Cell: Cross T+A; tuning folds [1, 2], training seed 1; TPE sampler seed 0, 10 random "
        "startup trials" in (out / "tuning-cross-TA.md").read_text()
    )


def test_the_earliest_of_trials_with_the_best_value_is_the_best(tmp_path):
    folder = tmp_path / "tune-synthetic-small-self-TV"
    folder.mkdir()
    study = optuna.create_study(storage=f"sqlite:///{folder / tuning_study.STUDY_DB}",
                                study_name=folder.name, direction="maximize")  # fmt: skip
    study.set_user_attr("identity", {"model": "self", "modality": "TV"})
    lr = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    for value, rate in ((0.5, 0.001), (0.7, 0.002), (0.7, 0.003), (0.6, 0.004)):
        study.add_trial(optuna.trial.create_trial(
            params={"model.optimizer.lr": rate}, distributions={"model.optimizer.lr": lr},
            value=value, user_attrs={"values": {"model.optimizer.lr": rate}},
        ))  # fmt: skip
    out = tmp_path / "t"
    run_main("tuning", "--results", str(folder), "--out", str(out))
    tables = md_tables((out / "tuning-self-TV.md").read_text())
    assert any(t.startswith("Best trial 1: ") for t in tables), list(tables)


def test_tuning_runs_are_never_tabulated(tmp_path):
    from selfcross.analysis.results import load_results

    write_result(tmp_path, "cross", "TA", 1, 1, 0.5)
    write_result(tmp_path, "cross", "TA", 1, 2, 0.5, folder="trials/000/fold1", test_wa=None,
                 test_uwa=None, config={"run_test": False})  # fmt: skip
    runs, skipped = load_results(tmp_path)
    assert [r.seed for r in runs] == [1]
    assert [s.problem for s in skipped] == [
        "a tuning run (run_test=false): it has no test metrics"
    ]


def test_no_paper_or_published_columns_for_a_dataset_the_paper_did_not_use(
    results, tmp_path, monkeypatch
):
    from selfcross.report import paper

    monkeypatch.setattr(paper, "reported", lambda datasets: False)  # e.g. MELD runs
    tables = build(*results, tmp_path / "t")
    ta = {r["Modality"]: r for r in tables[WA_TITLE]}["T+A"]
    assert list(ta) == ["Modality", "Self", "Self tuned", "Cross", "Cross tuned"]
    assert ta["Self tuned"] == f"**{mean_std(TUNED[('self', 'TA')])}**\\* (6)"
    body = (tmp_path / "t" / "table4.md").read_text()
    assert ".560" not in body and "(paper)" not in body and "no results on this dataset" in body
    rows = list(csv.DictReader((tmp_path / "t" / "table4.csv").open()))
    assert rows and all(r["paper_mean"] == "" for r in rows)
    assert not any(r["model"] == "published_best" for r in rows)


def cell_config(model: str, modality: str, lr: float, **tuned) -> dict:
    """A run's configuration as a real run records it: its own model and modality keys."""
    fusion = "cross" if model == "cross" else "self"
    config = {"model": {"name": model, "optimizer": {"lr": lr},
                        "network": {"fusion": fusion, "hidden": 60}},
              "modality": {"name": modality, "modalities": list(modality)}}  # fmt: skip
    if tuned:
        config["tuned"] = {"study": f"multirun/tune-{model}-{modality}", "trial": 3,
                           "value": 0.6, **tuned}  # fmt: skip
    return config


def test_what_tuning_changed_is_read_against_the_cells_own_untuned_runs(tmp_path):
    """Each cell's tuned settings are compared with the untuned runs of the same model and
    modality: the other model's (Cross against Self) or another modality's untuned runs would
    add model.name, fusion or modality to the column, and the tuned runs themselves none."""
    untuned, tuned = tmp_path / "untuned", tmp_path / "tuned"
    lrs = {("self", "TA"): 0.002, ("cross", "TA"): 0.001, ("self", "TV"): 0.003,
           ("cross", "TV"): 0.0015}  # fmt: skip
    for (model, modality), lr in lrs.items():
        for fold, seed in KEYS:
            write_result(untuned, model, modality, fold, seed, 0.5,
                         config=cell_config(model, modality, lr))  # fmt: skip
    for model in ("self", "cross"):
        config = cell_config(model, "TA", 0.004, allow_unfinished=False)
        for fold, seed in KEYS:
            write_result(tuned, model, "TA", fold, seed, 0.55, config=config)
    tables = build(untuned, tuned, tmp_path / "t")
    settings = {r["Cell"]: r["Study, best trial, settings changed"]
                for r in tables["Tuned settings (from the tuned runs' result.json)"]}  # fmt: skip
    assert settings["Cross T+A"] == (
        "study multirun/tune-cross-TA, trial 3 (validation UWA 0.600): "
        "model.optimizer.lr 0.001 -> 0.004"
    )
    assert settings["Self T+A"] == (
        "study multirun/tune-self-TA, trial 3 (validation UWA 0.600): "
        "model.optimizer.lr 0.002 -> 0.004"
    )


def test_an_untuned_model_significantly_above_its_tuned_one_carries_the_star(results, tmp_path):
    """Tuning can make a cell worse: the star marks the higher of the pair, here the untuned
    Self on T+V. The CSV keeps the paper's std beside its mean and each cell's tuned settings
    as the Markdown shows them."""
    untuned, tuned = results
    worse = [0.50, 0.52, 0.51, 0.53, 0.50, 0.52]
    for (fold, seed), value in zip(KEYS, worse, strict=True):
        write_result(tuned, "self", "TV", fold, seed, value, config=tuned_config("self"))
    out = tmp_path / "t"
    tv = {r["Modality"]: r for r in build(untuned, tuned, out)[WA_TITLE]}["T+V"]
    assert stats.ttest_ind(worse, UNTUNED[("self", "TV")]).pvalue < 0.05
    assert tv["Self"] == f"**{mean_std(UNTUNED[('self', 'TV')])}**\\* (6)"
    assert tv["Self tuned"] == f"{mean_std(worse)} (6)"
    with (out / "table4.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    cell = next(r for r in rows if (r["table"], r["modality"], r["metric"], r["model"])
                == ("table4", "TA", "wa", "self"))  # fmt: skip
    assert (float(cell["paper_mean"]), float(cell["paper_std"])) == (0.518, 0.031)
    settings = {r["model"]: r["mean"] for r in rows
                if r["table"] == "table4-settings" and r["modality"] == "TA"}  # fmt: skip
    assert settings["self"] == (
        "study multirun/tune-self-TA, trial 7 (validation UWA 0.600): "
        "model.network.hidden 60 -> 90, model.optimizer.lr 0.001 -> 0.004"
    )


def test_metrics_option_chooses_the_blocks_and_their_tests(results, tmp_path):
    """``--metrics wf1``: one block, weighted F1 (the records' test_wf1, here their WA), with
    no paper value for it, and t-tests on it alone."""
    out = tmp_path / "m"
    tables = build(*results, out, "--metrics", "wf1")
    title = "WF1 (weighted F1: per-class F1 weighted by class support)"
    assert WA_TITLE not in tables and UWA_TITLE not in tables
    ta = {r["Modality"]: r for r in tables[title]}["T+A"]
    assert ta["Self tuned"] == f"**{mean_std(TUNED[('self', 'TA')])}**\\* (6)"
    assert ta["Self (paper)"] == "-" and ta["Published best (T+A)"] == "-"
    assert {r["Metric"] for r in tables[TESTS_TITLE]} == {"WF1"}
