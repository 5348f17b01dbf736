"""A full disk is said, contained and recovered from (issue 23, section 2).

Every file selfcross writes goes through ``selfcross.utils.atomic``: written beside its
destination, fsynced, renamed. A write that finds the disk full is one line naming the file and
the free space there, exit status 2; nothing truncated stays behind; the previous good file is
unchanged; the rerun after freeing space completes, and ``metrics.csv`` and ``result.json``
agree on every epoch.

The tests without a marker inject ENOSPC into the writes (``tests/helpers/diskkit.py``) and run
anywhere; those marked ``faults`` fill a real tmpfs (root only, as in CI: ``make test-faults``).
"""

from __future__ import annotations

import csv
import errno
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from selfcross.config import compose, user_errors
from selfcross.errors import WriteError
from selfcross.training.experiment import train_and_test
from selfcross.utils import atomic
from tests.conftest import base_overrides
from tests.helpers.diskkit import FREE, DiskFills, disk_line, leftovers, nth

RUN = ["debug=fast", "logger=csv", "resume.keep_checkpoints=all", "trainer.max_epochs=2"]


def test_a_failed_write_names_the_file_and_the_free_space_and_keeps_the_old_file(
    tmp_path, monkeypatch
):
    table = tmp_path / "tables" / "table1.csv"
    atomic.write_text(table, "old,good\n")
    disk = DiskFills(monkeypatch, lambda path: True)
    with pytest.raises(WriteError) as err:
        atomic.write_text(table, "new,rows\n" * 1000)
    assert re.fullmatch(disk_line(table), str(err.value))
    assert table.read_text() == "old,good\n" and leftovers(tmp_path) == []
    for write in (
        lambda p: atomic.save_npy(p, np.arange(1000)),
        lambda p: atomic.write_json(p, {"a": list(range(1000))}),
        lambda p: atomic.write_bytes(p, b"x" * 1000),
    ):
        with pytest.raises(WriteError, match=disk_line(tmp_path / "new" / "f")):
            write(tmp_path / "new" / "f")
    assert not (tmp_path / "new" / "f").exists() and leftovers(tmp_path) == []
    disk.free()
    assert atomic.write_text(table, "new\n").read_text() == "new\n"


def test_a_table_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """md, tex and csv of a table: a failure in the last leaves all three as they were."""
    files = {tmp_path / f"table1.{ext}": f"good {ext}\n" for ext in ("md", "tex", "csv")}
    atomic.write_texts(files)
    DiskFills(monkeypatch, lambda path: path.suffix == ".csv")
    with pytest.raises(WriteError, match=disk_line(tmp_path / "table1.csv")):
        atomic.write_texts({path: "new\n" * 100 for path in files})
    assert {p: p.read_text() for p in files} == files and leftovers(tmp_path) == []


def test_other_errors_keep_their_type_and_a_staged_folder_is_removed(tmp_path):
    with pytest.raises(ZeroDivisionError), atomic.staged_dir(tmp_path / "fold1") as tmp:
        atomic.write_text(tmp / "a.npy", "x")
        1 / 0  # noqa: B018
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError) as err, atomic.guard(tmp_path / "x"):
        raise OSError(errno.EIO, "Input/output error")
    assert err.value.errno == errno.EIO and not isinstance(err.value, WriteError)
    assert re.fullmatch(FREE + re.escape(str(tmp_path)), atomic.free_space(tmp_path / "a" / "b"))
    assert [atomic.human_bytes(n) for n in (0, 1023, 12 * 1024, 3 * 2**20 + 2**19)] == [
        "0 B", "1023 B", "12 KiB", "3.5 MiB"]  # fmt: skip


def test_hydras_job_files_are_atomic_and_their_failure_is_the_jobs(tmp_path, monkeypatch):
    """Hydra writes a job's .hydra/*.yaml before the job runs, outside its error handling:
    selfcross's writer (installed when selfcross.config is imported, as a sweep worker does
    with the job's task) keeps the failure for the job, which raises it as its one line."""
    import hydra.core.utils as hydra_utils
    from omegaconf import OmegaConf

    import selfcross.config  # noqa: F401 - installs the writer
    from selfcross.utils.hydra_files import raise_hydra_write_error

    folder = tmp_path / "job" / ".hydra"
    hydra_utils._save_config(OmegaConf.create({"a": 1}), "config.yaml", folder)
    assert (folder / "config.yaml").read_text() == "a: 1\n"
    raise_hydra_write_error()  # nothing failed
    DiskFills(monkeypatch, lambda path: path.name == "hydra.yaml")
    hydra_utils._save_config(OmegaConf.create({"b": 2}), "hydra.yaml", folder)  # no raise
    assert not (folder / "hydra.yaml").exists() and leftovers(tmp_path) == []
    with pytest.raises(WriteError, match=disk_line(folder / "hydra.yaml")):
        raise_hydra_write_error()
    raise_hydra_write_error()  # reported once


