"""The fold fingerprint: which data a run read, contents included.

``<layout>-<contents>``: ``layout`` hashes every ``.npy`` file's name, shape, dtype and size
(what fingerprints held before contents were added), ``contents`` hashes the files' bytes
(SHA-256, read in blocks). Records written before contents were hashed hold the layout part
only; ``training.record.same_data`` compares what both sides have.

Hashing a paper-size fold reads about 5 GB (docs/performance.md). Each file's digest is kept in
a memo under the cache folder, keyed by path, size, inode and the modification and change
times: the change time (ctime) moves on every write and on every ``touch``/``utime``, so a
same-size edit whose modification time was put back still gives a new digest, while runs of
unchanged data (and the skip check of finished runs) read a few bytes of metadata per file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from selfcross.data.npy import fold_dir, npy_header
from selfcross.errors import DataError, WriteError
from selfcross.utils import atomic

log = logging.getLogger(__name__)

BLOCK_BYTES = 8 << 20
"""Bytes read at a time while hashing (memory stays bounded whatever the file size)."""
MEMO_DIR = "digests"
"""Under the cache folder: one small JSON file per data file hashed."""


def file_digest(path: Path) -> str:
    """SHA-256 of the file's contents, read in blocks. (Measured on the 2-core AMD EPYC this
    was written on: 540 MB/s, against 265 MB/s for BLAKE2b, thanks to the CPU's SHA
    instructions; docs/performance.md.)"""
    digest = hashlib.sha256()
    buffer = bytearray(BLOCK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def _stat_key(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def memo_digest(path: Path, memo_dir: Path | None) -> str:
    """:func:`file_digest`, remembered in ``memo_dir`` while the file's metadata is unchanged;
    an unwritable memo folder only costs the hashing."""
    if memo_dir is None:
        return file_digest(path)
    key = _stat_key(path)
    entry = Path(memo_dir) / f"{hashlib.sha256(key[0].encode()).hexdigest()[:24]}.json"
    try:
        memo = json.loads(entry.read_text())
        if memo.get("key") == key:
            return memo["digest"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    digest = file_digest(path)
    if _stat_key(path) != key:  # written while it was read: do not remember
        return digest
    try:
        atomic.write_json(entry, {"key": key, "digest": digest})
    except (OSError, WriteError) as err:  # a memo only: the digest is still right
        log.debug("Cannot remember the digest of %s in %s: %s", path, memo_dir, err)
    return digest


def fingerprint(directory: Path, memo_dir: Path | None = None) -> str:
    """``<layout>-<contents>`` of every ``.npy`` file in a fold directory, whichever modalities
    a run reads."""
    layout, contents = [], []
    for path in sorted(Path(directory).glob("*.npy")):
        try:
            header = npy_header(path)
        except DataError:
            header = None
        shape, dtype = (list(header[0]), str(header[1])) if header else (None, None)
        layout.append((path.name, shape, dtype, path.stat().st_size))
        contents.append((path.name, memo_digest(path, memo_dir)))
    return f"{_short(layout)}-{_short(contents)}"


def _short(items) -> str:
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


def current_fingerprint(root, fold: int, cache_dir) -> str | None:
    """The fingerprint of fold ``fold`` under ``root`` as it is now (None if it does not
    exist yet, e.g. synthetic data not generated), memoised under ``cache_dir``."""
    directory = fold_dir(Path(str(root)), fold)
    if not directory.is_dir():
        return None
    memo = Path(str(cache_dir)) / MEMO_DIR if cache_dir else None
    return fingerprint(directory, memo)
