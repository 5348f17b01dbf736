"""Per-case tuning (selfcross.training.tuning, python -m selfcross.tune) on the tiny synthetic
preset: one fold, one epoch per run, two or three trials per study."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from selfcross.config import compose
from selfcross.data.datamodule import IemocapDataModule
from selfcross.errors import ConfigError
from selfcross.training import experiment, search, tuning
from selfcross.training import study as stored
from selfcross.training import tuned as tuned_settings
from selfcross.training.record import read_record
from tests.conftest import run_cli
from tests.helpers.tunekit import Calls, load, only_space, tune_overrides, write_best


def test_an_interrupted_study_continues_where_it_stopped(tmp_path, data_dir):
    overrides = tune_overrides(tmp_path, data_dir, "tune.n_trials=3")
    first = Calls(stop_after=1)  # trial 0 completes; trial 1 is stopped after its run
    with pytest.raises(KeyboardInterrupt):
        tuning.run_study(overrides, run=first)
    study = load(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.RUNNING]
    kept_value = study.trials[0].value
    interrupted_params = study.trials[1].params

    second = Calls()
    outcome = tuning.run_study(overrides, run=second)
    study = load(tmp_path)
    states = [t.state for t in study.trials]
    # trial 1 is marked failed and retried as trial 2 (same parameters, same folder); trial 3
    # is new. Trial 0 is not run again.
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE,
                      TrialState.COMPLETE]  # fmt: skip
    assert study.trials[0].value == kept_value
    assert study.trials[2].params == interrupted_params
    assert study.trials[2].user_attrs["folder"] == "001"
    assert stored.n_counted(study.trials) == 3
    assert len(second.outcomes) == 2
    assert second.outcomes[0].status == "skipped"  # the retried trial's finished run is kept
    assert second.outcomes[1].status == "done"
    assert outcome.ran == 2 and outcome.best["n_finished"] == 3

    again = Calls()
    assert tuning.run_study(overrides, run=again).ran == 0  # a finished study runs nothing
    assert again.outcomes == []


@pytest.fixture
def poisoned_test_split(monkeypatch):
    """After the data module's setup, every access to the test split raises."""

    class Forbidden:
        def __getattr__(self, name):
            raise AssertionError(f"the test split was read ({name})")

        def __len__(self):
            raise AssertionError("the test split was read (len)")

        def __array__(self, *args, **kwargs):
            raise AssertionError("the test split was read (as an array)")

    original = IemocapDataModule.setup

    def setup(self, stage=None):
        original(self, stage)
        self.datasets["test"] = Forbidden()
        self.fold_data.splits["test"] = Forbidden()

    monkeypatch.setattr(IemocapDataModule, "setup", setup)


