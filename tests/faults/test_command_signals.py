"""SIGTERM and SIGINT in the phases of the commands other than ``run`` (``make test-faults``):
``tables``, ``ablate``, ``attention``, ``tune`` and ``prepare`` each answer with one line naming
the phase and exit status 143 / 130, leave no output of the interrupted phase, and the same
command run again completes; interrupted after its work, a command says so and exits 0. A
sweep interrupted while a job tests ends with its summary and a non-zero status."""

from __future__ import annotations

import json

import pytest

from selfcross.config import compose
from selfcross.training.experiment import train_and_test
from tests.conftest import REPO, base_overrides, run_cli
from tests.faults.signalkit import launch
from tests.helpers.preparekit import make_release, overrides
from tests.helpers.reportkit import GRID, TV_CROSS, TV_SELF, write_cell

pytestmark = pytest.mark.faults

CODES = {"SIGTERM": 143, "SIGINT": 130}
NAMES = {"SIGTERM": "SIGTERM", "SIGINT": "Ctrl-C (SIGINT)"}


def said(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if "interrupted" in line]


def check_interrupted(proc, signame: str, line: str) -> None:
    context = proc.stderr[-3000:]
    assert proc.returncode == CODES[signame], context
    assert said(proc) == [f"error: interrupted by {NAMES[signame]} {line}"], context
    assert "Traceback" not in proc.stderr + proc.stdout, context


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_dir):
    """One tiny finished tri-modal run with its best checkpoint."""
    tmp = tmp_path_factory.mktemp("finished")
    cfg = compose([*base_overrides(tmp), f"paths.data_dir={data_dir}", "debug=fast",
                   "trainer.max_epochs=2"])  # fmt: skip
    train_and_test(cfg)
    return tmp / "out"


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_tables(tmp_path, signame):
    results, out = tmp_path / "multirun", tmp_path / "tables"
    write_cell(results, "self", "TV", TV_SELF)
    write_cell(results, "cross", "TV", TV_CROSS)
    args = ["table1", "--results", str(results), "--out", str(out), *GRID]
    proc = launch("table", signame, "selfcross.tables", *args, cwd=tmp_path)
    check_interrupted(proc, signame, "while making table1; rerun the same command to make it")
    assert not out.exists() or list(out.iterdir()) == []
    done = launch("finished", signame, "selfcross.tables", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert said(done) == [f"interrupted by {NAMES[signame]} after table1 ({out}) had finished; "
                          "nothing to redo"]  # fmt: skip
    assert {p.name for p in out.iterdir()} == {"table1.md", "table1.tex", "table1.csv"}


def test_ablate_in_each_phase(finished_run, tmp_path):
    args = ["--results", str(finished_run), "--out", str(tmp_path / "tables")]
    proc = launch("scoring", "SIGTERM", "selfcross.ablate", *args, cwd=tmp_path)
    check_interrupted(proc, "SIGTERM", "while scoring the runs with modalities left out; rerun "
                      "the same command to resume (scored runs are kept)")  # fmt: skip
    assert not (finished_run / "ablation.json").exists()
    proc = launch("table", "SIGINT", "selfcross.ablate", *args, cwd=tmp_path)
    check_interrupted(proc, "SIGINT", "while writing the ablation table; rerun the same command "
                      "to write it")  # fmt: skip
    assert (finished_run / "ablation.json").is_file()  # the scoring was finished and is kept
    done = run_cli("selfcross.ablate", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "0 runs scored, 1 reused" in done.stdout
    assert (tmp_path / "tables" / "ablation.csv").is_file()


def test_attention(finished_run, tmp_path):
    out = tmp_path / "attention"
    args = [str(finished_run), "--utterances", "1", "--out", str(out)]
    proc = launch("measuring", "SIGINT", "selfcross.attention", *args, cwd=tmp_path)
    check_interrupted(proc, "SIGINT", f"while measuring the attention of {finished_run}; rerun "
                      "the same command to measure it")  # fmt: skip
    assert not (out / "attention.json").exists()
    done = launch("finished", "SIGTERM", "selfcross.attention", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert said(done) == [f"interrupted by SIGTERM after the attention report ({out}) had "
                          "finished; nothing to redo"]  # fmt: skip
    assert json.loads((out / "attention.json").read_text())


def test_tune_in_a_trial_then_the_study_continues(tmp_path, data_dir):
    args = ["model=self", "modality=TV", "debug=fast", "tune.n_trials=1", "tune.folds=[1]",
            "trainer.max_epochs=2", "logger=none", "trainer.enable_progress_bar=false",
            f"paths.data_dir={data_dir}", f"hydra.sweep.dir={tmp_path / 'study'}"]  # fmt: skip
    proc = launch("trial", "SIGTERM", "selfcross.tune", *args, cwd=tmp_path)
    assert proc.returncode == 143, proc.stderr[-3000:]
    (line,) = said(proc)  # one line, the signal's: the study adds no second "interrupted"
    assert line.startswith("error: interrupted by SIGTERM in epoch 1; rerun the same command")
    assert "Traceback" not in proc.stderr
    # a run of a trial finishing is not the study finishing: the study's phase is named
    again = launch("finished", "SIGINT", "selfcross.tune", *args, cwd=tmp_path)
    assert again.returncode == 130, again.stderr[-3000:]
    assert [x for x in said(again) if x.startswith("error:")] == [  # (and trial 0's retry)
        "error: interrupted by Ctrl-C (SIGINT) while tuning; rerun the same command to "
        "continue the study"
    ]
    done = run_cli("selfcross.tune", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "study" / "best.json").is_file()


def test_a_sweep_interrupted_while_a_job_tests_ends_with_its_summary(tmp_path, data_dir):
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=1,2", "debug=fast", "logger=none", "trainer.enable_progress_bar=false",
            f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    proc = launch("test", "SIGTERM", "selfcross.run", *args, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 143, output[-3000:]
    assert "interrupted by SIGTERM while testing the best checkpoint" in output
    assert f"Sweep {sweep} interrupted: 0 of 2 jobs finished" in output
    assert list(sweep.rglob("result.json")) == []
    rerun = run_cli("selfcross.run", *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    first = json.loads((sweep / "self/TVA/fold1/seed1/result.json").read_text())
    assert first["resumed_from"].endswith("last.ckpt")  # resumed after its last epoch


def test_prepare_while_extracting_and_while_checking_then_the_rerun_completes(tmp_path):
    (tmp_path / "release").mkdir()
    release = make_release(tmp_path / "release")
    out = tmp_path / "folds"
    args = overrides(release, out)
    proc = launch("extracting", "SIGTERM", "selfcross.prepare", *args, cwd=tmp_path)
    assert proc.returncode == 143, proc.stderr[-3000:]
    (line,) = said(proc)
    assert line.startswith(f"error: interrupted by SIGTERM while preparing the folds in {out}; "
                           "finished features are cached in ")  # fmt: skip
    assert line.endswith("; rerun the same command to resume")
    assert not (out / "prepare.json").exists() and "Traceback" not in proc.stderr
    proc = launch("checking", "SIGINT", "selfcross.prepare", *args, cwd=tmp_path)
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert said(proc)[0].startswith("error: interrupted by Ctrl-C (SIGINT) while preparing")
    assert not (out / "prepare.json").exists()
    done = run_cli("selfcross.prepare", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "prepare.json").read_text())


@pytest.mark.parametrize("signame,whom", [("SIGTERM", "process"), ("SIGINT", "group")])
def test_a_local_gpus_sweep_stops_its_workers_and_resumes(tmp_path, data_dir, signame, whom):
    """``hydra/launcher=local_gpus`` runs the jobs in worker processes (joblib): SIGTERM to the
    sweep's own process (``kill``) or SIGINT to its process group (Ctrl-C in a terminal) while
    both jobs train stops both workers, the sweep ends with its summary and the signal's status,
    no job has a record, and the same command resumes each job from its last checkpoint."""
    import os
    import signal
    import subprocess
    import sys
    import time

    sweep = tmp_path / "sweep"
    jobs = [sweep / "self" / "TVA" / "fold1" / f"seed{seed}" for seed in (1, 2)]
    args = ["-m", "seed=1,2", "debug=fast", "logger=csv", "trainer.max_epochs=30",
            "callbacks.early_stopping.patience=100", "trainer.enable_progress_bar=false",
            "hydra/launcher=local_gpus", f"paths.data_dir={data_dir}",
            f"hydra.sweep.dir={sweep}"]  # fmt: skip
    # through signalkit with no hook armed: it starts SIGINT at Python's default handler, as a
    # terminal's foreground job has it (a background job of a script would ignore SIGINT)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", "PYTHONPATH": path}
    command = [sys.executable, "-m", "tests.faults.signalkit", "none", signame, "selfcross.run"]
    proc = subprocess.Popen([*command, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip

    def epochs(job) -> int:  # validation rows in the job's CSV log
        log = job / "csv" / "metrics.csv"
        return log.read_text().count("\n") if log.is_file() else 0

    deadline = time.monotonic() + 300
    while min(map(epochs, jobs)) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    if whom == "process":
        proc.send_signal(getattr(signal, signame))
    else:
        os.killpg(proc.pid, getattr(signal, signame))
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == CODES[signame], output[-3000:]
    assert f"Sweep {sweep} interrupted: 0 of 2 jobs finished" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    for _ in range(50):  # no worker outlives the sweep (one would go on to write a record)
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("a worker of the interrupted sweep is still running")
    assert [job for job in jobs if (job / "result.json").exists()] == []
    assert all((job / "checkpoints" / "last.ckpt").is_file() for job in jobs)

    rerun = run_cli("selfcross.run", *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for job in jobs:
        record = json.loads((job / "result.json").read_text())
        assert record["resumed_from"] == str(job / "checkpoints" / "last.ckpt")
        assert record["epochs"] == 30
