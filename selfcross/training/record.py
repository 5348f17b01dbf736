"""The run record: what one run of ``selfcross.run`` writes to ``result.json``, typed.

Every key of ``result.json`` is defined here once. The run builds a :class:`RunRecord` and
writes it with :func:`write_record`; resume logic and the reports read it back with
:func:`read_record` / :meth:`RunRecord.from_dict`. Files written before ``schema_version`` existed
(version 1, no such key) read the same way: their keys are exactly version 1's. Version 2 added
the weighted F1 (``test_wf1``, ``val_wf1``; :data:`ADDED_IN`): a version-1 record reads with both
None (absent), and its readers derive the test value from ``confusion``
(:mod:`selfcross.analysis.results`); the best-validation value of such a run is unknown.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfcross.utils.io import write_json_atomic

RESULT_FILE = "result.json"
"""The file name of a run's record (its temporary ``.result.json.*.tmp`` are never read)."""

SCHEMA_VERSION = 2
"""Bump when a required key is added, or a key changes meaning or goes away; readers accept every
version up to this one. Version 2 added ``test_wf1``, ``val_wf1`` and ``seed_group``. Keys added
with a default inside ``data`` need no bump: ``data.feature_set`` (absent: the
paper's features)."""

ADDED_IN: dict[str, int] = {"test_wf1": 2, "val_wf1": 2}
"""Keys added after version 1 -> the version that added them: required in files of that version
or later, None when an earlier file lacks them."""


@dataclass
class DataRecord:
    """Which data a run read: the fold it was trained and tested on, and what was in it."""

    name: str
    preset: str | None
    root: str
    fold_path: str
    fingerprint: str
    """``<layout>-<contents>`` of the fold's files (``data/fingerprint.py``); records written
    before contents were hashed hold the layout part only (compare with :func:`same_data`)."""
    splits: dict[str, Any]
    """Per split (train, dev, test): ``n``, ``class_counts`` and what was dropped."""
    feature_set: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Per modality, the identity of the root's features (``selfcross.manifest.feature_set``:
    encoder, weights digest, layer, width, rate); empty: the paper's features."""
    scheme: dict[str, Any] | None = None
    """The evaluation scheme of the fold: ``split`` (random, session, speaker, official), the
    split's ``seed`` and ``class_set`` (None: the full set); None in records older than it."""


def same_data(a: str, b: str) -> bool:
    """Whether two data fingerprints name the same data; one without contents (an older
    record) is compared on the layout only."""
    if "-" in a and "-" in b:
        return a == b
    return a.split("-")[0] == b.split("-")[0]


@dataclass
class RunRecord:
    """One finished run: its identity, test and best-validation metrics, and provenance.

    The paper's metric names: WA = mean per-class recall, UWA = overall accuracy.
    """

    model: str
    modality: str
    fold: int
    seed: int
    test_wa: float | None
    """The test metrics are None in a run with ``run_test: false`` (tuning runs)."""
    test_uwa: float | None
    test_f1: float | None
    test_loss: float | None
    test_recall: dict[str, float] | None
    """Per-class recall on the test split, keyed by class name."""
    val_wa: float | None
    val_uwa: float | None
    val_f1: float | None
    val_loss: float | None
    best_epoch: int
    """1-based epoch of the tested (best-validation) checkpoint."""
    epochs: int
    majority_rate: float | None
    """Share of the test split's largest class: the UWA of always guessing it."""
    confusion: list[list[int]] | None
    """[C, C] test counts, rows the true class, columns the predicted one."""
    class_names: list[str]
    data: DataRecord
    train_seconds: float
    test_seconds: float
    resumed_from: str | None
    device: str
    precision: str
    version: str
    git_commit: str | None
    history: list[dict[str, float]]
    n_params: int
    config_hash: str
    gpu_slot: int | None
    finished: str
    """UTC time the run finished, ISO 8601."""
    config: dict[str, Any]
    """The fully resolved configuration."""
    test_wf1: float | None = None
    """Support-weighted F1 on the test split (``models/metrics.py``: ``weighted_f1``); None in
    a tuning run and in a version-1 record (derive it from ``confusion``)."""
    val_wf1: float | None = None
    """Weighted F1 on the validation split at the best epoch; None in a version-1 record."""
    seed_group: list[int] | None = None
    """The seeds trained together with this one as one stacked network
    (:mod:`selfcross.training.group`), this run's included; None: trained alone (and in every
    record before version 2)."""
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunRecord:
        """A record from decoded JSON; ValueError names the first problem (missing key,
        unknown key, newer schema). Values are not type-checked here: readers that aggregate
        check what they use."""
        raw, version = versioned(raw, SCHEMA_VERSION)
        data = raw.get("data")
        if not isinstance(data, dict):
            raise ValueError("missing key data" if data is None else "data is not an object")
        raw["data"] = _build(DataRecord, data, "data.")
        missing = [key for key, added in ADDED_IN.items() if added <= version and key not in raw]
        if missing:
            raise ValueError(f"missing key {missing[0]} (schema_version {version})")
        record = _build(cls, raw, "")
        record.schema_version = version
        return record


