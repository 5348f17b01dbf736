"""A shared study's worker never draws with a sampler seed another draw of the study used:
TPE's random start-up draws depend on the seed alone, so a new worker 0 seeded as a killed
worker 0 was (the killed trial still RUNNING, its heartbeat not yet stale) drew the killed
trial's settings again, and with the killed trial's retry both completed with one setting."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from selfcross.training import tuning
from selfcross.training.search import suggest
from selfcross.training.shared import optimize_shared
from tests.helpers.tunekit import tune_overrides


def test_a_new_worker_does_not_redraw_a_killed_workers_settings(tmp_path, data_dir):
    directory, cfg, settings, ident, _ = tuning.prepare_study(tune_overrides(tmp_path, data_dir))
    base = tuning.base_run_config(cfg)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))
    )
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.set_user_attr("identity", ident)
    study.sampler = optuna.samplers.TPESampler(  # the killed worker 0's first draw
        seed=settings.seed, n_startup_trials=settings.n_startup_trials
    )
    killed = study.ask()
    killed_values = suggest(killed, settings.space, base)  # left RUNNING: the worker died

    def run_trial(trial, settings, base, directory):
        trial.set_user_attr("values", suggest(trial, settings.space, base))
        return TrialState.COMPLETE, 0.5

    one = type(settings)(**{**settings.__dict__, "n_trials": 1})
    assert optimize_shared(study, one, base, directory, "journal:x", run_trial) == 1
    (new,) = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert new.user_attrs["values"] != killed_values