def test_the_objective_never_reads_the_test_split_and_a_failed_trial_does_not_stop_it(
    tmp_path, data_dir, poisoned_test_split
):
    overrides = tune_overrides(tmp_path, data_dir, "tune.n_trials=2")
    calls = Calls(fail_on=0)
    outcome = tuning.run_study(overrides, run=calls)
    study = load(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "loss is nan" in study.trials[0].user_attrs["error"]
    record = read_record(calls.outcomes[1].path)
    assert record.test_wa is None and record.test_uwa is None and record.confusion is None
    assert set(record.data.splits) == {"train", "dev"}
    assert record.config["run_test"] is False
    assert study.trials[1].value == pytest.approx(record.val_uwa)
    assert outcome.best["trial"] == 1 and outcome.best["value"] == pytest.approx(record.val_uwa)


def test_the_poisoned_test_split_stops_an_ordinary_run(make_cfg, data_dir, poisoned_test_split):
    """The fixture above can fail: a run that tests reads the test split."""
    cfg = make_cfg(f"paths.data_dir={data_dir}", "debug=fast", "trainer.max_epochs=1")
    with pytest.raises(AssertionError, match="the test split was read"):
        experiment.train_and_test(cfg)


def test_invalid_trials_are_pruned_and_the_study_goes_on(tmp_path, data_dir):
    space = only_space("{data.batch_size: {type: categorical, choices: [0]}}")
    overrides = tune_overrides(tmp_path, data_dir, "tune.n_trials=2", *space)
    calls = Calls()
    outcome = tuning.run_study(overrides, run=calls)
    study = load(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.PRUNED]
    assert "data.batch_size=0" in study.trials[0].user_attrs["invalid"]
    assert calls.outcomes == [] and outcome.best is None


def test_a_study_refuses_other_settings(tmp_path, data_dir):
    space = only_space("{data.batch_size: {type: categorical, choices: [0]}}")
    overrides = tune_overrides(tmp_path, data_dir, "tune.n_trials=1", *space)
    tuning.run_study(overrides, run=Calls())
    with pytest.raises(ConfigError, match="space differ"):
        other = only_space("{data.batch_size: {type: categorical, choices: [-1]}}")
        tuning.run_study(tune_overrides(tmp_path, data_dir, "tune.n_trials=1", *other))
    with pytest.raises(ConfigError) as refused:  # the keys behind the hash, with both values
        tuning.run_study([*overrides, "model.optimizer.lr=0.01", "model.network.hidden=30"])
    assert str(refused.value) == (
        f"{tmp_path / 'study' / stored.STUDY_DB}: this study was created with other settings "
        "(model.network.hidden: 60 vs 30, model.optimizer.lr: 0.001 vs 0.01 differ); choose "
        "another sweep_name or remove the folder"
    )


def test_heads_are_only_valid_divisors_of_the_width(make_cfg):
    base = make_cfg("experiment=tune")
    space = search.parse_space(
        {
            "model.network.hidden": {"type": "categorical", "choices": [30, 64]},
            "model.network.num_heads": {"type": "heads", "choices": [1, 2, 3, 4, 8]},
        },
        base,
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        values = search.suggest(trial, space, base)
        width = 2 * values["model.network.hidden"]
        assert width % values["model.network.num_heads"] == 0
        assert f"model.network.num_heads[width={width}]" in trial.params
        seen.add((width, values["model.network.num_heads"]))
        study.tell(trial, 0.5)
    assert {h for w, h in seen if w == 60} == {1, 2, 3, 4}  # 8 never drawn for width 60
    assert {h for w, h in seen if w == 128} == {1, 2, 4, 8}  # 3 never drawn for width 128
    default = search.Settings.from_config(base).space  # the default space: all always valid
    trial = optuna.create_study().ask()
    search.suggest(trial, default, base)
    assert "model.network.num_heads" in trial.params


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("{model.network.hiden: {type: int, low: 1, high: 2}}", "no such configuration key"),
        ("{model.optimizer.lr: {type: float, low: 0.0, high: 0.1, log: true}}", "log scale"),
        ("{model.optimizer.lr: {type: float, low: 0.1, high: 0.01}}", "must be below"),
        ("{data.batch_size: {type: choice, choices: [8]}}", "expected one of float"),
        ("{data.batch_size: {type: categorical, choices: []}}", "non-empty list"),
        ("{model.network.hidden: {type: heads, choices: [2]}}", "for model.network.num_heads"),
        ("{model: {type: categorical, choices: [self, cross]}}", "a config group, not a key"),
    ],
)
def test_a_bad_search_space_is_one_line(make_cfg, space, message):
    cfg = make_cfg("experiment=tune", *only_space(space))
    with pytest.raises(ConfigError, match=message):
        search.Settings.from_config(cfg)


def test_tuned_runs_take_the_best_settings_of_their_cells_study(make_cfg, tmp_path):
    study = tmp_path / "study"
    write_best(study)
    cfg = make_cfg("experiment=tuned", "model=cross", "modality=TA", f"tuned.study={study}")
    tuned = tuned_settings.apply_tuned(cfg)
    assert tuned.model.optimizer.lr == 0.0042 and tuned.model.network.hidden == 90
    assert tuned.model.network.num_heads == 5 and tuned.data.batch_size == 16
    assert tuned.tuned.trial == 7 and tuned.tuned.value == 0.61
    assert cfg.model.optimizer.lr == 0.001  # the composed configuration is left as it was
    from selfcross.training.resume import config_hash

    assert config_hash(tuned) != config_hash(cfg)
    default = make_cfg("experiment=tuned", "model=self", "modality=TV")
    assert str(default.tuned.study) == "multirun/tune-synthetic-small-self-TV"
    assert tuned_settings.apply_tuned(make_cfg()) is not None  # no tuned.study: unchanged

    with pytest.raises(ConfigError, match="tuned cross on TA, but this run is self on TA"):
        tuned_settings.apply_tuned(make_cfg("experiment=tuned", "model=self", "modality=TA",
                                    f"tuned.study={study}"))  # fmt: skip
    write_best(study, n_finished=12)
    with pytest.raises(ConfigError, match="12 of 40 trials finished"):
        tuned_settings.apply_tuned(cfg)
    unfinished = compose([*cfg_overrides(tmp_path, study), "tuned.allow_unfinished=true"])
    assert tuned_settings.apply_tuned(unfinished).model.network.hidden == 90
    with pytest.raises(ConfigError, match="no best.json"):
        tuned_settings.apply_tuned(make_cfg("experiment=tuned", "model=cross", "modality=TA",
                                    f"tuned.study={tmp_path / 'none'}"))  # fmt: skip