def val_rows(metrics: Path) -> dict[int, list[dict]]:
    """metrics.csv's rows by 1-based epoch: those of validation (val/uwa set)."""
    rows: dict[int, list[dict]] = {}
    with metrics.open(newline="") as file:
        for row in csv.DictReader(file):
            if row.get("val/uwa"):
                rows.setdefault(int(float(row["epoch"])) + 1, []).append(row)
    return rows


def assert_csv_agrees_with_record(out: Path) -> dict:
    """Every epoch of result.json's history is one validation row of metrics.csv, with the
    same values, and metrics.csv has no other epoch."""
    record = json.loads((out / "result.json").read_text())
    rows = val_rows(out / "csv" / "metrics.csv")
    epochs = [h["epoch"] for h in record["history"]]
    assert epochs == list(range(1, record["epochs"] + 1))
    assert sorted(rows) == epochs and all(len(r) == 1 for r in rows.values()), rows
    for entry in record["history"]:
        (row,) = rows[entry["epoch"]]
        for key in ("val/uwa", "val/wa", "val/loss", "val/f1"):
            assert float(row[key]) == pytest.approx(entry[key], rel=1e-6), (entry["epoch"], key)
    return record


def test_a_full_disk_mid_run_is_one_line_keeps_the_last_checkpoint_and_resumes(
    tmp_path, data_dir, monkeypatch, capsys
):
    """The disk fills while epoch 2's last.ckpt is written, and stays full. One line, exit
    status 2, no temporary or truncated file, last.ckpt still epoch 1's; a rerun that finds
    the disk full again keeps the CSV log; after freeing space the same run resumes from
    last.ckpt, and metrics.csv and result.json agree on every epoch."""
    cfg = compose([*base_overrides(tmp_path), f"paths.data_dir={data_dir}", *RUN])
    out = Path(cfg.paths.output_dir)
    last = out / "checkpoints" / "last.ckpt"
    # nothing is staged in the system's temporary folder (Lightning staged checkpoints there)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    disk = DiskFills(monkeypatch, nth("last.ckpt", 2))
    with pytest.raises(SystemExit) as stop, user_errors():
        train_and_test(cfg)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert re.fullmatch(f"error: {disk_line(last)}\n", err), err
    assert leftovers(out) == [] and not (out / "result.json").exists()
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0  # epoch 1's

    disk.free()
    # the disk is full again when the resume rewrites the CSV log: its rows are kept
    DiskFills(monkeypatch, lambda path: path.name == "metrics.csv")
    with pytest.raises(WriteError, match=disk_line(out / "csv" / "metrics.csv")):
        train_and_test(cfg)
    assert val_rows(out / "csv" / "metrics.csv").keys() == {1, 2}
    assert leftovers(out) == []

    monkeypatch.undo()  # space freed
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    outcome = train_and_test(cfg)
    assert outcome.status == "done" and outcome.record.resumed_from == str(last)
    record = assert_csv_agrees_with_record(out)
    assert record["epochs"] == 2 and leftovers(out) == []


def test_tables_over_good_ones_on_a_full_disk_keep_them(tmp_path, monkeypatch, capsys):
    """`tables table1` rewriting good tables when the disk is full: one line, exit 2, the
    previous tables byte for byte; the rerun with room writes them."""
    from tests.helpers.reportkit import GRID, write_cell

    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_cell(root, "self", "TV", [0.60, 0.62, 0.64, 0.66, 0.68, 0.70])
    args = ["table1", "--results", str(root), "--out", str(out), *GRID]
    tables_main(args)
    good = {p: p.read_bytes() for p in out.iterdir()}
    write_cell(root, "cross", "TV", [0.51, 0.50, 0.55, 0.53, 0.58, 0.57])  # a new cell
    capsys.readouterr()
    disk = DiskFills(monkeypatch, lambda path: path.name == "table1.csv")
    with pytest.raises(SystemExit) as stop:
        tables_main(args)
    assert stop.value.code == 2
    assert re.fullmatch(f"error: {disk_line(out / 'table1.csv')}\n", capsys.readouterr().err)
    assert {p: p.read_bytes() for p in out.iterdir()} == good and leftovers(out) == []
    disk.free()
    tables_main(args)
    assert (out / "table1.csv").read_bytes() != good[out / "table1.csv"]


