"""What a study stores and prints, read back the way its readers read it: the direction Optuna
optimises, the attributes Table 4, the tuning table and ``experiment=tuned`` read (data,
untuned values, each trial's settings), the sampler of each trial, the line each trial prints,
``best.json`` after a stop, and the refusal of a study of other settings naming what differs.

Written from the survivors of the mutation run of ``training/tuning.py`` (docs/mutation.md,
run 9): each test fails with the mutant it names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
from optuna.study import StudyDirection

from selfcross.errors import ConfigError
from selfcross.training import study as stored
from selfcross.training import tuning
from tests.helpers.tunekit import fake_run, only_space, tune_overrides

LR = only_space("{model.optimizer.lr: {type: categorical, choices: [0.001, 0.002, 0.003]}}")


def score(cfg) -> float:
    return round(cfg.model.optimizer.lr * 100, 6)


def load(outcome) -> optuna.Study:
    db = outcome.directory / stored.STUDY_DB
    return optuna.load_study(study_name=outcome.directory.name, storage=f"sqlite:///{db}")


def test_a_study_maximises_and_keeps_what_its_readers_read(tmp_path, data_dir, capsys):
    """Fails with ``direction`` dropped (Optuna minimises), with the ``data``, ``untuned`` or
    ``values`` attribute renamed, with the trial line's counts or value changed."""
    overrides = tune_overrides(tmp_path, data_dir, "tune.n_trials=3", *LR)
    outcome = tuning.run_study(overrides, run=fake_run(score))
    study = load(outcome)
    assert study.direction == StudyDirection.MAXIMIZE
    root = str((data_dir / "synthetic" / "tiny").resolve())
    assert study.user_attrs["data"] == {"name": "synthetic", "preset": "tiny", "root": root}
    assert study.user_attrs["untuned"] == {"model.optimizer.lr": 0.001}
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("trial ")]
    assert len(lines) == 3
    for k, (trial, line) in enumerate(zip(study.trials, lines, strict=True)):
        lr = trial.params["model.optimizer.lr"]
        assert trial.user_attrs["values"] == {"model.optimizer.lr": lr}
        assert line == f"trial {k} ({k + 1} of 3): {lr * 100:.4f}  model.optimizer.lr={lr}"
    best = json.loads((outcome.directory / "best.json").read_text())
    assert best["data"] == {**study.user_attrs["data"], "fingerprints": {"1": "f-1"}}
    assert best["settings"] == {"model.optimizer.lr": max(t.params["model.optimizer.lr"]
                                                          for t in study.trials)}  # fmt: skip


def test_each_trial_has_its_own_seeded_sampler_with_the_configured_start(
    tmp_path, data_dir, monkeypatch
):
    """Fails with ``n_startup_trials`` not passed (TPE's own 10) or the seed not advancing."""
    made = []
    real = optuna.samplers.TPESampler

    def sampler(**kwargs):
        made.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(optuna.samplers, "TPESampler", sampler)
    sampling = ["tune.sampler.seed=5", "tune.sampler.n_startup_trials=2"]
    overrides = tune_overrides(tmp_path, data_dir, "tune.n_trials=3", *LR, *sampling)
    tuning.run_study(overrides, run=fake_run(score))
    ours = [kw for kw in made if kw]  # create_study makes a default one first
    assert ours == [{"seed": 5 + k, "n_startup_trials": 2} for k in range(3)]


def test_a_stopped_study_has_a_best_json_of_its_trials_so_far(tmp_path, data_dir):
    """best.json is rewritten after every trial: a study stopped after its second trial has
    one naming the best of the two and the study's size. Fails with the size left out."""
    run, calls = fake_run(score), []

    def stopping(cfg):
        calls.append(cfg)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return run(cfg)

    overrides = tune_overrides(tmp_path, data_dir, "tune.n_trials=5", *LR)
    with pytest.raises(KeyboardInterrupt):
        tuning.run_study(overrides, run=stopping)
    best = json.loads((tmp_path / "study" / "best.json").read_text())
    lrs = [c.model.optimizer.lr for c in calls[:2]]
    assert (best["n_trials"], best["n_finished"], best["n_complete"]) == (5, 2, 2)
    assert best["value"] == pytest.approx(max(lrs) * 100)


def test_a_renamed_study_folder_continues_its_study(tmp_path, data_dir):
    """The database of a renamed folder holds one study under the old name: it is continued,
    not started again beside it. Fails when the folder's name is taken instead."""
    overrides = tune_overrides(tmp_path, data_dir, "tune.n_trials=1", *LR)
    tuning.run_study(overrides, run=fake_run(score))
    (tmp_path / "study").rename(tmp_path / "renamed")
    moved = f"hydra.sweep.dir={tmp_path / 'renamed'}"
    again = [moved if o.startswith("hydra.sweep.dir=") else o for o in overrides]
    outcome = tuning.run_study([*again, "tune.n_trials=2"], run=fake_run(score))
    assert outcome.ran == 1
    db = tmp_path / "renamed" / stored.STUDY_DB
    assert optuna.get_all_study_names(f"sqlite:///{db}") == ["study"]