def cfg_overrides(tmp: Path, study: Path) -> list[str]:
    return [f"paths.output_dir={tmp}/out", "experiment=tuned", "model=cross", "modality=TA",
            f"tuned.study={study}"]  # fmt: skip


def test_the_command_tunes_one_cell_only():
    result = run_cli("selfcross.tune", "model=self,cross", "modality=TA")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: python -m selfcross.tune tunes one cell: give one model and one modality "
        "(no -m, no comma lists); run one command per cell"
    ]
    result = run_cli("selfcross.tune", "model=crosss")
    assert result.returncode == 2 and "model=crosss: no such option" in result.stderr


def test_a_tuned_sweep_without_its_study_launches_nothing(tmp_path):
    result = run_cli(
        "selfcross.run", "-m", "experiment=tuned", "model=self", "modality=TA", "fold=1",
        "seed=1", f"hydra.sweep.dir={tmp_path / 'tuned'}", f"tuned.study={tmp_path / 'none'}",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: 1 of 1 jobs are invalid, nothing was launched; first: [model=self modality=TA "
        f"fold=1 seed=1 experiment=tuned tuned.study={tmp_path / 'none'}]: tuned.study="
        f"{tmp_path / 'none'}: no best.json (run python -m selfcross.tune for this cell first, "
        "or point tuned.study at its study folder)"
    )
    assert not (tmp_path / "tuned" / "self").exists()


def test_run_test_at_its_default_keeps_the_hashes_of_earlier_runs():
    from selfcross.training.resume import config_hash

    default = compose(["paths.output_dir=/x", "model=cross", "modality=TA"])
    assert default.run_test is True
    without = compose(["paths.output_dir=/x", "model=cross", "modality=TA", "~run_test"])
    skipped = compose(["paths.output_dir=/x", "model=cross", "modality=TA", "run_test=false"])
    assert config_hash(default) == config_hash(without)
    assert config_hash(skipped) != config_hash(default)


def test_a_run_or_sweep_of_experiment_tune_points_to_the_tuning_command(tmp_path, make_cfg):
    with pytest.raises(ConfigError, match="use python -m selfcross.tune model=cross modality=TA"):
        experiment.train_and_test(make_cfg("experiment=tune", "model=cross", "modality=TA"))
    result = run_cli("selfcross.run", "-m", "experiment=tune", "model=cross", "modality=TA",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}")  # fmt: skip
    assert result.returncode == 2
    assert "experiment=tune configures a study, not a run" in result.stderr.splitlines()[-1]
    assert not (tmp_path / "sweep" / "cross").exists()


class FakeRun:
    """A stand-in for train_and_test that trains nothing: the validation UWA is a fixed function
    of the settings; it can stop the process (KeyboardInterrupt) on one call."""

    def __init__(self, stop_on: int | None = None):
        self.stop_on, self.calls = stop_on, 0

    def __call__(self, cfg):
        from types import SimpleNamespace

        self.calls += 1
        if self.calls - 1 == self.stop_on:
            raise KeyboardInterrupt
        net = cfg.model.network
        value = 0.3 + 20 * cfg.model.optimizer.lr + net.hidden / 1000 - net.attn_dropout / 10
        record = SimpleNamespace(val_uwa=value, data=SimpleNamespace(fingerprint="f-1"))
        return SimpleNamespace(status="done", record=record, path=None)


def test_a_resumed_study_draws_what_an_uninterrupted_one_draws(tmp_path, data_dir):
    extra = ("tune.n_trials=5", "tune.sampler.n_startup_trials=2")
    plain = tmp_path / "plain"
    tuning.run_study(tune_overrides(plain, data_dir, *extra), run=FakeRun())
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        tuning.run_study(tune_overrides(cut, data_dir, *extra), run=FakeRun(stop_on=3))
    tuning.run_study(tune_overrides(cut, data_dir, *extra), run=FakeRun())
    expected = [t.params for t in load(plain).trials]
    trials = load(cut).trials
    assert [t.state for t in trials].count(TrialState.FAIL) == 1  # trial 3, retried as 4
    assert [t.params for t in trials if t.number != 3] == expected
    assert len({json.dumps(p, sort_keys=True) for p in expected}) == 5  # no draw repeated


def composed_the_old_way(overrides: list[str], values: dict, fold: int, out_dir: Path):
    """A trial's run as it was made before one composition per study: composed with the trial's
    values, fold and folder as overrides."""
    from omegaconf import open_dict

    cfg = compose([*overrides, *(search.as_override(k, v) for k, v in values.items()),
                   f"fold={fold}", f"paths.output_dir={out_dir}"])  # fmt: skip
    with open_dict(cfg):
        cfg.pop("tune", None)
        cfg.run_test = False
    return cfg


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"model.optimizer.lr": 0.0012520653814999472, "model.network.hidden": 30,
         "model.network.attn_dropout": 0.32294705653332806, "data.batch_size": 32,
         "model.network.input_dropout.T": 0.21879360563134626, "model.network.num_heads": 4},
        {"model.optimizer.lr": 1e-05, "model.network.hidden": 90, "model.network.num_heads": 5,
         "model.network.attn_dropout": 0.0, "model.network.mask_padding": True,
         "model.network.pooling": "concat", "model.network.input_dropout.T": 0.5},
    ],
    ids=["untuned", "demo-trial", "edges"],
)  # fmt: skip
def test_a_trials_runs_are_the_configurations_composing_them_gives(tmp_path, values):
    from omegaconf import OmegaConf

    from selfcross.config import resolved
    from selfcross.training.resume import config_hash

    overrides = ["experiment=tune", "model=cross", "modality=TA", "tune.folds=[2,5]",
                 f"hydra.sweep.dir={tmp_path / 'study'}"]  # fmt: skip
    directory, base = tuning.study_config(overrides)
    assert directory == tmp_path / "study"
    old_base = compose([*overrides, f"paths.output_dir={directory}"])
    assert OmegaConf.to_yaml(base) == OmegaConf.to_yaml(old_base)
    settings = search.Settings.from_config(base)
    assert tuning.identity(base, settings) == tuning.identity(old_base, settings)

    folder = directory / "trials" / "007"
    runs = tuning.run_configs(base, values, settings.folds, folder)
    assert [cfg.fold for cfg in runs] == [2, 5]
    for fold, cfg in zip(settings.folds, runs, strict=True):
        old = composed_the_old_way(overrides, values, fold, folder / f"fold{fold}")
        assert OmegaConf.to_yaml(cfg) == OmegaConf.to_yaml(old)  # keys, order, interpolations
        assert resolved(cfg) == resolved(old)
        assert config_hash(cfg) == config_hash(old)
    assert "tune" in base and base.run_test is False  # experiment=tune's; the base is untouched
    assert base.paths.output_dir == str(directory) and base.fold == 1


