"""Full disks for the tests: a small tmpfs, and ENOSPC injected into selfcross's writes.

- :func:`small_tmpfs`: a tmpfs of a given size mounted on a fresh folder (root only: CI runs as
  root; elsewhere the test fails, it never skips), unmounted when the test ends.
- :func:`fill`, and :class:`FillDisk`, a callback that fills the disk as an epoch starts.
- :class:`DiskFills`: every file selfcross writes goes through ``selfcross.utils.atomic``; this
  replaces the ``open`` that module uses, so that from a chosen write on, each write stores
  part of its data and then fails with ENOSPC, as a full disk does, until :meth:`free` is
  called. It runs anywhere, in-process.
"""

from __future__ import annotations

import builtins
import errno
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from selfcross.utils import atomic

FREE = r"\d+(\.\d)? (B|KiB|MiB|GiB|TiB) free on "
"""The free-space part of a disk error, before the folder."""


def disk_line(path: Path | str, folder: Path | str | None = None) -> str:
    """The regular expression of the one-line error for ``path`` (full disk, free space)."""
    folder = Path(path).parent if folder is None else folder
    return (
        rf"cannot write {re.escape(str(path))}: No space left on device "
        rf"\({FREE}{re.escape(str(folder))}\)"
    )


@contextmanager
def small_tmpfs(where: Path, size: str, inodes: int | None = None) -> Iterator[Path]:
    """A tmpfs of ``size`` (``mount -o size=``) mounted on ``where``, with at most ``inodes``
    files and folders when given (``nr_inodes``); unmounted afterwards."""
    assert os.geteuid() == 0, "the full-disk tests mount a tmpfs: run them as root (CI does)"
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (f",nr_inodes={inodes}" if inodes else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of ``folder`` up to ``leave`` bytes free with ``folder/filler``."""
    filler = folder / "filler"
    block = b"\0" * (1 << 20)
    with filler.open("ab") as handle:
        while (room := os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize - leave) > 0:
            try:
                handle.write(block[: min(len(block), room)])
                handle.flush()
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                break
    return filler


def use_inodes(folder: Path, leave: int = 0) -> list[Path]:
    """Create empty files in ``folder`` until only ``leave`` inodes are free; returns them."""
    made = []
    while os.statvfs(folder).f_favail > leave:
        made.append(folder / f"inode{len(made)}")
        made[-1].touch()
    return made


def leftovers(folder: Path) -> list[Path]:
    """Temporary or empty files a failed write may have left under ``folder`` (a lock file and
    a log that the full disk kept empty do not count)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if (p.is_file() and (p.name.endswith(".tmp") or p.stat().st_size == 0)
            and p.name != ".lock" and p.suffix != ".log")
        or ".partial" in p.name
    )  # fmt: skip


class _FailingFile:
    """A file whose writes store half their data and then fail, as on a full disk."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        self._handle.write(data[: len(data) // 2])
        self._handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


class DiskFills:
    """From the first write whose destination ``when(path)`` accepts, every write of
    ``selfcross.utils.atomic`` fails with ENOSPC (until :meth:`free`). ``written`` lists the
    destinations written before; ``failed`` those that failed."""

    def __init__(self, monkeypatch, when: Callable[[Path], bool]):
        self.when, self.full = when, False
        self.written: list[Path] = []
        self.failed: list[Path] = []
        monkeypatch.setattr(atomic, "open", self._open, raising=False)

    def free(self) -> None:
        self.full = False
        self.when = lambda path: False

    def _open(self, tmp, mode="r", **kwargs):
        handle = builtins.open(tmp, mode, **kwargs)
        target = Path(tmp).parent / re.sub(r"^\.(.*)\.[^.]+\.tmp$", r"\1", Path(tmp).name)
        if not self.full and self.when(target):
            self.full = True
        if self.full:
            self.failed.append(target)
            return _FailingFile(handle)
        self.written.append(target)
        return handle


def nth(name: str, n: int) -> Callable[[Path], bool]:
    """A :class:`DiskFills` trigger: the ``n``-th write (1-based) of a file named ``name``."""
    seen = []

    def when(path: Path) -> bool:
        if path.name == name:
            seen.append(path)
        return len(seen) >= n

    return when


class FillDisk(Callback):
    """A Lightning callback (``+callbacks.fill_disk._target_=tests.helpers.diskkit.FillDisk``)
    that fills the disk of ``where`` up to ``leave`` bytes when epoch ``at_epoch`` (1-based)
    starts, once: ``where/filled`` remembers it, so the rerun of the same command (the space
    freed) is not filled again."""

    def __init__(self, where: str, at_epoch: int, leave: int):
        self.where, self.at_epoch, self.leave = Path(where), at_epoch, leave

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        marker = self.where / "filled"
        if trainer.current_epoch + 1 == self.at_epoch and not marker.exists():
            marker.write_text("once\n")
            fill(self.where, self.leave)
