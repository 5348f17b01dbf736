"""Every file selfcross writes, written atomically in its own folder.

A file is written to a temporary file beside it (``.<name>.<random>.tmp``, so on the same file
system), flushed and fsynced, then renamed over the destination with ``os.replace``: a reader
sees the old file or the complete new one, never half of it, and a failed write removes its
temporary file, so nothing truncated stays behind and a previous good file is unchanged.

A write that fails for lack of room (a full disk, a quota, a read-only file system, a folder
the user may not write) raises :class:`~selfcross.errors.WriteError`, one line naming the file
and the free space where it was to go:
``cannot write /x/table1.csv: No space left on device (12 KiB free on /x)``.

:func:`atomic_file` gives an open handle, :func:`atomic_path` a temporary path for libraries
that write by name; the rest are the kinds selfcross writes (text, bytes, JSON, ``.npy``, a
figure, a YAML configuration). :func:`staged_dir` builds a whole folder beside its destination
and renames it into place. :func:`guard` names the file for a write done in place (inside a
staged folder, or by a library).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from selfcross.errors import WriteError

DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)
"""Errors of the storage, not of the program: said in one line, never a traceback."""


def free_space(path: str | Path) -> str:
    """The free space of the file system holding ``path`` (or its nearest existing folder),
    e.g. ``12 KiB free on /x``; ``unknown free space`` when it cannot be asked."""
    where = Path(path).absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
        stat = os.statvfs(where)
    except OSError:
        return "unknown free space"
    if stat.f_files and not stat.f_favail:  # bytes left, but no inode for a new file or folder
        return f"{human_bytes(free)} but no inode free on {where}"
    return f"{human_bytes(free)} free on {where}"


def human_bytes(n: int) -> str:
    """``n`` bytes in binary units: ``512 B``, ``12 KiB``, ``3.4 MiB``, ``1.2 GiB``."""
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{value:.0f} {unit}" if unit in ("B", "KiB") or value >= 100 else f"{value:.1f} {unit}"


def write_error(err: OSError, path: str | Path) -> WriteError | None:
    """``err`` as the one-line :class:`WriteError` for ``path`` when it is a storage error
    (:data:`DISK_ERRORS`), else None (a bug or another kind of failure keeps its traceback)."""
    if isinstance(err, WriteError):
        return err
    if not isinstance(err, OSError) or err.errno not in DISK_ERRORS:
        return None
    path = Path(path).absolute()
    return WriteError(path, err.strerror or os.strerror(err.errno), free_space(path.parent))


@contextmanager
def guard(path: str | Path) -> Iterator[None]:
    """Turn a storage error of the block into the one-line :class:`WriteError` for ``path``."""
    try:
        yield
    except OSError as err:
        problem = write_error(err, path)
        if problem is None or problem is err:
            raise
        raise problem from None


def make_folder(folder: str | Path) -> Path:
    """Create ``folder`` and its parents; a full disk (no room or no inode) is the one-line
    :class:`WriteError` naming it."""
    folder = Path(folder)
    with guard(folder):
        folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def atomic_path(path: str | Path, sync: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path``; once the block has written it, it is fsynced and
    renamed to ``path``. If the block fails, the temporary file is removed and ``path`` is
    left as it was. ``sync=False`` skips the fsyncs, for a file rewritten very often (the CSV
    log): still never half-written, but a power cut may lose its last version."""
    path = Path(path)
    with guard(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            if sync:
                _sync(tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; outputs are not
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if sync:
            _sync_folder(path.parent)


@contextmanager
def atomic_file(path: str | Path, mode: str = "w", sync: bool = True, **open_args) -> Iterator:
    """An open handle (``mode`` ``w`` or ``wb``) on a temporary file that becomes ``path``."""
    if "b" not in mode:
        open_args.setdefault("encoding", "utf-8")
    with atomic_path(path, sync) as tmp, open(tmp, mode, **open_args) as handle:
        yield handle


def write_text(path: str | Path, text: str, newline: str | None = None) -> Path:
    """``text`` as the file ``path``."""
    with atomic_file(path, "w", newline=newline) as handle:
        handle.write(text)
    return Path(path)


def write_texts(files: dict[Path, str], newline: str | None = None) -> list[Path]:
    """Several files as one: every temporary file is written before any is renamed, so a
    failed write leaves all of them as they were (a table's ``.md``, ``.tex`` and ``.csv``)."""
    with ExitStack() as stack:
        for path, text in files.items():
            handle = stack.enter_context(atomic_file(path, "w", newline=newline))
            handle.write(text)
    return list(files)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """``data`` as the file ``path``."""
    with atomic_file(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_json(path: str | Path, data) -> Path:
    """``data`` as indented JSON (with a final newline)."""
    text = json.dumps(data, indent=2)  # fails before anything is written
    return write_text(path, text + "\n")


def save_npy(path: str | Path, array) -> Path:
    """``array`` as a ``.npy`` file, never pickled."""
    import numpy as np

    with atomic_file(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    return Path(path)


def open_memmap(path: str | Path, dtype, shape: tuple[int, ...]):
    """A new ``.npy`` file of ``shape`` and ``dtype``, memory-mapped for writing, with its
    space reserved first: a full disk is then this one-line error instead of a SIGBUS when a
    page of the map is written (tmpfs and sparse files allocate on first touch). Write it
    inside a :func:`staged_dir`, which removes it if anything fails."""
    import numpy as np

    with guard(path):
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
        finally:
            os.close(fd)
    return array


def save_figure(fig, path: str | Path, **savefig_args) -> Path:
    """A Matplotlib figure in the format of ``path``'s suffix (``.png``, ``.pdf``, ...)."""
    path = Path(path)
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format=path.suffix.lstrip(".") or None, **savefig_args)
    return path


def save_yaml(cfg, path: str | Path) -> Path:
    """An OmegaConf configuration as YAML (Hydra's ``.hydra/*.yaml``, ``multirun.yaml``)."""
    from omegaconf import OmegaConf

    return write_text(path, OmegaConf.to_yaml(cfg))


@contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """A new folder beside ``target`` (``.<name>.partial-<process id>``) that the block fills;
    it is then renamed to ``target`` (which must not exist, or be an empty folder). A failed
    block removes it, so ``target`` is either absent or complete. Write its files with the
    writers above (or inside :func:`guard`) so that a full disk names the file."""
    target = Path(target)
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed process of the same id
    with guard(target):
        tmp.mkdir(parents=True)
    try:
        yield tmp
        with guard(target):
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    """Make the rename durable; some file systems cannot sync a folder, which is no error."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