def test_a_study_composes_its_base_configuration_once(tmp_path, data_dir, monkeypatch):
    composed = []

    def counting(*args, **kwargs):
        composed.append(args)
        return compose(*args, **kwargs)

    monkeypatch.setattr(tuning, "compose", counting)
    extra = ("tune.n_trials=3", "tune.folds=[1,2]")
    run = FakeRun()
    outcome = tuning.run_study(tune_overrides(tmp_path, data_dir, *extra), run=run)
    assert outcome.ran == 3 and run.calls == 6  # three trials of two runs each
    assert len(composed) == 1


def test_a_trial_value_is_applied_as_hydra_parses_an_override(make_cfg):
    from selfcross.config import apply_overrides

    cfg = make_cfg()
    apply_overrides(cfg, ["model.network.pooling=None", "model.network.mask_padding=True",
                          "seed=7", "model.optimizer.lr=1e-05"])  # fmt: skip
    assert cfg.model.network.pooling == "None"  # a string, as model.network.pooling=None gives
    assert cfg.model.network.mask_padding is True and cfg.seed == 7
    assert cfg.model.optimizer.lr == 1e-05
    for line, message in [
        ("model=self", "no config group"),
        ("seed=1,2", "no config group, sweep"),
        ("+seed=2", "no config group, sweep"),
        ("model.network.nope=1", r"^Could not override 'model.network.nope'"),
        ("seed=[", "cannot parse"),
    ]:
        with pytest.raises(ConfigError, match=message):
            apply_overrides(cfg, [line])
