"""Read the records of an offline W&B run file (``run-<id>.wandb``).

The file is a 7-byte header (``:W&B``, a 2-byte magic, a version byte) followed by a LevelDB-style
log: 32 KiB blocks of chunks, each with a 7-byte header (CRC32, little-endian length, type:
1 full, 2 first, 3 middle, 4 last) and a piece of one serialized ``Record`` protobuf.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7


def records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:
            pos += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0:  # zero padding at the end of a block
            pos += BLOCK - pos % BLOCK if pos % BLOCK else 0
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def logged_values(path: Path) -> dict[str, object]:
    """Every history and summary key of the run with its last logged value."""
    values: dict[str, object] = {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        items = []
        if kind == "history":
            items = record.history.item
        elif kind == "summary":
            items = record.summary.update
        for item in items:
            key = item.key or "/".join(item.nested_key)
            values[key] = json.loads(item.value_json)
    return values


def config_values(path: Path) -> dict[str, object]:
    values: dict[str, object] = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "config":
            for item in record.config.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values
