"""Misuse and concurrency: foreign folders, other configurations, path-like sweep names, two
processes on one job, corrupt checkpoints, Ctrl-C and the CSV log across a resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from filelock import FileLock

from selfcross.config import compose, validate
from selfcross.errors import ConfigError
from selfcross.training.experiment import train_and_test
from tests.conftest import REPO, base_overrides, run_cli

TINY = ["debug=fast", "logger=none", "trainer.enable_progress_bar=false"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def foreign_folder(path: Path) -> dict[str, bytes]:
    """A folder another program wrote, with the names a selfcross run writes."""
    (path / "checkpoints").mkdir(parents=True)
    (path / "checkpoints" / "model.pt").write_bytes(b"their weights")
    (path / "checkpoints" / "last.ckpt").write_bytes(b"their checkpoint")
    (path / "csv").mkdir()
    (path / "csv" / "metrics.csv").write_text("step,their\n1,2\n")
    (path / "result.json").write_text('{"theirs": true}')
    (path / "notes.txt").write_text("keep me")
    return snapshot(path)


def test_foreign_folder_is_refused_before_anything_is_written(tmp_path, data_dir):
    out = tmp_path / "theirs"
    before = foreign_folder(out)
    proc = run_cli("selfcross.run", *TINY, f"paths.data_dir={data_dir}", f"hydra.run.dir={out}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines() == [
        f"error: {out}: folder holds files that are not a selfcross run (checkpoints, csv, "
        "notes.txt, ...); choose another output folder, or set resume.allow_foreign_dir=true "
        "to write beside them (what is in the way is moved to superseded/, nothing is deleted)"
    ]
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == sorted(
        ["checkpoints", "csv", "notes.txt", "result.json"]
    )  # not even Hydra's .hydra/ was written
    # the library refuses too (a job of a sweep, a direct call)
    cfg = compose([*base_overrides(tmp_path), f"paths.data_dir={data_dir}", "debug=fast",
                   f"paths.output_dir={out}"])  # fmt: skip
    with pytest.raises(ConfigError, match="not a selfcross run"):
        train_and_test(cfg)
    assert snapshot(out) == before


def test_allow_foreign_dir_moves_what_is_in_the_way_and_deletes_nothing(tmp_path, data_dir):
    out = tmp_path / "theirs"
    before = foreign_folder(out)
    cfg = compose([*base_overrides(tmp_path), f"paths.data_dir={data_dir}", "debug=fast",
                   f"paths.output_dir={out}", "resume.allow_foreign_dir=true"])  # fmt: skip
    outcome = train_and_test(cfg)
    assert outcome.status == "done" and outcome.record.resumed_from is None
    (aside,) = (out / "superseded").iterdir()
    assert aside.name.startswith("unknown-")
    kept = {**snapshot(aside), "notes.txt": (out / "notes.txt").read_bytes()}
    assert kept == before  # every foreign file, byte for byte
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt"]


def test_sweep_into_a_foreign_job_folder_launches_nothing(tmp_path):
    sweep = tmp_path / "sweep"
    job = sweep / "self" / "TVA" / "fold1" / "seed2"
    before = foreign_folder(job)
    proc = run_cli("selfcross.run", "-m", "seed=1,2", *TINY, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {job}: folder holds files")
    assert snapshot(job) == before and not (sweep / "self" / "TVA" / "fold1" / "seed1").exists()


@pytest.mark.parametrize("name", ["../../x", "a/b", "/tmp/x", "..", "a\\b"])
def test_sweep_names_that_are_paths_are_refused(make_cfg, name):
    with pytest.raises(ConfigError, match="single folder name under multirun/"):
        validate(make_cfg(f"sweep_name={name}"), need_data=False)


def test_sweep_name_escaping_multirun_writes_nothing(tmp_path):
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    proc = run_cli("selfcross.run", "-m", "sweep_name=../../escaped", *TINY, cwd=cwd)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: sweep_name=../../escaped: must be a single folder name under multirun/ (no '/', "
        "'\\', '..' or absolute path)"
    ]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b"]


def test_a_job_locked_by_another_process_is_skipped(tmp_path, data_dir, capsys):
    cfg = compose([*base_overrides(tmp_path), f"paths.data_dir={data_dir}", "debug=fast"])
    out = tmp_path / "out"
    out.mkdir()
    with FileLock(out / ".lock"):  # another process's run of this job
        outcome = train_and_test(cfg)
    assert outcome.status == "busy" and outcome.record is None
    assert outcome.path == out / "result.json"  # where the other process will write it
    assert not (out / "result.json").exists() and not (out / "checkpoints.hash").exists()
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"running in another process, skipped: {out} ({out / '.lock'} is held)"
    )


def _popen(args, cwd=REPO):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "selfcross.run", *args]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_two_identical_sweeps_at_once_do_each_job_once(tmp_path, data_dir):
    args = ["-m", "seed=1,2", *TINY, "trainer.max_epochs=6", f"paths.data_dir={data_dir}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip
    procs = [_popen(args)]
    time.sleep(1.0)
    procs.append(_popen(args))
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    lines = "".join(outputs).splitlines()
    trained = [line for line in lines if line.startswith("test WA")]
    assert len(trained) == 2  # each job trained and tested once, in one process or the other
    assert any(line.startswith("running in another process, skipped") for line in lines)
    runs = sorted((tmp_path / "sweep").rglob("result.json"))
    assert [json.loads(p.read_text())["seed"] for p in runs] == [1, 2]
    rerun = run_cli("selfcross.run", *args)
    assert rerun.returncode == 0
    assert "0 jobs to run, 2 already complete" in rerun.stderr + rerun.stdout


def test_a_corrupt_last_checkpoint_is_set_aside_and_the_run_completes(tmp_path, data_dir):
    out = tmp_path / "run"
    args = [*TINY, "trainer.max_epochs=4", "resume.keep_checkpoints=all",
            f"paths.data_dir={data_dir}", f"hydra.run.dir={out}"]  # fmt: skip
    first = run_cli("selfcross.run", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    (out / "result.json").unlink()  # as if it had stopped after its last checkpoint
    last = out / "checkpoints" / "last.ckpt"
    cut = last.read_bytes()[:1000]
    last.write_bytes(cut)  # cut off mid-write
    again = run_cli("selfcross.run", *args)
    assert again.returncode == 0, again.stderr[-3000:]
    (corrupt,) = (out / "checkpoints").glob("last.ckpt.corrupt-*")
    assert corrupt.read_bytes() == cut  # set aside, not deleted
    warning = [line for line in again.stdout.splitlines() if "unreadable checkpoint" in line]
    assert len(warning) == 1 and warning[0].startswith(f"warning: {last}: ")
    record = json.loads((out / "result.json").read_text())
    assert record["resumed_from"].endswith("best.ckpt")  # the last good state it wrote
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3, 4]


def _val_epochs(metrics: Path) -> Counter:
    with metrics.open(newline="") as file:
        return Counter(int(float(r["epoch"])) + 1 for r in csv.DictReader(file) if r["val/uwa"])


def test_ctrl_c_stops_a_sweep_in_one_line_and_the_csv_log_survives_the_resume(tmp_path, data_dir):
    sweep = tmp_path / "sweep"
    second = sweep / "self" / "TVA" / "fold1" / "seed2"
    args = ["-m", "seed=1,2", "debug=fast", "logger=csv", "trainer.enable_progress_bar=false",
            "trainer.max_epochs=120", "callbacks.early_stopping.patience=1000",
            f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    proc = _popen(args)
    deadline = time.monotonic() + 1200  # generous: a loaded CI machine
    while not (second / "checkpoints" / "last.ckpt").exists():  # job 2 finished an epoch
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, output[-3000:]
    lines = [line for line in output.splitlines() if "nterrupt" in line]
    assert len(lines) == 2, output[-3000:]  # the job's line and the sweep's summary
    assert "error: interrupted by Ctrl-C (SIGINT) in epoch" in lines[0]
    assert "rerun the same command to resume" in lines[0]
    assert "interrupted: 1 of 2 jobs finished" in lines[1] and "Traceback" not in output
    assert not (second / "result.json").exists()

    rerun = run_cli("selfcross.run", *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    record = json.loads((second / "result.json").read_text())
    assert record["resumed_from"].endswith("last.ckpt")
    assert _val_epochs(second / "csv" / "metrics.csv") == Counter(range(1, 121))
