"""What a run may do to its output folder: only ever remove what it wrote itself.

* A folder holding files that no selfcross run wrote is refused before anything is written
  (:func:`check_owned`), unless ``resume.allow_foreign_dir=true``.
* What a run of another configuration (or, with that override, a stranger) left where this run
  writes (``result.json``, ``csv/``, ``checkpoints/``) is moved to
  ``superseded/<its config hash>/`` and never deleted (:func:`supersede`).
* A lock per run folder (:func:`job_lock`) shows every other process that the run is under way.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from selfcross.data.inputs import INPUTS_FILE
from selfcross.errors import ConfigError
from selfcross.training.record import RESULT_FILE, read_record

log = logging.getLogger("selfcross")

HASH_FILE = "checkpoints.hash"
"""Beside ``checkpoints/``: the configuration hash its checkpoints were written under, and on a
second line the fingerprint of the fold they were trained on (once the data are read)."""
LOCK_FILE = ".lock"
SUPERSEDED = "superseded"
WRITTEN = (RESULT_FILE, "csv", "checkpoints", HASH_FILE, INPUTS_FILE)
"""Where a run writes its outputs: what is moved aside when it belongs to someone else."""
AROUND = (".hydra", LOCK_FILE, SUPERSEDED, "wandb")
"""Written by Hydra before the job starts, or by selfcross beside the outputs."""


def _is_selfcross_run(out_dir: Path) -> bool:
    """Its checkpoint hash file (written first of all) or a readable ``result.json``."""
    return (out_dir / HASH_FILE).is_file() or read_record(out_dir / RESULT_FILE) is not None


def foreign_entries(out_dir: Path) -> list[str]:
    """Names in ``out_dir`` that no selfcross run wrote (empty for a selfcross run folder)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir() or _is_selfcross_run(out_dir):
        return []
    return sorted(
        p.name for p in out_dir.iterdir() if p.name not in AROUND and not p.name.endswith(".log")
    )


def check_owned(out_dir: Path, allow_foreign: bool) -> None:
    """Refuse a non-empty folder that is not a selfcross run, before anything is written."""
    names = foreign_entries(out_dir)
    if names and not allow_foreign:
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise ConfigError(
            f"{out_dir}: folder holds files that are not a selfcross run ({shown}); choose "
            "another output folder, or set resume.allow_foreign_dir=true to write beside them "
            "(what is in the way is moved to superseded/, nothing is deleted)"
        )


def stored_marks(out_dir: Path) -> tuple[str | None, str | None]:
    """The configuration hash and data fingerprint in ``HASH_FILE`` (None where absent; a file
    written before fingerprints were recorded holds the hash only)."""
    hash_file = Path(out_dir) / HASH_FILE
    lines = hash_file.read_text().split() if hash_file.is_file() else []
    return (lines[0] if lines else None), (lines[1] if len(lines) > 1 else None)


def _stored_hash(out_dir: Path) -> str | None:
    if (out_dir / HASH_FILE).is_file():
        return stored_marks(out_dir)[0]
    record = read_record(out_dir / RESULT_FILE)
    return record.config_hash if record is not None else None


def set_aside(out_dir: Path, label: str) -> tuple[Path, list[str]] | None:
    """Move what a run wrote in ``out_dir`` to ``superseded/<label>/`` (with the UTC time added
    when that exists); returns where to and what was moved, None if nothing was there."""
    out_dir = Path(out_dir)
    present = [name for name in WRITTEN if (out_dir / name).exists()]
    if not present:
        return None
    target = out_dir / SUPERSEDED / label
    if target.exists():
        target = target.with_name(f"{label}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}")
    target.mkdir(parents=True)
    for name in present:
        shutil.move(str(out_dir / name), str(target / name))
    return target, present


def supersede(out_dir: Path, digest: str) -> Path | None:
    """Move outputs of another configuration (or foreign files where this run writes) to
    ``superseded/<their hash>/`` (``unknown-<UTC time>`` without one); returns where to."""
    out_dir = Path(out_dir)
    stored = _stored_hash(out_dir)
    if stored == digest:
        return None
    label = stored or "unknown-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    moved = set_aside(out_dir, label)
    if moved is None:
        return None
    what = f"the run of configuration {stored}" if stored else "files of unknown origin"
    print(f"kept {what}: moved {', '.join(moved[1])} to {moved[0]}", flush=True)
    return moved[0]


@contextmanager
def job_lock(out_dir: Path) -> Iterator[bool]:
    """Hold ``<out_dir>/.lock`` for the run; yields False (without waiting) when another
    process holds it."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    lock = FileLock(Path(out_dir) / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
