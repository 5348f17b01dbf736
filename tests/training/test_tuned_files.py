"""A study's best.json sets values, never code: experiment=tuned refuses a setting that names one
of Hydra's instantiation keys, a key the configuration lacks or a value of another kind, in one
line naming the file (exit status 2 from the command)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfcross.errors import ConfigError
from selfcross.training import tuned as tuned_settings
from tests.conftest import run_cli


def write_best(folder: Path, settings: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    best = {"model": "cross", "modality": "TA", "trial": 3, "value": 0.6, "n_trials": 4,
            "n_finished": 4, "settings": settings}  # fmt: skip
    (folder / tuned_settings.BEST_FILE).write_text(json.dumps(best))
    return folder / tuned_settings.BEST_FILE


REFUSED = [
    ({"model.scheduler._target_": "builtins.print"}, "model.scheduler._target_: names Hydra's "
     "_target_ (a file sets values, never code)"),
    ({"model.optimizer._partial_": False}, "model.optimizer._partial_: names Hydra's _partial_"),
    ({"model._args_": ["x"]}, "model._args_: names Hydra's _args_"),
    ({"model.network": {"_target_": "builtins.print"}}, "model.network._target_: names Hydra's"),
    ({"model.network.hiden": 90}, "model.network.hiden: no such configuration key"),
    ({"paths.output_dir.sub": 1}, "paths.output_dir.sub: no such configuration key"),
    ({"model.optimizer.lr": "fast"}, "model.optimizer.lr='fast': expected a number (the default "
     "is 0.001)"),
    ({"model.network.hidden": 60.5}, "model.network.hidden=60.5: expected an integer"),
    ({"data.batch_size": True}, "data.batch_size=True: expected an integer"),
    ({"model.network.input_dropout": 0.1}, "model.network.input_dropout=0.1: expected a mapping"),
    ({"data.root": "${oc.env:HOME}"}, "data.root='${oc.env:HOME}': an interpolation, not a value"),
]  # fmt: skip


@pytest.mark.parametrize(("settings", "message"), REFUSED)
def test_a_setting_that_is_code_unknown_or_of_another_kind_is_refused(
    make_cfg, tmp_path, settings, message
):
    """Fails on the code before issue 23 for all but the unknown key: best.json could set
    model.scheduler._target_ (a run then instantiated builtins.print) and any value."""
    path = write_best(tmp_path / "study", settings)
    cfg = make_cfg("experiment=tuned", "model=cross", "modality=TA", f"tuned.study={path.parent}")
    with pytest.raises(ConfigError) as info:
        tuned_settings.apply_tuned(cfg)
    assert str(info.value).startswith(f"{path}: {message}")
    assert len(str(info.value).splitlines()) == 1


def test_values_of_their_keys_kind_are_taken(make_cfg, tmp_path):
    """A number for a number (an int for a float), a word setting's true, a mapping merged
    key by key."""
    settings = {
        "model.optimizer.lr": 0.002,
        "model.network.attn_dropout": 0,
        "data.on_device": True,
        "model.network.input_dropout": {"T": 0.3},
    }
    path = write_best(tmp_path / "study", settings)
    cfg = make_cfg("experiment=tuned", "model=cross", "modality=TA", f"tuned.study={path.parent}")
    out = tuned_settings.apply_tuned(cfg)
    assert out.model.optimizer.lr == 0.002 and out.model.network.attn_dropout == 0
    assert out.data.on_device is True
    assert dict(out.model.network.input_dropout) == {"T": 0.3, "V": 0.0, "A": 0.0}
    assert out.model.optimizer._target_ == "torch.optim.Adam"


def test_the_run_command_refuses_it_with_exit_status_2(tmp_path):
    """Fails on the code before issue 23: the run instantiated builtins.print as its
    scheduler (and failed later, with a traceback)."""
    path = write_best(tmp_path / "study", {"model.scheduler._target_": "builtins.print"})
    out = tmp_path / "run"
    done = run_cli(
        "selfcross.run", "experiment=tuned", "model=cross", "modality=TA", "debug=fast",
        "logger=none", "trainer.accelerator=cpu", f"paths.data_dir={tmp_path / 'data'}",
        f"tuned.study={path.parent}", f"hydra.run.dir={out}",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        f"error: {path}: model.scheduler._target_: names Hydra's _target_ (a file sets values, "
        "never code)"
    ]
    assert not (out / "result.json").exists() and not (tmp_path / "data").exists()


def test_a_missing_unreadable_or_settingless_best_json_is_one_line(make_cfg, tmp_path):
    """Each way a best.json can be unusable is a one-line ConfigError naming the study or the
    file, never a traceback (a list at its top used to raise AttributeError)."""
    study = tmp_path / "study"

    def refused() -> str:
        cfg = make_cfg("experiment=tuned", "model=cross", "modality=TA", f"tuned.study={study}")
        with pytest.raises(ConfigError) as info:
            tuned_settings.apply_tuned(cfg)
        return str(info.value)

    assert refused() == (
        f"tuned.study={study}: no best.json (run python -m selfcross.tune for this cell first, "
        "or point tuned.study at its study folder)"
    )
    path = write_best(study, {})
    path.write_text('{"settings": ')
    assert refused().startswith(f"{path}: unreadable (") and "Expecting value" in refused()
    for content in ([{"settings": {}}], {"trial": 3}, {"settings": ["model.optimizer.lr"]}):
        path.write_text(json.dumps(content))
        assert refused() == f"{path}: no settings in it", content


def test_best_json_holds_the_earliest_best_complete_trial_under_the_readers_keys(tmp_path):
    """Four complete trials scoring .5, .9, .9, .7 and a pruned one: the best is trial 1 (the
    earliest of the two best, neither the first nor the last), with its own settings and fold
    scores, under exactly the keys read_best, Table 4 and experiment=tuned read."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    study = optuna.create_study(direction="maximize", study_name="self-TV")
    study.set_user_attr("data", {"name": "synthetic", "preset": "small"})
    space = {"lr": FloatDistribution(1e-4, 1e-2)}
    for number, value in enumerate((0.5, 0.9, 0.9, 0.7)):
        attrs = {
            "values": {"model.optimizer.lr": 1e-3 * (number + 1)},
            "fold_scores": [value - 0.01, value + 0.01],
            "fingerprints": [f"fp{number}"],
        }
        study.add_trial(create_trial(value=value, params={"lr": 1e-3 * (number + 1)},
                                     distributions=space, user_attrs=attrs))  # fmt: skip
    study.add_trial(create_trial(state=TrialState.PRUNED, params={"lr": 5e-3},
                                 distributions=space))  # fmt: skip
    ident = {"model": "self", "modality": "TV", "folds": [1, 2], "seed": 1,
             "objective": "val/wf1"}  # fmt: skip
    tuned_settings.write_best(study, tmp_path, ident, n_trials=8)
    expected = {
        "study": str(tmp_path), "model": "self", "modality": "TV", "folds": [1, 2], "seed": 1,
        "trial": 1, "value": 0.9, "objective": "val/wf1", "fold_scores": [0.89, 0.91],
        "settings": {"model.optimizer.lr": 0.002}, "n_trials": 8, "n_finished": 5,
        "n_complete": 4,
        "data": {"name": "synthetic", "preset": "small", "fingerprints": ["fp1"]},
    }  # fmt: skip
    assert json.loads((tmp_path / "best.json").read_text()) == expected
    assert tuned_settings.read_best(tmp_path) == expected
    shared = tmp_path / "shared"
    shared.mkdir()
    tuned_settings.write_best(study, shared, ident, 8, storage="postgresql://host/studies")
    on_disk = json.loads((shared / "best.json").read_text())
    assert on_disk["storage"] == "postgresql://host/studies" and on_disk["study_name"] == "self-TV"