def test_a_refused_study_names_each_differing_setting_with_both_values():
    before = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "only_before": 0}
    now = {"a": 9, "b": 8, "c": 7, "d": 6, "e": 5, "only_now": 1}
    stored_ident = {"base_config_hash": "x", "folds": [1], "seed": 0}
    ident = {"base_config_hash": "y", "folds": [1, 2], "seed": 0}
    assert tuning.differing(stored_ident, ident, before, now) == [
        "folds", "a: 1 vs 9", "b: 2 vs 8", "c: 3 vs 7", "d: 4 vs 6", "2 more",
    ]  # fmt: skip
    few = tuning.differing(stored_ident, ident, {"a": 1, "only_before": 0}, {"a": 1, "n": 2})
    assert few == ["folds", "n: <absent> vs 2", "only_before: 0 vs <absent>"]
    same = tuning.differing(stored_ident, ident, {"a": 1}, {"a": 1})
    assert same == ["folds", "base_config_hash"]  # the base settings were not the difference
    assert tuning.differing(stored_ident, ident, None, now) == ["base_config_hash", "folds"]


def test_a_space_override_that_cannot_be_parsed_is_named_with_the_parsers_reason(make_cfg):
    line = "tune.space={model.optimizer.lr: {type: float, low: [0.1}}"
    with pytest.raises(ConfigError) as refused:
        tuning.merge_space(make_cfg("experiment=tune"), line)
    message = str(refused.value)
    assert message.startswith(f"cannot parse {line!r}: ") and len(message.splitlines()) == 1
    assert re.search(r"mismatched input|no viable alternative|extraneous input", message)


@pytest.mark.parametrize(
    ("outcome", "state", "attr", "reason"),
    [
        ("nan", "FAIL", "error", "fold 1: no val/uwa (done)"),
        ("no record", "FAIL", "error", "fold 1: no val/uwa (skipped)"),
        (RuntimeError("loss is nan\nat step 3"), "FAIL", "error", "fold 1: loss is nan"),
        (RuntimeError(), "FAIL", "error", "fold 1: RuntimeError"),
        (
            ConfigError("model.network.hidden=7: not a multiple of the heads"),
            "PRUNED",
            "invalid",
            "model.network.hidden=7: not a multiple of the heads",
        ),
    ],
    ids=["nan-score", "no-record", "crash", "crash-without-message", "invalid"],
)
def test_a_trial_without_a_score_fails_or_is_pruned_with_its_reason(
    tmp_path, data_dir, outcome, state, attr, reason
):
    """What the tuning table shows in its reason column; a NaN score never completes a trial
    (fails with 'or' made 'and'), a run without a record fails it rather than the study."""
    from types import SimpleNamespace

    from optuna.trial import TrialState

    from selfcross.training.experiment import RunOutcome

    def run(cfg):
        path = Path(cfg.paths.output_dir) / "result.json"
        if outcome == "nan":
            record = SimpleNamespace(val_uwa=float("nan"), data=SimpleNamespace(fingerprint="f"))
            return RunOutcome("done", record, path)
        if outcome == "no record":
            return RunOutcome("skipped", None, path)
        raise outcome

    result = tuning.run_study(tune_overrides(tmp_path, data_dir, "tune.n_trials=1", *LR),
                              run=run)  # fmt: skip
    (trial,) = load(result).trials
    assert trial.state == TrialState[state] and trial.user_attrs[attr] == reason
    assert result.best is None and not (result.directory / "best.json").exists()


def test_a_trial_whose_settings_cannot_be_drawn_is_pruned_with_the_reason(tmp_path, data_dir):
    from optuna.trial import TrialState

    space = only_space("{model.network.hidden: {type: categorical, choices: [7, 8]}, "
                       "model.network.num_heads: {type: heads, choices: [4, 16]}}")  # fmt: skip
    result = tuning.run_study(tune_overrides(tmp_path, data_dir, "tune.n_trials=4", *space),
                              run=fake_run(score))  # fmt: skip
    trials = load(result).trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.params["model.network.hidden"] == 7 for t in pruned)
    assert {t.user_attrs["invalid"] for t in pruned} == {
        "tune.space.model.network.num_heads: none of [4, 16] divides the attention width 14 "
        "(2 x model.network.hidden)"
    }


def test_a_study_held_by_another_process_is_refused_at_once(tmp_path, data_dir):
    """Fails with the lock waited for (the call would block) or its message emptied."""
    from filelock import FileLock

    folder = tmp_path / "study"
    folder.mkdir()
    overrides = tune_overrides(tmp_path, data_dir, "tune.n_trials=1", *LR)
    with FileLock(folder / stored.LOCK_FILE):
        with pytest.raises(ConfigError) as refused:
            tuning.run_study(overrides, run=fake_run(score))
    assert str(refused.value) == (
        f"{folder}: the study is running in another process ({folder / stored.LOCK_FILE} is held)"
    )