def _build(kind, raw: dict[str, Any], where: str):
    fields = [f for f in dataclasses.fields(kind) if f.name != "schema_version"]
    names = {f.name for f in fields}
    required = [f.name for f in fields if f.default is f.default_factory is dataclasses.MISSING]
    missing = [n for n in required if n not in raw]
    if missing:
        raise ValueError(f"missing key {where}{missing[0]}")
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"unknown key {where}{unknown[0]}")
    return kind(**{n: raw[n] for n in names if n in raw})


def write_record(out_dir: str | Path, record: RunRecord) -> Path:
    """Write ``<out_dir>/result.json`` atomically (the old file or the whole new one)."""
    return write_json_atomic(Path(out_dir) / RESULT_FILE, record.to_dict())


MAX_DEPTH = 32
"""How deeply a record's JSON may nest (a run's resolved configuration nests about 5 deep)."""
MAX_INT_DIGITS = 19
"""The most digits of an integer in a record (64-bit values; seeds and counts are far less)."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"holds an integer of {len(text.lstrip('-'))} digits (at most "
                         f"{MAX_INT_DIGITS} are read)")  # fmt: skip
    return int(text)


def versioned(
    raw: Any, current: int, newer: type[ValueError] = ValueError
) -> tuple[dict[str, Any], int]:
    """A copy of a decoded record without ``schema_version``, and that version (1 if absent);
    ValueError for anything but an object or a positive integer, ``newer`` for a version above
    ``current`` (a file of a newer selfcross). Every versioned record file is read through it."""
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    raw = dict(raw)
    version = raw.pop("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"schema_version is {version!r}, expected a positive integer")
    if version > current:
        raise newer(
            f"schema_version {version} is newer than this selfcross reads ({current}); "
            "update selfcross"
        )
    return raw, version


def parse_record_json(text: str) -> Any:
    """The values of a record file's ``text`` (``result.json``, ``ablation.json``,
    ``attention.json``): the one JSON reader of records. ValueError with the reason for text
    that is no record: not JSON (a truncated file), nested more than :data:`MAX_DEPTH` levels
    deep, or holding an integer too large to be one (a hostile file would otherwise end a
    command with a RecursionError, or an error from Python's integer conversion limit)."""
    try:
        raw = json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno}, column {err.colno}"
        raise ValueError(f"not valid JSON (truncated?): {err.msg} ({where})") from None
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    level, nodes = 0, [raw]
    while nodes:
        level += 1
        if level > MAX_DEPTH:
            raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
        nodes = [
            child
            for node in nodes if isinstance(node, dict | list)
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]  # fmt: skip
    return raw


def read_record(path: str | Path) -> RunRecord | None:
    """The record in ``path``, or None if absent, unreadable, half-written or malformed."""
    try:
        return RunRecord.from_dict(parse_record_json(Path(path).read_text()))
    except (OSError, ValueError, TypeError):
        return None
