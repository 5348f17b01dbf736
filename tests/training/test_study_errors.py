"""A study's hostile or mismatched files and settings are one-line refusals, before any training:
a corrupt ``study.db``, a bad key in ``tune.space={...}``, a study of other settings (naming the
keys that differ) and ``experiment=tuned`` on a study of other data."""

from __future__ import annotations

import pytest

from selfcross.errors import ConfigError
from selfcross.training import study as stored
from selfcross.training import tuning
from tests.conftest import run_cli
from tests.helpers.tunekit import tune_overrides


def test_a_corrupt_study_db_is_one_line_in_tune_and_the_tuning_table(tmp_path, capsys):
    from selfcross.tables import main as tables

    folder = tmp_path / "study"
    folder.mkdir()
    db = folder / stored.STUDY_DB
    db.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)  # a cut-off, garbled copy
    expected = (
        f"error: {db}: cannot be read as an Optuna study (file is not a database); restore it, "
        "or move it aside to start the study over\n"
    )
    proc = run_cli("selfcross.tune", "model=cross", "modality=TA", "debug=fast",
                   f"hydra.sweep.dir={folder}")  # fmt: skip
    assert (proc.returncode, proc.stderr) == (2, expected)
    assert sorted(p.name for p in folder.iterdir()) == [".study.lock", stored.STUDY_DB]
    with pytest.raises(SystemExit) as stop:
        tables(["tuning", "--results", str(folder), "--out", str(tmp_path / "tables")])
    assert stop.value.code == 2 and capsys.readouterr().err == expected
    assert not (tmp_path / "tables").exists()


def test_a_bad_key_inside_a_plain_tune_space_is_the_documented_line(tmp_path):
    """``tune.space={...}`` merges into the default space; a key the run lacks is "no such
    configuration key" (Hydra's own message advised ``+tune.space``), and nothing is written."""
    proc = run_cli("selfcross.tune", "model=cross", "modality=TA",
                   "tune.space={model.network.hiden: {type: int, low: 1, high: 2}}",
                   f"hydra.sweep.dir={tmp_path / 'study'}")  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == "error: tune.space.model.network.hiden: no such configuration key\n"
    assert not (tmp_path / "study").exists()


def test_a_plain_tune_space_merges_a_new_key_into_the_default(tmp_path, data_dir):
    space = "tune.space={model.network.classifier_hidden: {type: categorical, choices: [8]}}"
    directory, cfg = tuning.study_config(
        ["experiment=tune", *tune_overrides(tmp_path, data_dir, space)]
    )
    assert list(cfg.tune.space)[-1] == "model.network.classifier_hidden"
    assert "model.optimizer.lr" in cfg.tune.space  # the default space is kept
    assert directory == tmp_path / "study"
    with pytest.raises(ConfigError, match="expected a mapping"):
        tuning.study_config(
            ["experiment=tune", *tune_overrides(tmp_path, data_dir, "tune.space=3")]
        )


def test_tuned_runs_refuse_a_study_of_other_data_unless_told(make_cfg, tmp_path):
    from selfcross.data.fingerprint import current_fingerprint
    from selfcross.training.tuned import apply_tuned
    from tests.helpers.foldkit import make_fold
    from tests.helpers.tunekit import write_best

    root = tmp_path / "folds"
    make_fold(root / "fold01")
    now = current_fingerprint(root, 1, None)
    study = tmp_path / "study"
    data = {"name": "iemocap", "preset": None, "root": str(root.resolve())}
    run = ("experiment=tuned", "model=cross", "modality=TA", f"tuned.study={study}",
           "data=iemocap", f"data.root={root}")  # fmt: skip
    write_best(study, data={**data, "fingerprints": {"1": now}})
    assert apply_tuned(make_cfg(*run)).model.network.hidden == 90  # the same data: used
    hint = "tune on this data, or set tuned.accept_other_data=true to use its settings anyway"
    for key, theirs in (("name", "meld"), ("root", "/elsewhere"), ("preset", "paper")):
        write_best(study, data={**data, key: theirs, "fingerprints": {"1": now}})
        with pytest.raises(ConfigError) as refused:
            apply_tuned(make_cfg(*run))
        ours = {"name": "iemocap", "root": root.resolve(), "preset": None}[key]
        assert str(refused.value) == (
            f"tuned.study={study} was tuned on data.{key}={theirs}, but this run has "
            f"data.{key}={ours}: {hint}"
        )
    write_best(study, data={**data, "fingerprints": {"1": "0000-1111"}})
    with pytest.raises(ConfigError) as refused:
        apply_tuned(make_cfg(*run))
    assert str(refused.value) == (
        f"tuned.study={study} was tuned on fold 1 as it was (fingerprint 0000-1111); its files "
        f"have changed since (now {now}): {hint}"
    )
    accepted = apply_tuned(make_cfg(*run, "tuned.accept_other_data=true"))
    assert accepted.model.network.hidden == 90
    from selfcross.training.resume import config_hash

    assert config_hash(make_cfg(*run)) == config_hash(make_cfg(*run, "~tuned.accept_other_data"))


def test_tuned_runs_refuse_a_study_of_another_synthetic_preset(make_cfg, tmp_path):
    """The preset is compared by its value: a study tuned on the tiny preset is not used for a
    run on the small one (the other test's IEMOCAP runs have no preset, None on both sides)."""
    from pathlib import Path

    from selfcross.training.tuned import apply_tuned
    from tests.helpers.tunekit import write_best

    study = tmp_path / "study"
    run = ("experiment=tuned", "model=cross", "modality=TA", f"tuned.study={study}")
    root = str(Path(str(make_cfg(*run, "data.preset=tiny").data.root)).resolve())
    write_best(study, data={"name": "synthetic", "preset": "tiny", "root": root})
    assert apply_tuned(make_cfg(*run, "data.preset=tiny")).model.network.hidden == 90
    with pytest.raises(ConfigError) as refused:
        apply_tuned(make_cfg(*run, "data.preset=small"))
    assert str(refused.value).startswith(
        f"tuned.study={study} was tuned on data.preset=tiny, but this run has data.preset=small"
    )