def tables_main(args: list[str]) -> None:
    from selfcross.tables import main

    main(args)


# -- a real full disk: a small tmpfs (root, as in CI: `make test-faults`) ----------------------


@pytest.fixture
def disk(tmp_path):
    """A 32 MiB tmpfs on tmp_path/disk, unmounted afterwards."""
    from tests.helpers.diskkit import small_tmpfs

    with small_tmpfs(tmp_path / "disk", "32m") as where:
        yield where


def cli_error(proc) -> str:
    """The one line a failed command ends with; no traceback anywhere."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    return proc.stderr.strip().splitlines()[-1]


@pytest.mark.faults
def test_a_run_on_a_small_tmpfs_fails_in_one_line_and_resumes(disk, data_dir):
    """The disk fills as epoch 2 starts (1 MiB left, less than a checkpoint): the run stops at
    epoch 2's checkpoint with one line, exit 2, epoch 1's last.ckpt intact and nothing
    truncated; the same command, once the filler is removed, resumes and completes."""
    from tests.conftest import run_cli
    from tests.helpers.diskkit import FillDisk

    run = disk / "run"
    args = [*RUN, "trainer.enable_progress_bar=false", f"paths.data_dir={data_dir}",
            f"hydra.run.dir={run}", f"+callbacks.fill_disk._target_={FillDisk.__module__}"
            ".FillDisk", f"+callbacks.fill_disk.where={disk}", "+callbacks.fill_disk.at_epoch=2",
            f"+callbacks.fill_disk.leave={1 << 20}"]  # fmt: skip
    proc = run_cli("selfcross.run", *args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = cli_error(proc)
    assert re.fullmatch("error: " + disk_line(run / "checkpoints" / "X.ckpt").replace(
        "X\\.ckpt", "(best|last)\\.ckpt"), line), line  # fmt: skip
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0
    assert leftovers(run) == [] and not (run / "result.json").exists()

    (disk / "filler").unlink()
    rerun = run_cli("selfcross.run", *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    record = assert_csv_agrees_with_record(run)
    assert record["resumed_from"] == str(last) and leftovers(run) == []


@pytest.mark.faults
def test_a_sweep_on_a_full_tmpfs_fails_its_jobs_in_one_line_each_and_summarises(disk, data_dir):
    """No room at all: multirun.yaml is a warning, each job fails on Hydra's own
    .hydra/config.yaml with its line, the sweep ends with its summary (exit 1, no traceback);
    with room, the same command runs both jobs."""
    from tests.conftest import run_cli
    from tests.helpers.diskkit import fill

    sweep = disk / "sweep"
    args = ["-m", "seed=1,2", *RUN, "trainer.enable_progress_bar=false",
            f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    fill(disk)
    proc = run_cli("selfcross.run", *args)
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = cli_error(proc)
    job = sweep / "self" / "TVA" / "fold1" / "seed1"
    assert re.fullmatch(
        r"error: 2 of 2 jobs failed \(first: \[seed=1 .*\]: "
        + disk_line(job / ".hydra" / "config.yaml")
        + r"(; log: \S+)?\); rerun the same command to retry them, finished jobs are kept",
        line,
    ), line
    assert "multirun.yaml: No space left on device" in proc.stderr + proc.stdout
    assert leftovers(sweep) == []

    (disk / "filler").unlink()
    rerun = run_cli("selfcross.run", *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for seed in (1, 2):
        assert_csv_agrees_with_record(sweep / "self" / "TVA" / "fold1" / f"seed{seed}")


@pytest.mark.faults
def test_tables_on_a_full_tmpfs_keep_the_previous_ones(disk, tmp_path, capsys):
    from tests.helpers.diskkit import fill
    from tests.helpers.reportkit import GRID, write_cell

    root, out = tmp_path / "multirun", disk / "tables"
    write_cell(root, "self", "TV", [0.60, 0.62, 0.64, 0.66, 0.68, 0.70])
    args = ["table1", "--results", str(root), "--out", str(out), *GRID]
    tables_main(args)
    good = {p: p.read_bytes() for p in out.iterdir()}
    write_cell(root, "cross", "TV", [0.51, 0.50, 0.55, 0.53, 0.58, 0.57])
    fill(disk)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        tables_main(args)
    assert stop.value.code == 2
    line = capsys.readouterr().err
    assert re.fullmatch(f"error: {disk_line(out / 'table1.X')}\n".replace(
        r"table1\.X", r"table1\.(md|tex|csv)"), line), line  # fmt: skip
    assert {p: p.read_bytes() for p in out.iterdir()} == good and leftovers(out) == []
    (disk / "filler").unlink()
    tables_main(args)
    assert (out / "table1.csv").read_bytes() != good[out / "table1.csv"]


@pytest.mark.faults
def test_preparation_on_a_full_tmpfs_leaves_no_partial_fold(disk, tmp_path, capsys, monkeypatch):
    """The folds' size check aside (it would refuse before writing), a preparation whose fold
    writing finds the disk full stops in one line naming the file, leaves no partial fold
    folder; with room, the rerun reuses the cached features and writes the folds."""
    from selfcross.prepare import iemocap
    from tests.helpers.diskkit import fill
    from tests.helpers.preparekit import make_release, overrides
    from tests.helpers.releasekit import prepare_quietly, run_error

    (tmp_path / "release").mkdir()
    release = make_release(tmp_path / "release")
    out = disk / "folds"
    args = overrides(release, out, f"cache={tmp_path / 'cache'}", "folds=[1]", "check=false")
    monkeypatch.setattr(iemocap, "check_disk_space", lambda *args: 0)
    fill(disk, leave=64 << 10)
    line = run_error(args, capsys)
    assert re.fullmatch(
        "error: " + disk_line(out / ".fold01.partial" / "FILE").replace("FILE", r"[\w.]+"), line
    ), line
    assert not list(out.glob("fold*")) and leftovers(out) == []
    (disk / "filler").unlink()
    summary, _ = prepare_quietly(args)
    assert (out / "fold01" / "train_label.npy").is_file() and leftovers(out) == []
    assert summary["reused"]["audio"] > 0


@pytest.mark.faults
def test_no_inode_left_fails_each_job_and_a_single_run_in_one_line(tmp_path, data_dir):
    """Bytes left but no inode (a disk out of files, as ext4 runs out): the folders Hydra would
    create outside any job's error handling (the sweep's, each job's, run.log) used to end the
    sweep with a traceback. Now: no inode at all fails each job on its folder and a single run
    on its own (exit 2); a few inodes (the folders fit, the files do not) fail each job on its
    first file; with room again, the same sweep runs both jobs."""
    from tests.conftest import run_cli
    from tests.helpers.diskkit import small_tmpfs, use_inodes

    def summary(proc, first: Path) -> None:
        assert proc.returncode == 1, proc.stderr[-3000:]
        line = cli_error(proc)
        assert re.fullmatch(
            rf"error: 2 of 2 jobs failed \(first: \[seed=1 .*\]: cannot write "
            rf"{re.escape(str(first))}: No space left on device \(\S+ \S+ but no inode free on "
            r"\S+\)\); rerun the same command to retry them, finished jobs are kept", line
        ), line  # fmt: skip

    with small_tmpfs(tmp_path / "disk", "32m", inodes=64) as disk:
        sweep, job = disk / "sweep", disk / "sweep" / "self" / "TVA" / "fold1" / "seed1"
        args = ["-m", "seed=1,2", *RUN, "trainer.max_epochs=1",
                "trainer.enable_progress_bar=false", f"paths.data_dir={data_dir}",
                f"hydra.sweep.dir={sweep}"]  # fmt: skip
        used = use_inodes(disk)
        summary(run_cli("selfcross.run", *args), job)
        single = run_cli("selfcross.run", *args[2:5], f"paths.data_dir={data_dir}",
                         f"hydra.run.dir={disk / 'single'}")  # fmt: skip
        assert single.returncode == 2, single.stderr[-3000:]
        assert re.fullmatch(rf"error: cannot write {re.escape(str(disk / 'single'))}: .* but no "
                            "inode free on .*", cli_error(single))  # fmt: skip

        for path in used[:8]:  # sweep, self, TVA, fold1, seed1, seed2 and two .hydra folders
            path.unlink()
        summary(run_cli("selfcross.run", *args), job / ".hydra" / "config.yaml")

        for path in used[8:]:
            path.unlink()
        rerun = run_cli("selfcross.run", *args)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        for seed in (1, 2):
            assert (sweep / "self" / "TVA" / "fold1" / f"seed{seed}" / "result.json").is_file()
