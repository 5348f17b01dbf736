"""One study, several workers, on a real PostgreSQL server (marked ``postgres``: ``make
test-postgres``): the workers complete the study, a worker killed with SIGKILL has its trial
retried in its folder, a server that goes away ends the workers with one line naming the
storage, and a wrong password is one line before any work."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from selfcross.training import study as stored
from selfcross.training.record import read_record
from selfcross.training.storage import public_url
from tests.conftest import REPO
from tests.postgres.conftest import ENV, no_duplicate_settings, tune_command, wait_for

pytestmark = pytest.mark.postgres


def run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def storage(postgres) -> str:
    return f"tune.storage='{postgres.url}'"


def trials(postgres, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=postgres.url).get_trials()


def test_three_workers_complete_the_study_and_no_password_is_written(postgres, tmp_path, data_dir):
    study = tmp_path / "three"
    proc = run(tune_command(study, data_dir, "trainer.max_epochs=1", "tune.n_trials=3",
                            "tune.workers=3", storage(postgres)))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = trials(postgres, "three")
    complete = [t for t in found if t.state == TrialState.COMPLETE]
    assert 3 <= len(complete) <= 3 + 2  # n_trials, and at most workers - 1 under way beyond it
    assert stored.n_counted(found) == len(complete)
    no_duplicate_settings(found)
    best = json.loads((study / "best.json").read_text())
    assert best["storage"] == public_url(postgres.url) and "@" not in best["storage"]
    assert best["n_complete"] == len(complete)
    password = postgres.env["PG_LOCAL_PASSWORD"]
    for path in study.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".log", ".yaml", ".txt"):
            assert password not in path.read_text(errors="replace"), path
    assert password not in proc.stdout + proc.stderr
    # the tuning table finds the study in the database best.json names; libpq the password
    table = subprocess.run(
        [sys.executable, "-m", "selfcross.tables", "tuning", "--results", str(study), "--out",
         str(tmp_path / "tables")], cwd=REPO, capture_output=True, text=True,
        env={**ENV, "PGUSER": "selfcross", "PGPASSWORD": password},
    )  # fmt: skip
    assert table.returncode == 0, table.stderr[-3000:]
    text = (tmp_path / "tables" / "tuning-cross-TA.md").read_text()
    assert f"Study: {best['storage']}, study three ({len(found)} trials" in text
    refused = run([sys.executable, "-m", "selfcross.tables", "tuning", "--results", str(study),
                   "--storage", postgres.url.replace(password, "not-it")])  # fmt: skip
    assert refused.returncode == 2 and "not-it" not in refused.stderr
    assert refused.stderr.startswith("error: tune.storage=postgresql://selfcross:***@")


def test_a_killed_workers_trial_is_retried_in_its_folder(postgres, tmp_path, data_dir):
    study = tmp_path / "killed"
    cmd = tune_command(study, data_dir, "trainer.max_epochs=4", "tune.n_trials=2",
                       storage(postgres))  # fmt: skip
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    try:
        last = study / "trials" / "000" / "fold1" / "checkpoints" / "last.ckpt"
        wait_for(last.exists, 240, "trial 0's first checkpoint", first)
        first.send_signal(signal.SIGKILL)  # no heartbeat, no goodbye
        first.wait(timeout=30)
    finally:
        first.kill()
    proc = run([*cmd, "tune.workers=2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = trials(postgres, "killed")
    assert found[0].state == TrialState.FAIL
    retries = [t for t in found if t.user_attrs.get("retry_of") == 0]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == found[0].params and retries[0].user_attrs["folder"] == "000"
    record = read_record(study / "trials" / "000" / "fold1" / "result.json")
    assert record.resumed_from == str(last)  # the killed fold resumed from its last epoch
    assert [h["epoch"] for h in record.history] == [1, 2, 3, 4]
    assert stored.n_counted(found) >= 2
    no_duplicate_settings(found)


def test_a_server_that_goes_away_ends_the_workers_and_a_rerun_continues(
    postgres, tmp_path, data_dir
):
    study = tmp_path / "away"
    cmd = tune_command(study, data_dir, "trainer.max_epochs=3", "tune.n_trials=3",
                       "tune.workers=2", storage(postgres))  # fmt: skip
    log_path = tmp_path / "away.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for(lambda: any((study / "trials").glob("*/fold1/checkpoints/last.ckpt")), 240,
                 "a first checkpoint", proc)  # fmt: skip
        postgres.stop()
        rc = proc.wait(timeout=180)
    finally:
        proc.kill()
        postgres.start()
    err = log_path.read_text()
    assert rc == 1, err[-3000:]
    masked = postgres.url.replace(postgres.env["PG_LOCAL_PASSWORD"], "***")
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("error: tune.storage=postgresql://selfcross:***@"), last_line
    assert "Traceback" not in err, err[-3000:]
    assert postgres.env["PG_LOCAL_PASSWORD"] not in err
    assert masked.split("?")[0] in err.replace("%2F", "/")
    again = run(cmd)
    assert again.returncode == 0, again.stderr[-3000:]
    assert stored.n_counted(trials(postgres, "away")) >= 3


@pytest.mark.parametrize("wrong", ["password", "database"])
def test_a_wrong_password_or_database_is_one_line_before_any_work(
    postgres, tmp_path, data_dir, wrong
):
    password = postgres.env["PG_LOCAL_PASSWORD"]
    if wrong == "password":
        url = postgres.url.replace(f":{password}@", ":not-it@")
    else:
        url = postgres.url.replace("/selfcross?", "/no_such_db?")
    proc = run(tune_command(tmp_path / "s", data_dir, "tune.workers=2", f"tune.storage='{url}'"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tune.storage=postgresql://"), lines
    assert "cannot open the study's storage" in lines[0] and "not-it" not in lines[0]
    assert not (tmp_path / "s" / "trials").exists()
