"""``tune.storage`` and ``tune.workers`` without a database server: URLs shown without
credentials, the settings refused with one line, and two workers on a journal file."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from selfcross.errors import ConfigError
from selfcross.training import study as stored
from selfcross.training import tuning
from selfcross.training.storage import masked_url, parse_storage, public_url, storage_failure
from selfcross.training.workers import plan_workers
from tests.conftest import run_cli
from tests.helpers.tunekit import tune_overrides


@pytest.mark.parametrize(
    ("url", "shown", "masked"),
    [
        ("postgresql://ann:s3cr3t@db:5432/studies?sslmode=require",
         "postgresql://db:5432/studies?sslmode=require",
         "postgresql://ann:***@db:5432/studies?sslmode=require"),
        ("postgresql:///studies?host=/run/pg&user=ann&password=s3cr3t",
         "postgresql:///studies?host=/run/pg",
         "postgresql:///studies?host=/run/pg&password=***&user=***"),
        ("mysql+pymysql://ann:s3cr3t@db/studies", "mysql+pymysql://db/studies",
         "mysql+pymysql://ann:***@db/studies"),
        ("sqlite", "sqlite", "sqlite"),
    ],
)  # fmt: skip
def test_urls_are_recorded_without_credentials_and_shown_masked(url, shown, masked):
    assert public_url(url).replace("%2F", "/") == shown
    assert masked_url(url).replace("%2F", "/") == masked
    setting = parse_storage(url)
    assert "s3cr3t" not in setting.shown + setting.masked and setting.url == url


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("no url at all", "tune.storage=<not a URL>: expected sqlite, journal:<file> or"),
        ("sqlite:///x.db", "an SQLite file is one process's storage"),
        ("journal:", "give the journal file"),
    ],
)
def test_a_storage_that_is_none_is_one_line(value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_storage(value)


def test_storage_errors_are_found_behind_the_error_optuna_raises():
    from sqlalchemy.exc import OperationalError

    lost = OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    assert storage_failure(UnboundLocalError("updated_state")) is None  # not a storage's
    try:
        try:
            raise lost
        except OperationalError:
            raise UnboundLocalError("updated_state")  # noqa: B904 (as Optuna 5's optimize does)
    except UnboundLocalError as err:
        assert storage_failure(err) is lost


def test_workers_share_gpus_and_split_cores():
    plans = plan_workers(5, gpus=2, cores=16)
    assert [p.gpu for p in plans] == [0, 1, 0, 1, 0] and {p.threads for p in plans} == {3}
    assert [p.gpu for p in plan_workers(3, gpus=0, cores=2)] == [None] * 3
    assert {p.threads for p in plan_workers(3, gpus=0, cores=2)} == {1}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["tune.workers=2"], "tune.workers=2: the sqlite storage runs one process"),
        (["tune.workers=0"], "tune.workers=0: expected a positive integer"),
        (["tune.heartbeat_s=10", "tune.grace_s=10"], "tune.grace_s=10: must exceed"),
    ],
)
def test_worker_settings_are_refused_before_any_work(tmp_path, data_dir, extra, message):
    with pytest.raises(ConfigError, match=message):
        tuning.run_study(tune_overrides(tmp_path, data_dir, *extra))
    assert not (tmp_path / "study" / stored.STUDY_DB).exists()


def test_two_workers_on_a_journal_file_finish_one_study(tmp_path, data_dir):
    journal = tmp_path / "journal.log"
    args = tune_overrides(tmp_path, data_dir, "tune.n_trials=3", "tune.workers=2",
                          f"tune.storage=journal:{journal}", "logger=none")  # fmt: skip
    proc = run_cli("selfcross.tune", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    found = optuna.load_study(study_name="study", storage=storage).get_trials()
    complete = [t for t in found if t.state == TrialState.COMPLETE]
    assert 3 <= len(complete) <= 4  # n_trials, and at most one more already under way
    settings = [json.dumps(t.params, sort_keys=True) for t in complete]
    assert len(settings) == len(set(settings))  # the workers drew different settings
    folders = sorted(p.name for p in (tmp_path / "study" / "trials").iterdir())
    assert folders == [f"{t.number:03d}" for t in found]
    best = json.loads((tmp_path / "study" / "best.json").read_text())
    assert best["storage"] == f"journal:{journal}" and best["n_complete"] == len(complete)
    table = run_cli("selfcross.tables", "tuning", "--results", str(tmp_path / "study"),
                    "--out", str(tmp_path / "tables"))  # fmt: skip
    assert table.returncode == 0, table.stderr[-3000:]
    text = (tmp_path / "tables" / "tuning-cross-TA.md").read_text()
    assert f"Study: journal:{journal}, study study ({len(found)} trials" in text


def test_slurm_workers_take_the_sweep_launchers_settings():
    from omegaconf import OmegaConf

    from selfcross.config import compose
    from selfcross.training.workers import sbatch_parameters

    cfg = compose(["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                   "hydra.launcher.array_parallelism=16"], with_hydra=True)  # fmt: skip
    params = sbatch_parameters(OmegaConf.to_container(cfg.hydra.launcher, resolve=False))
    assert params["partition"] == "gpu" and params["array_parallelism"] == 16
    assert params["time"] == 240 and params["mem"] == "48GB" and params["gpus_per_node"] == 1
    assert "submitit_folder" not in params and "qos" not in params  # not sbatch's; unset


def test_a_worker_stopped_by_ctrl_c_has_its_trial_retried_in_its_folder(tmp_path, data_dir):
    from tests.helpers.tunekit import Calls

    journal = tmp_path / "journal.log"
    overrides = tune_overrides(tmp_path, data_dir, "tune.n_trials=2",
                               f"tune.storage=journal:{journal}")  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        tuning.run_study(overrides, run=Calls(stop_after=0))  # stopped after trial 0's run
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    found = optuna.load_study(study_name="study", storage=storage).get_trials()
    assert [t.state for t in found] == [TrialState.FAIL, TrialState.WAITING]
    assert found[1].system_attrs["failed_trial"] == 0 and found[1].params == found[0].params
    assert stored.n_counted(found) == 0  # the interrupted trial does not count

    again = Calls()
    outcome = tuning.run_study(overrides, run=again)
    found = optuna.load_study(study_name="study", storage=storage).get_trials()
    assert found[1].state == TrialState.COMPLETE and found[1].user_attrs["folder"] == "000"
    assert found[1].user_attrs["retry_of"] == 0
    assert again.outcomes[0].status == "skipped"  # trial 0's finished run is kept
    assert again.outcomes[0].path.parent.name == "fold1"
    assert again.outcomes[0].path.parent.parent.name == "000"
    assert outcome.best["n_finished"] == 2 and len(again.outcomes) == 2
