"""SIGTERM and SIGINT in every phase of a real run, sent by the kernel to a command started as a
user starts it (its own process group, SIGINT not ignored): one line naming the phase, exit
status 143 / 130, no ``result.json`` unless complete, and the same command, run again, finds
its folder and resumes there (tests/faults/signalkit.py fires the signal)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.faults.signalkit import launch

TINY = ["debug=fast", "logger=none", "trainer.enable_progress_bar=false",
        "callbacks.early_stopping.patience=100"]  # fmt: skip
NAMES = {"SIGTERM": "SIGTERM", "SIGINT": "Ctrl-C (SIGINT)"}
CODES = {"SIGTERM": 143, "SIGINT": 130}


def said(proc) -> list[str]:
    """The lines on stderr about the interruption."""
    return [line for line in proc.stderr.splitlines() if "interrupted" in line]


def run_folder(proc) -> Path:
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("run folder: ")]
    return Path(line.split()[2])


# Each phase gets SIGTERM, then SIGINT in the rerun that reaches it again; the next phase is
# reached by the rerun after that. "in epoch 2": the signal comes once epoch 2's last.ckpt is
# written, and the rerun resumes there and is stopped after epoch 3.
RESUME = "rerun the same command to resume"
CHAIN = [
    ("data", "SIGTERM", f"while preparing the data; {RESUME}"),
    ("data", "SIGINT", f"while preparing the data; {RESUME}"),
    ("fit", "SIGTERM", f"in epoch 2; {RESUME} from the last finished epoch"),
    ("fit", "SIGINT", f"in epoch 3; {RESUME} from the last finished epoch"),
    ("test", "SIGTERM", f"while testing the best checkpoint; {RESUME}"),
    ("test", "SIGINT", f"while testing the best checkpoint; {RESUME}"),
    ("record", "SIGTERM", f"while writing the record; {RESUME}"),
    ("record", "SIGINT", f"while writing the record; {RESUME}"),
]


def test_each_signal_in_each_phase_of_a_single_run_and_the_rerun_resumes(tmp_path, data_dir):
    args = [*TINY, f"paths.data_dir={data_dir}"]  # no hydra.run.dir: the run picks its folder
    folder = None
    for phase, signame, where in CHAIN:
        proc = launch(phase, signame, "selfcross.run", *args, cwd=tmp_path)
        context = f"{phase}/{signame}: {proc.stderr[-3000:]}"
        assert proc.returncode == CODES[signame], context
        assert "Traceback" not in proc.stderr + proc.stdout, context
        folder = folder or run_folder(proc)
        assert run_folder(proc) == folder  # the same command finds the same folder
        assert said(proc) == [f"error: interrupted by {NAMES[signame]} {where} "
                              f"({tmp_path / folder})"], context  # fmt: skip
        assert not (tmp_path / folder / "result.json").exists(), context
        leftovers = [p.name for p in (tmp_path / folder).iterdir() if p.suffix == ".tmp"]
        assert leftovers == [], context
        if (phase, signame) in (("fit", "SIGINT"), ("test", "SIGTERM")):  # after epochs 2, 3
            assert f"Resuming from {tmp_path / folder / 'checkpoints' / 'last.ckpt'}" in (
                proc.stdout + proc.stderr
            ), context
    assert folder.parts[:2] == ("outputs", "self-TVA-fold1-seed1")
    assert re.fullmatch(r"[0-9a-f]{16}", folder.name)

    # Interrupted once its record is written: the work is done, so it says so and exits 0.
    done = launch("finished", "SIGTERM", "selfcross.run", *args, cwd=tmp_path)
    result = tmp_path / folder / "result.json"
    assert done.returncode == 0, done.stderr[-3000:]
    assert said(done) == [f"interrupted by SIGTERM after the run ({result}) had finished; "
                          "nothing to redo"]  # fmt: skip
    record = json.loads(result.read_text())
    assert record["config_hash"] == folder.name
    assert record["resumed_from"] == str(tmp_path / folder / "checkpoints" / "last.ckpt")
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3]  # nothing trained twice
    assert record["test_uwa"] is not None
    # rerun: skipped as complete; Ctrl-C then changes nothing and says so
    again = launch("finished", "SIGINT", "selfcross.run", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"already complete, skipped: {result}" in again.stdout
    assert said(again) == [f"interrupted by Ctrl-C (SIGINT) after the run ({result}) had "
                           "finished; nothing to redo"]  # fmt: skip
    assert json.loads(result.read_text()) == record
    assert [p.name for p in (tmp_path / "outputs").rglob("result.json")] == ["result.json"]
