"""A study maximises the runs' selection metric (``monitor.metric``, the dataset's
``selection_metric``): validation UWA for IEMOCAP as the paper selects, weighted F1 for MELD."""

from __future__ import annotations

import json

import pytest

from selfcross.errors import ConfigError
from selfcross.training import tuning
from selfcross.training.record import read_record
from tests.helpers.tunekit import Calls, load, tune_overrides


def test_the_objective_is_the_selection_metrics_best_validation_value(tmp_path, data_dir):
    overrides = tune_overrides(tmp_path, data_dir, "tune.n_trials=1",
                               "data.selection_metric=val/wf1")  # fmt: skip
    calls = Calls()
    tuning.run_study(overrides, run=calls)
    study = load(tmp_path)
    record = read_record(calls.outcomes[0].path)
    assert record.val_wf1 != pytest.approx(record.val_uwa)  # else this could not tell them apart
    assert study.trials[0].value == pytest.approx(record.val_wf1)
    assert study.user_attrs["identity"]["objective"] == "val/wf1"
    best = json.loads((tmp_path / "study" / "best.json").read_text())
    assert best["objective"] == "val/wf1" and best["value"] == pytest.approx(record.val_wf1)


def test_the_default_objective_leaves_a_studys_identity_as_it_was(tmp_path, data_dir):
    """Studies started before the objective followed the selection metric keep their identity
    (validation UWA is not named), so they continue instead of being refused."""
    *_, ident, _ = tuning.prepare_study(tune_overrides(tmp_path, data_dir))
    assert "objective" not in ident
    *_, ident, _ = tuning.prepare_study(
        tune_overrides(tmp_path, data_dir, "data.selection_metric=val/wa")
    )
    assert ident["objective"] == "val/wa"


def test_a_score_to_minimise_is_refused_before_any_work(tmp_path, data_dir):
    with pytest.raises(ConfigError, match=r"monitor.metric=val/uwa \(mode min\): a study "):
        tuning.prepare_study(tune_overrides(tmp_path, data_dir, "monitor.mode=min"))
    assert not (tmp_path / "study").exists()
