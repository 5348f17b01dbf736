"""training/resume.py on hand-made configurations and files, without training.

What the run hash leaves out and what it keeps, the flattened configuration compared between
runs, which checkpoint an interrupted run resumes from, and which are kept after it finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from selfcross.config import compose
from selfcross.data.fingerprint import MEMO_DIR, fingerprint
from selfcross.training import resume
from selfcross.training.rundir import HASH_FILE
from tests.conftest import base_overrides


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hash")
    overrides = [*base_overrides(tmp), "data.preset=tiny"]
    return overrides, resume.config_hash(compose(overrides))


@pytest.mark.parametrize(
    "override",
    [
        "paths.output_dir=/elsewhere/run",
        "paths.cache_dir=/elsewhere/cache",
        "logger=csv",
        "sweep_name=another",
        "threads=3",
        "resume.keep_checkpoints=all",
        "trainer.enable_progress_bar=true",
        "trainer.log_every_n_steps=7",
        "trainer.enable_model_summary=true",
        "data.cache_dir=/elsewhere/data-cache",
        "data.on_device=cpu",
        "data.num_workers=2",
        "data.n_folds=10",
        "data.class_counts=[1,2,3,4,5,6,7]",
        "model._target_=selfcross.models.Other",
        "model.best_metric=val/wa",
        "model.class_names=[a,b,c,d,e,f,g]",
    ],
)
def test_hash_leaves_out_what_cannot_change_the_numbers(base, override):
    overrides, digest = base
    assert resume.config_hash(compose([*overrides, override])) == digest


@pytest.mark.parametrize(
    "override",
    [
        "seed=2",
        "fold=2",
        "model.optimizer.lr=0.002",
        "data.batch_size=16",
        "data.audio_standardize=none",
        "trainer.max_epochs=7",
        "monitor.metric=val/wa",
    ],
)
def test_hash_changes_with_what_can_change_the_numbers(base, override):
    overrides, digest = base
    assert re.fullmatch("[0-9a-f]{16}", digest)
    assert resume.config_hash(compose([*overrides, override])) != digest


def test_a_new_key_away_from_its_default_is_hashed_and_compared(base, monkeypatch):
    overrides, digest = base
    monkeypatch.setitem(resume.HASHED_UNLESS_DEFAULT, "model.network.new_knob", 0.0)
    monkeypatch.setitem(resume.HASHED_UNLESS_DEFAULT, "seed.below_a_value", 0)  # not a group
    assert resume.config_hash(compose([*overrides, "+model.network.new_knob=0.0"])) == digest
    assert resume.config_hash(compose([*overrides, "+model.network.new_knob=0.5"])) != digest
    flat = resume.comparable_config({"model": {"network": {"new_knob": 0.5}}, "seed": 1})
    assert flat == {"model.network.new_knob": "0.5", "seed": "1"}


def test_comparable_config_flattens_and_hides_the_runs_own_folder():
    config = {
        "paths": {"output_dir": "/runs/a", "data_dir": "/data"},
        "logger": {"name": "csv"},
        "trainer": {"max_epochs": 3, "enable_progress_bar": False},
        "data": {"num_workers": 4, "root": "/data/fold01"},
        "model": {"_target_": "x.Y", "optimizer": {"lr": 0.001}, "name": "cross"},
        "callbacks": {"checkpoint": {"dirpath": "/runs/a/checkpoints"}},
        "extra": {},
        "tags": ["a", 1],
        "groups": [{"b": 1, "a": 2}],  # dicts inside lists: keys sorted
        "where": Path("/data/x"),  # not JSON: written as text
    }
    before = repr(config)
    assert resume.comparable_config(config) == {
        "trainer.max_epochs": "3",
        "data.root": '"/data/fold01"',
        "model.optimizer.lr": "0.001",
        "model.name": '"cross"',
        "callbacks.checkpoint.dirpath": '"<output_dir>/checkpoints"',
        "extra": "{}",
        "tags": '["a", 1]',
        "groups": '[{"a": 2, "b": 1}]',
        "where": '"/data/x"',
    }
    assert repr(config) == before  # the caller's record is not modified
    # without an output folder nothing is replaced
    assert resume.comparable_config({"callbacks": {"dir": "/runs/a"}}) == {
        "callbacks.dir": '"/runs/a"'
    }


def _checkpoint(path, state=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.ones(2)}} if state is None else state, path)


def test_resume_takes_last_then_best_and_sets_unreadable_ones_aside(tmp_path, capsys):
    out = tmp_path / "run"
    ckpt = out / "checkpoints"
    assert resume.resume_checkpoint(out, "d1") is None  # nothing written yet
    _checkpoint(ckpt / "last.ckpt")
    _checkpoint(ckpt / "best.ckpt")
    assert resume.resume_checkpoint(out, "d1") is None  # no hash file: not known to be ours
    resume.mark_checkpoints(out, "d1")
    assert (out / HASH_FILE).read_text() == "d1\n"
    assert resume.resume_checkpoint(out, "d2") is None
    assert resume.resume_checkpoint(out, "d1") == ckpt / "last.ckpt"

    (ckpt / "last.ckpt").write_bytes(b"cut off")
    assert resume.resume_checkpoint(out, "d1") == ckpt / "best.ckpt"
    aside = [p.name for p in ckpt.iterdir() if p.name.startswith("last.ckpt.")]
    assert len(aside) == 1 and re.fullmatch(r"last\.ckpt\.corrupt-\d{8}T\d{6}Z", aside[0])
    assert (ckpt / aside[0]).read_bytes() == b"cut off"  # kept, not deleted
    said = capsys.readouterr().out
    assert f"warning: {ckpt / 'last.ckpt'}: unreadable checkpoint (" in said
    assert f"kept as {aside[0]}, resuming from the last good state" in said

    _checkpoint(ckpt / "best.ckpt", {"epoch": 3})  # a dict without weights
    assert resume.resume_checkpoint(out, "d1") is None
    assert "unreadable checkpoint (no state_dict)" in capsys.readouterr().out
    _checkpoint(ckpt / "last.ckpt", torch.zeros(3))  # not a dict
    assert resume.resume_checkpoint(out, "d1") is None
    names = {p.name.split(".corrupt-")[0] for p in ckpt.iterdir()}
    assert names == {"best.ckpt", "last.ckpt"}  # both set aside, none left to resume from
    assert not (ckpt / "best.ckpt").exists() and not (ckpt / "last.ckpt").exists()


class Foreign:
    """An object only unpickling can rebuild: a checkpoint holding one is not loaded."""


def test_unreadable_checkpoints_are_named_by_their_error_and_stamped_in_utc(
    tmp_path, capsys, monkeypatch
):
    out, ckpt = tmp_path / "run", tmp_path / "run" / "checkpoints"
    resume.mark_checkpoints(out, "d1")
    _checkpoint(ckpt / "last.ckpt", {"state_dict": {}, "extra": Foreign()})
    with pytest.raises(Exception) as refused:  # what torch says, first line, 80 characters
        torch.load(ckpt / "last.ckpt", map_location="cpu", weights_only=True)
    reason = str(refused.value).splitlines()[0][:80]
    assert len(reason) == 80
    (ckpt / "best.ckpt").write_bytes(b"")  # an empty file: an error with no message
    monkeypatch.setenv("TZ", "Etc/GMT-9")  # local time 9 hours ahead of UTC
    time.tzset()
    try:
        assert resume.resume_checkpoint(out, "d1") is None
        now = datetime.now(UTC).replace(tzinfo=None)
    finally:
        monkeypatch.undo()
        time.tzset()
    said = capsys.readouterr().out
    assert f"last.ckpt: unreadable checkpoint ({reason}); kept as last.ckpt.corrupt-" in said
    assert "best.ckpt: unreadable checkpoint (EOFError); kept as best.ckpt.corrupt-" in said
    for path in ckpt.iterdir():
        stamp = datetime.strptime(path.name.split(".corrupt-")[1], "%Y%m%dT%H%M%SZ")
        assert abs((now - stamp).total_seconds()) < 120


def test_finished_run_memoises_the_fingerprint_and_says_why_a_run_is_redone(tmp_path, caplog):
    from omegaconf import OmegaConf

    from tests.helpers.foldkit import make_fold
    from tests.helpers.recordkit import write_run

    make_fold(tmp_path / "folds" / "fold02")
    cache = tmp_path / "cache"
    cfg = OmegaConf.create(
        {"fold": 2, "data": {"root": str(tmp_path / "folds"), "cache_dir": str(cache)}}
    )
    now = fingerprint(tmp_path / "folds" / "fold02")  # computed here without a memo
    write_run(tmp_path / "run", "self", "T", 2, 1, 0.5, 0.5, data={"fingerprint": now})
    assert not cache.exists()
    assert resume.finished_run(cfg, tmp_path / "run", "0" * 16) is not None
    assert any((cache / MEMO_DIR).iterdir())
    np.save(tmp_path / "folds" / "fold02" / "test_label.npy", np.zeros(14, np.int64))
    with caplog.at_level(logging.INFO, logger="selfcross"):
        assert resume.finished_run(cfg, tmp_path / "run", "0" * 16) is None
    later = fingerprint(tmp_path / "folds" / "fold02")
    assert caplog.messages == [
        f"{tmp_path / 'run' / 'result.json'} was computed on other data (fingerprint {now}, "
        f"the fold's is now {later}): redone"
    ]


def test_mark_checkpoints_creates_the_run_folder(tmp_path):
    resume.mark_checkpoints(tmp_path / "a" / "b", "d1")
    assert (tmp_path / "a" / "b" / HASH_FILE).read_text() == "d1\n"


def test_prune_keeps_all_or_the_best_by_its_resolved_path(tmp_path):
    ckpt = tmp_path / "checkpoints"

    def write():
        ckpt.mkdir(exist_ok=True)
        for name in ("best.ckpt", "last.ckpt", "epoch=3.ckpt", "notes.txt"):
            (ckpt / name).write_bytes(b"x")

    write()
    resume.prune_checkpoints(tmp_path, "all", str(ckpt / "best.ckpt"))
    assert len(list(ckpt.iterdir())) == 4
    resume.prune_checkpoints(tmp_path, "best", str(ckpt / ".." / "checkpoints" / "best.ckpt"))
    assert sorted(p.name for p in ckpt.iterdir()) == ["best.ckpt", "notes.txt"]
    write()
    resume.prune_checkpoints(tmp_path, "best", None)  # no best checkpoint: none is kept
    assert sorted(p.name for p in ckpt.iterdir()) == ["notes.txt"]
    resume.prune_checkpoints(tmp_path / "never-ran", "none", None)  # no folder: nothing to do


def test_the_hash_of_a_known_configuration_never_changes():
    """Finished runs are recognised by this hash: a change in how it is computed (placeholders,
    key order, digest, length) would redo every run already written. The payload is written
    out by hand: unhashed keys gone, the run's folders as placeholders, interpolations resolved
    against them."""
    cfg = OmegaConf.create(
        {
            "seed": 1,
            "paths": {"output_dir": "/runs/a", "cache_dir": "/data/cache", "data_dir": "/data"},
            "model": {"name": "cross", "optimizer": {"lr": 0.001}},
            "callbacks": {"checkpoint": {"dirpath": "${paths.output_dir}/checkpoints"}},
            "data": {"root": "${paths.data_dir}/fold01", "cache_dir": "${paths.cache_dir}",
                     "num_workers": 2},
            "logger": {"name": "csv"},
            "trainer": {"max_epochs": 3, "enable_progress_bar": False},
        }
    )  # fmt: skip
    payload = {
        "callbacks": {"checkpoint": {"dirpath": "<output_dir>/checkpoints"}},
        "data": {"root": "/data/fold01"},
        "model": {"name": "cross", "optimizer": {"lr": 0.001}},
        "paths": {"cache_dir": "<cache_dir>", "data_dir": "/data", "output_dir": "<output_dir>"},
        "seed": 1,
        "trainer": {"max_epochs": 3},
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    assert resume.config_hash(cfg) == digest == "d32fc5aaf1202d46"


def test_a_path_in_a_configuration_built_in_python_hashes_as_its_text():
    as_path = OmegaConf.create({"data": {"root": Path("/data/fold01")}})
    as_text = OmegaConf.create({"data": {"root": "/data/fold01"}})
    assert resume.config_hash(as_path) == resume.config_hash(as_text)
