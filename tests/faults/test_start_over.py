"""What a rerun may take from the run folder: ``resume.skip_complete=false`` trains a fresh run
(the finished one moved aside), and checkpoints resume only on the data they were trained on
(the fold's fingerprint is recorded beside their configuration hash)."""

from __future__ import annotations

import json

import numpy as np

from selfcross.config import compose
from selfcross.training import resume, rundir
from selfcross.training.experiment import train_and_test
from tests.conftest import base_overrides

SETTINGS = ("debug=fast", "trainer.max_epochs=3", "callbacks.early_stopping.patience=100")


def tiny(tmp_path, data_dir, *extra):
    return compose([*base_overrides(tmp_path), f"paths.data_dir={data_dir}", *SETTINGS, *extra])


def test_skip_complete_false_trains_from_epoch_1_like_a_fresh_run(tmp_path, data_dir, capsys):
    fresh = train_and_test(tiny(tmp_path, data_dir))
    out = tmp_path / "out"
    kept = json.loads((out / "result.json").read_text())
    capsys.readouterr()
    again = train_and_test(tiny(tmp_path, data_dir, "resume.skip_complete=false"))
    assert again.status == "done" and again.record.resumed_from is None
    # the same learning curve as the fresh run, epoch by epoch (CPU runs are deterministic)
    assert [h["epoch"] for h in again.record.history] == [1, 2, 3]
    assert again.record.history == fresh.record.history
    assert again.record.test_uwa == fresh.record.test_uwa
    digest = fresh.record.config_hash
    aside = out / "superseded" / digest
    assert json.loads((aside / "result.json").read_text()) == kept  # moved, not deleted
    assert (aside / "checkpoints" / "best.ckpt").is_file()
    lines = capsys.readouterr().out.splitlines()
    assert f"kept the finished run of configuration {digest}: moved result.json, checkpoints, " \
        f"checkpoints.hash, inputs.json to {aside}; training from epoch 1" in lines  # fmt: skip


def test_checkpoints_resume_only_on_the_data_they_were_trained_on(tmp_path, capsys):
    data = tmp_path / "data"  # its own folds: one is edited below
    first = train_and_test(tiny(tmp_path, data, "resume.keep_checkpoints=all"))
    out, digest = tmp_path / "out", first.record.config_hash
    (out / "result.json").unlink()  # as if stopped after its last checkpoint
    trained_on = first.record.data.fingerprint
    assert rundir.stored_marks(out) == (digest, trained_on)
    last = out / "checkpoints" / "last.ckpt"
    assert resume.resume_checkpoint(out, digest, trained_on) == last  # same data: resumed

    labels_path = first.record.data.fold_path + "/test_label.npy"
    labels = np.load(labels_path)
    labels[0] = (labels[0] + 1) % 7
    np.save(labels_path, labels)  # the fold edited while the run was stopped
    capsys.readouterr()
    again = train_and_test(tiny(tmp_path, data, "resume.keep_checkpoints=all"))
    assert again.status == "done" and again.record.resumed_from is None  # started over
    assert [h["epoch"] for h in again.record.history] == [1, 2, 3]
    now = again.record.data.fingerprint
    assert now != trained_on and rundir.stored_marks(out) == (digest, now)
    (aside,) = (out / "superseded").iterdir()
    assert (aside / "checkpoints" / "last.ckpt").is_file()  # set aside, not deleted
    warnings = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert warnings == [
        f"warning: {out / 'checkpoints'}: written on other data (fingerprint {trained_on}, the "
        f"fold's is now {now}); kept in {aside}, training from epoch 1"
    ]


def test_a_checkpoint_mark_without_a_fingerprint_still_resumes(tmp_path):
    """Written before fingerprints were recorded: the hash alone decides, as before."""
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / rundir.HASH_FILE).write_text("d1\n")
    assert rundir.stored_marks(out) == ("d1", None)
    assert resume.resume_checkpoint(out, "d1", "layout-contents") is None  # no checkpoint yet
    resume.mark_checkpoints(out, "d1")
    assert (out / rundir.HASH_FILE).read_text() == "d1\n"
    resume.mark_checkpoints(out, "d1", "aa-bb")
    resume.mark_checkpoints(out, "d1")  # before the data are read: the fingerprint stays
    assert rundir.stored_marks(out) == ("d1", "aa-bb")
    resume.mark_checkpoints(out, "d2")
    assert rundir.stored_marks(out) == ("d2", None)
