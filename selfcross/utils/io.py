"""JSON records written atomically (``atomic.py``), writable folders and provenance."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from selfcross.utils import atomic


def write_json_atomic(path: str | Path, data) -> Path:
    """Write JSON so that ``path`` is either the old file or the complete new one, never half
    (:func:`selfcross.utils.atomic.write_json`, the one place files are written)."""
    return atomic.write_json(path, data)


def git_commit(directory: str | Path | None = None) -> str | None:
    """The commit of the selfcross checkout (with ``-dirty`` if modified), or None."""
    directory = Path(directory or Path(__file__).resolve().parent)
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def writable_dir(path: str | Path, setting: str) -> Path:
    """``path`` created if needed and checked writable; else a DataError naming the folder (as
    an absolute path) and ``setting``, the configuration that moves it elsewhere."""
    from selfcross.errors import DataError

    path = Path(path).absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise DataError(
            path, f"cannot write here ({err.strerror}); set {setting} to a writable folder"
        ) from None
    return path
