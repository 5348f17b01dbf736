"""Nothing lost: skipped finished runs, resumed interrupted ones, reproducible results."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from selfcross.analysis.results import find_result_files
from selfcross.config import compose
from selfcross.training import resume, rundir
from selfcross.training.experiment import train_and_test
from selfcross.training.record import read_record
from tests.conftest import REPO, base_overrides

VOLATILE = {"train_seconds", "test_seconds", "finished", "git_commit", "config"}
"""Timings and provenance; ``config`` differs only in output paths, as config_hash shows."""


def tiny(tmp_path, data_dir, *extra):
    return compose([*base_overrides(tmp_path), f"paths.data_dir={data_dir}", "debug=fast", *extra])


def comparable(outcome) -> dict:
    return {k: v for k, v in outcome.record.to_dict().items() if k not in VOLATILE}


def test_two_identical_cpu_runs_give_identical_results(tmp_path, data_dir):
    a = train_and_test(tiny(tmp_path / "a", data_dir))
    b = train_and_test(tiny(tmp_path / "b", data_dir))
    assert a.status == b.status == "done"
    assert comparable(a) == comparable(b)
    # the output folder is not part of the hash
    assert a.record.config_hash == b.record.config_hash


def test_another_seed_gives_another_run(tmp_path, data_dir):
    """The seed reaches the initialisation and the shuffling: seed 2 differs from seed 1
    (the same seed twice is identical: the test above)."""
    a = train_and_test(tiny(tmp_path / "a", data_dir, "trainer.max_epochs=1", "seed=1"))
    b = train_and_test(tiny(tmp_path / "b", data_dir, "trainer.max_epochs=1", "seed=2"))
    assert (a.record.seed, b.record.seed) == (1, 2)
    assert a.record.history[0]["train/loss"] != b.record.history[0]["train/loss"]
    assert a.record.test_loss != b.record.test_loss


def test_finished_run_is_skipped_and_a_changed_config_reruns(tmp_path, data_dir, capsys):
    first = train_and_test(tiny(tmp_path, data_dir))
    path = tmp_path / "out" / "result.json"
    stamp = path.stat().st_mtime_ns
    capsys.readouterr()
    again = train_and_test(tiny(tmp_path, data_dir))
    assert again.status == "skipped" and path.stat().st_mtime_ns == stamp
    assert again.path == path and again.record.to_dict() == first.record.to_dict()
    scores = f"test WA {first.record.test_wa:.3f}  UWA {first.record.test_uwa:.3f}"
    said = capsys.readouterr().out.splitlines()
    assert said == [f"already complete, skipped: {path} ({scores})"]
    changed = train_and_test(tiny(tmp_path, data_dir, "model.optimizer.lr=0.01"))
    assert changed.status == "done"
    assert changed.record.config_hash != first.record.config_hash
    assert json.loads(path.read_text())["config_hash"] == changed.record.config_hash
    # the finished run of the other configuration is kept, not overwritten
    kept = tmp_path / "out" / "superseded" / first.record.config_hash / "result.json"
    assert json.loads(kept.read_text())["test_uwa"] == first.record.test_uwa
    assert find_result_files(tmp_path / "out") == [path]  # the tables read the current run only


def test_a_run_stopped_after_a_checkpoint_resumes_from_it_unless_told_not_to(
    tmp_path, data_dir, monkeypatch, capsys
):
    """In process, the path a sweep job takes after a kill: result.json missing, last.ckpt
    there. The run continues from the checkpoint (no epoch trained again), names it, keeps
    the CSV log of the epochs the checkpoint holds and the checkpoints it was told to keep,
    closes its loggers with exit code 0 and ends with its one-line summary. Told
    ``resume.from_checkpoint=false``, the same job starts over instead."""
    from selfcross.training import experiment, gpus

    closed = []
    finish = experiment.tracking.finish

    def recorded_finish(loggers, code):
        closed.append(code)
        finish(loggers, code)

    monkeypatch.setattr(experiment.tracking, "finish", recorded_finish)
    settings = ("trainer.max_epochs=3", "callbacks.early_stopping.patience=100",
                "resume.keep_checkpoints=all", "logger=csv")  # fmt: skip
    first = train_and_test(tiny(tmp_path, data_dir, *settings))
    out = tmp_path / "out"
    (out / "result.json").unlink()  # killed after the last epoch's checkpoint
    capsys.readouterr()
    # a job of the local_gpus launcher holding slot 0 (its GPU is used only where CUDA is)
    monkeypatch.setenv(gpus.ENV_GPUS, "1")
    monkeypatch.setenv(gpus.ENV_SLOT_DIR, str(tmp_path / "slots"))
    again = train_and_test(tiny(tmp_path, data_dir, *settings))
    assert again.status == "done" and again.path == out / "result.json" and closed == [0, 0]
    assert (first.record.gpu_slot, again.record.gpu_slot) == (None, 0)
    assert again.record.resumed_from == str(out / "checkpoints" / "last.ckpt")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    r = again.record
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"test WA {r.test_wa:.3f}  UWA {r.test_uwa:.3f}  (majority-class rate "
        f"{r.majority_rate:.3f}; self TVA, fold 1, seed 1; best epoch {r.best_epoch} of 3, "
        f"{r.train_seconds:.0f} s)  -> {out / 'result.json'}"
    )
    assert again.record.history == first.record.history  # restored, not retrained
    assert again.record.test_uwa == first.record.test_uwa  # the same best checkpoint tested
    with (out / "csv" / "metrics.csv").open(newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("val/uwa")]
    assert sorted(int(float(row["epoch"])) + 1 for row in rows) == [1, 2, 3]

    (out / "result.json").unlink()
    fresh = train_and_test(tiny(tmp_path, data_dir, *settings, "resume.from_checkpoint=false"))
    assert fresh.status == "done" and fresh.record.resumed_from is None  # told to start over


def test_half_written_result_is_never_taken_as_a_result(tmp_path, data_dir):
    cfg = tiny(tmp_path, data_dir)
    out = tmp_path / "out"
    out.mkdir(parents=True)
    whole = json.dumps({"test_uwa": 0.99, "config_hash": resume.config_hash(cfg)})
    (out / "result.json").write_text(whole[: len(whole) // 2])  # cut off mid-write
    resume.mark_checkpoints(out, resume.config_hash(cfg))  # a run writes this first of all
    assert read_record(out / "result.json") is None
    assert resume.completed_result(out, resume.config_hash(cfg)) is None
    outcome = train_and_test(cfg)
    assert outcome.status == "done" and outcome.record.test_uwa != 0.99
    assert read_record(out / "result.json").test_uwa == outcome.record.test_uwa


def test_only_the_best_checkpoint_is_kept_by_default(tmp_path, data_dir):
    train_and_test(tiny(tmp_path, data_dir))
    assert sorted(p.name for p in (tmp_path / "out" / "checkpoints").iterdir()) == ["best.ckpt"]
    train_and_test(tiny(tmp_path / "all", data_dir, "resume.keep_checkpoints=all"))
    kept = sorted(p.name for p in (tmp_path / "all" / "out" / "checkpoints").iterdir())
    assert kept == ["best.ckpt", "last.ckpt"]


def test_checkpoints_of_another_configuration_are_not_resumed_but_kept(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.ckpt").write_bytes(b"old")
    resume.mark_checkpoints(out, "aaaa")
    assert rundir.supersede(out, "aaaa") is None  # its own: left in place
    assert resume.resume_checkpoint(out, "bbbb") is None
    assert (out / "checkpoints" / "last.ckpt").read_bytes() == b"old"  # not touched
    assert rundir.supersede(out, "bbbb") == out / "superseded" / "aaaa"
    assert (out / "superseded" / "aaaa" / "checkpoints" / "last.ckpt").read_bytes() == b"old"
    assert not (out / "checkpoints").exists() and not (out / rundir.HASH_FILE).exists()
    assert "superseded/aaaa" in capsys.readouterr().out


def _sweep(tmp_path, data_dir):
    return [sys.executable, "-m", "selfcross.run", "-m", "seed=1,2", "debug=fast",
            "logger=none", "trainer.enable_progress_bar=false", "trainer.max_epochs=40",
            "callbacks.early_stopping.patience=100", f"paths.data_dir={data_dir}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip


def test_sweep_killed_mid_job_resumes_without_redoing_finished_work(tmp_path, data_dir):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sweep = tmp_path / "sweep"
    second = sweep / "self" / "TVA" / "fold1" / "seed2"
    proc = subprocess.Popen(
        _sweep(tmp_path, data_dir),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 1200  # generous: a loaded CI machine
    while not (second / "checkpoints" / "last.ckpt").exists():  # job 2 has finished an epoch
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 143, output[-3000:]
    assert "interrupted by SIGTERM" in output
    first = sweep / "self" / "TVA" / "fold1" / "seed1" / "result.json"
    assert first.is_file() and not (second / "result.json").exists()
    stamp = first.stat().st_mtime_ns

    rerun = subprocess.run(_sweep(tmp_path, data_dir), cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=900)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "1 jobs to run, 1 already complete" in rerun.stdout + rerun.stderr
    assert first.stat().st_mtime_ns == stamp  # the finished job was not redone
    results = sorted(sweep.rglob("result.json"))
    assert results == [first, second / "result.json"]
    resumed = json.loads((second / "result.json").read_text())
    assert resumed["resumed_from"].endswith("last.ckpt")
    assert resumed["epochs"] == 40  # the learning curve continues where it stopped
    assert [h["epoch"] for h in resumed["history"]] == list(range(1, 41))


@pytest.mark.parametrize("keep", ["best", "none"])
def test_prune_checkpoints(tmp_path, keep):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    for name in ("best.ckpt", "last.ckpt"):
        (ckpt / name).write_bytes(b"x")
    resume.prune_checkpoints(tmp_path, keep, str(ckpt / "best.ckpt"))
    assert sorted(p.name for p in ckpt.iterdir()) == (["best.ckpt"] if keep == "best" else [])


def test_a_result_of_other_data_is_not_complete(tmp_path):
    """A fold edited after the run (same size, modification time put back): the run is redone;
    an older record without a contents hash is still complete while the layout matches."""
    import numpy as np
    from omegaconf import OmegaConf

    from selfcross.data.fingerprint import fingerprint
    from tests.helpers.foldkit import make_fold
    from tests.helpers.recordkit import write_run

    make_fold(tmp_path / "folds" / "fold02")
    cfg = OmegaConf.create(
        {"fold": 2, "data": {"root": str(tmp_path / "folds"), "cache_dir": str(tmp_path / "c")}}
    )
    out = tmp_path / "run"
    now = fingerprint(tmp_path / "folds" / "fold02")
    write_run(out, "self", "T", 2, 1, 0.5, 0.5, data={"fingerprint": now})
    assert resume.finished_run(cfg, out, "0" * 16) is not None
    assert resume.finished_run(cfg, out, "1" * 16) is None  # another configuration
    labels_path = tmp_path / "folds" / "fold02" / "test_label.npy"
    st = labels_path.stat()
    labels = np.load(labels_path)
    labels[0] = (labels[0] + 1) % 7
    np.save(labels_path, labels)
    os.utime(labels_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert resume.finished_run(cfg, out, "0" * 16) is None
    write_run(out, "self", "T", 2, 1, 0.5, 0.5, data={"fingerprint": now.split("-")[0]})
    assert resume.finished_run(cfg, out, "0" * 16) is not None  # written before contents
    assert resume.completed_result(out, "0" * 16) is not None  # no fingerprint: not checked


def test_a_new_key_at_its_backward_compatible_default_keeps_the_hash(monkeypatch):
    cfg = compose(["data=synthetic", "data.preset=tiny"])
    before = resume.config_hash(cfg)
    monkeypatch.setitem(resume.HASHED_UNLESS_DEFAULT, "model.network.new_knob", 0.0)
    monkeypatch.setitem(resume.HASHED_UNLESS_DEFAULT, "absent.group.key", 1)
    with_default = compose(["data=synthetic", "data.preset=tiny", "+model.network.new_knob=0.0"])
    assert resume.config_hash(with_default) == before
    assert "model.network.new_knob" not in resume.comparable_config(
        {"model": {"network": {"new_knob": 0.0}}}
    )
    other = compose(["data=synthetic", "data.preset=tiny", "+model.network.new_knob=0.5"])
    assert resume.config_hash(other) != before
    assert resume.comparable_config({"model": {"network": {"new_knob": 0.5}}}) == {
        "model.network.new_knob": "0.5"
    }


def test_last_checkpoint_is_the_last_finished_epoch_not_the_best(tmp_path, data_dir):
    # lr=1e-12 (0 is refused): validation UWA never improves after epoch 1, so the best epoch is
    # 1 of 3.
    settings = (
        "trainer.max_epochs=3", "model.optimizer.lr=1e-12",
        "callbacks.early_stopping.patience=100", "resume.keep_checkpoints=all",
    )  # fmt: skip
    outcome = train_and_test(tiny(tmp_path, data_dir, *settings))
    assert outcome.record.best_epoch == 1 and outcome.record.epochs == 3
    ckpts = tmp_path / "out" / "checkpoints"
    epoch = {p.name: torch.load(p, weights_only=True)["epoch"] for p in ckpts.iterdir()}
    assert epoch == {"best.ckpt": 0, "last.ckpt": 2}  # 0-based
    # Finished runs written before the callback existed keep their hash.
    old = tiny(tmp_path, data_dir, *settings, "~callbacks.last_checkpoint",
               "callbacks.model_checkpoint.save_last=true")  # fmt: skip
    assert resume.config_hash(old) == outcome.record.config_hash


def test_a_corrupt_record_in_the_runs_folder_is_said_before_the_run_is_redone(tmp_path, caplog):
    from omegaconf import OmegaConf

    out = tmp_path / "run"
    out.mkdir()
    (out / "result.json").write_text('{"model": "self", "test_wa": 0.5')  # cut off
    cfg = OmegaConf.create({"fold": 1, "data": {"root": str(tmp_path), "cache_dir": None}})
    with caplog.at_level("WARNING", logger="selfcross"):
        assert resume.finished_run(cfg, out, "0" * 16) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"{out / 'result.json'} cannot be read as a run record (corrupt, half-written "
        "or from a newer selfcross): the run is done again"
    ]
    caplog.clear()
    (out / "result.json").unlink()
    with caplog.at_level("WARNING", logger="selfcross"):
        assert resume.finished_run(cfg, out, "0" * 16) is None
    assert caplog.records == []  # no record at all: nothing to say
