"""The records of what the analysis computes from a finished run, typed like ``result.json``.

``ablation.json`` (:class:`AblationRecord`, written by ``selfcross.ablate`` into the run's
folder), ``cross_corpus-<map>-<target>.json`` (:class:`CrossCorpusRecord`, by
``selfcross.evaluate``, in the run's folder) and ``attention.json`` (:class:`AttentionRecord`,
written by ``selfcross.attention`` into ``<run>/attention/``): every key is defined here once,
each file is written by one function (atomically) and read by one. A file without
``schema_version`` reads as version 1, whose keys are today's; a file from a newer selfcross
(:class:`NewerSchema`) or one that is not a record raises ValueError with the reason, which
callers report beside the file's path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfcross.training.record import RunRecord, parse_record_json, same_data, versioned
from selfcross.utils.io import write_json_atomic

ABLATION_FILE = "ablation.json"
ABLATION_SCHEMA = 2
"""Bump when a key of ``ablation.json`` changes meaning or goes away. Version 2 adds each
entry's ``test_wf1``; version-1 files read with it None (the table derives it from the entry's
confusion matrix when there is one) and are written back as they were."""

ATTENTION_DIR = "attention"
"""The default folder of ``attention.json`` and the heatmaps, inside the run's folder."""
ATTENTION_FILE = "attention.json"
ATTENTION_SCHEMA = 1
"""Bump when a key of ``attention.json`` changes meaning or goes away."""

CROSS_CORPUS_PREFIX = "cross_corpus"
"""``cross_corpus-<class map>-<target label>.json``: one file per target and class map."""
CROSS_CORPUS_SCHEMA = 1
"""Bump when a key of a ``cross_corpus-*.json`` file changes meaning or goes away."""


class NewerSchema(ValueError):
    """A record written by a newer selfcross: never overwritten, never read."""


# -- ablation.json --------------------------------------------------------------------------


@dataclass
class SubsetScore:
    """The test scores of one run with only the ``present`` modalities (``absent`` blanked)."""

    present: str
    absent: str
    test_wa: float
    test_uwa: float
    test_f1: float | None
    """Macro-F1."""
    test_loss: float | None
    confusion: list[list[int]] | None
    """[C, C] test counts, rows the true class, columns the predicted one."""
    test_wf1: float | None = None
    """Weighted F1 (``models/metrics.py``: ``weighted_f1``); None in a version-1 file."""

    def metrics(self) -> dict[str, float | None]:
        """``wa``, ``uwa``, ``mf1`` and ``wf1`` (the tables' names); weighted F1 derived from
        the confusion matrix where the file predates it, None where it cannot be."""
        wf1 = self.test_wf1
        if wf1 is None and self.confusion and sum(map(sum, self.confusion)):
            from selfcross.models.metrics import weighted_f1  # torch: only for old files

            wf1 = float(weighted_f1(self.confusion))
        return {"wa": self.test_wa, "uwa": self.test_uwa, "mf1": self.test_f1, "wf1": wf1}


@dataclass
class FillScores:
    """One fill's scores: one entry per present subset, the full set first."""

    entries: list[SubsetScore]
    scored: str
    """UTC time the fill was scored, ISO 8601."""


@dataclass
class CheckpointRef:
    file: str
    """Relative to the run's folder."""
    sha256: str


@dataclass
class AblationRecord:
    """A run scored per present modality subset, per fill (``zeros``, ``train_mean``)."""

    model: str
    modality: str
    fold: int
    seed: int
    modality_dropout: float
    config_hash: str
    """With ``finished`` and ``data_fingerprint``: which run of the folder the file belongs to."""
    finished: str
    data_fingerprint: str
    checkpoint: CheckpointRef
    fills: dict[str, FillScores]
    schema_version: int = ABLATION_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.schema_version < 2:  # written back key for key, as it was read
            for fill in data["fills"].values():
                for entry in fill["entries"]:
                    entry.pop("test_wf1")
        return _first_version(data)

    @classmethod
    def from_dict(cls, raw: Any) -> AblationRecord:
        """A record from decoded JSON; ValueError naming the first problem."""
        raw, version = versioned(raw, ABLATION_SCHEMA, NewerSchema)
        checkpoint = _object(raw.get("checkpoint"), "checkpoint")
        raw["checkpoint"] = _build(CheckpointRef, checkpoint, "checkpoint.")
        fills = _object(raw.get("fills"), "fills")
        raw["fills"] = {
            name: _fill(value, f"fills.{name}", version) for name, value in fills.items()
        }
        record = _build(cls, raw, "")
        record.schema_version = version
        return record

    def belongs_to(self, run: RunRecord, checkpoint_sha256: str | None = None) -> bool:
        """Whether these scores are of ``run`` as recorded (the same config hash, finishing
        time and data) and, when given, of the checkpoint with that SHA-256."""
        if (self.config_hash, self.finished) != (run.config_hash, run.finished):
            return False
        if not same_data(str(self.data_fingerprint), run.data.fingerprint):
            return False
        return checkpoint_sha256 is None or self.checkpoint.sha256 == checkpoint_sha256

    def scores(self, fill: str) -> dict[str, dict[str, float | None]]:
        """``{present: {"wa", "uwa", "mf1", "wf1"}}`` of one fill (:meth:`SubsetScore.metrics`);
        KeyError if it was not scored."""
        return {e.present: e.metrics() for e in self.fills[fill].entries}


def _fill(raw: Any, where: str, version: int) -> FillScores:
    raw = dict(_object(raw, where))
    entries = raw.get("entries")
    if not isinstance(entries, list):
        what = "missing key " if entries is None else ""
        raise ValueError(f"{what}{where}.entries" + ("" if what else " is not a list"))
    raw["entries"] = [_subset(e, f"{where}.entries[{i}]", version) for i, e in enumerate(entries)]
    return _build(FillScores, raw, f"{where}.")


def _subset(raw: Any, where: str, version: int) -> SubsetScore:
    raw = _object(raw, where)
    if version < 2:  # before weighted F1
        raw = {**raw, "test_wf1": None}
    entry = _build(SubsetScore, raw, f"{where}.")
    if not isinstance(entry.present, str):
        raise ValueError(f"{where}.present is {entry.present!r}, expected a string")
    for key in ("test_wa", "test_uwa", "test_f1", "test_wf1"):
        value = getattr(entry, key)
        if value is None and key in ("test_f1", "test_wf1"):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}.{key} is {value!r}, expected a number")
    return entry


def write_ablation(run_dir: str | Path, record: AblationRecord) -> Path:
    """Write ``<run_dir>/ablation.json`` atomically (the old file or the whole new one)."""
    return write_json_atomic(Path(run_dir) / ABLATION_FILE, record.to_dict())


def read_ablation(path: str | Path) -> AblationRecord | None:
    """The record in ``path``, or None if there is no such file; ValueError saying why a file
    cannot be used (unreadable, not JSON, not a record, :class:`NewerSchema`)."""
    raw = _load(Path(path))
    return None if raw is None else AblationRecord.from_dict(raw)


# -- attention.json -------------------------------------------------------------------------


@dataclass
class ModuleAttention:
    """One attention module over the test split: per-head means over the rows counted (valid
    query steps of utterances with a valid key), and their means over heads."""

    query: str
    key: str
    heads: int
    rows: int
    entropy: list[float]
    """Per head: mean of -sum p log p over rows, in nats."""
    padding_share: list[float]
    """Per head: mean attention mass on padded keys."""
    entropy_mean: float
    padding_share_mean: float
    uniform_entropy: float
    """Mean over rows of log(keys the row could attend to): uniform attention's entropy."""


@dataclass
class UtteranceFigure:
    """A test utterance drawn as heatmaps, and the PNG (in the record's folder) holding them."""

    index: int
    label: str
    lengths: dict[str, int]
    valid_steps: dict[str, int]
    png: str


@dataclass
class AttentionRecord:
    """Attention entropy and padding share of one run, per attention module and head."""

    run: str
    model: str
    modality: str
    fold: int
    seed: int
    mask_padding: bool
    checkpoint: str
    split: str
    n_utterances: int
    valid_rule: str
    modules: dict[str, ModuleAttention]
    utterances: list[UtteranceFigure]
    schema_version: int = ATTENTION_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return _first_version(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, raw: Any) -> AttentionRecord:
        """A record from decoded JSON; ValueError naming the first problem."""
        raw, version = versioned(raw, ATTENTION_SCHEMA, NewerSchema)
        modules = _object(raw.get("modules"), "modules")
        raw["modules"] = {
            name: _build(ModuleAttention, _object(m, f"modules.{name}"), f"modules.{name}.")
            for name, m in modules.items()
        }
        figures = raw.get("utterances")
        if not isinstance(figures, list):
            what = "missing key " if figures is None else ""
            raise ValueError(f"{what}utterances" + ("" if what else " is not a list"))
        raw["utterances"] = [
            _build(UtteranceFigure, _object(f, f"utterances[{i}]"), f"utterances[{i}].")
            for i, f in enumerate(figures)
        ]
        record = _build(cls, raw, "")
        record.schema_version = version
        return record


def write_attention(out_dir: str | Path, record: AttentionRecord) -> Path:
    """Write ``<out_dir>/attention.json`` atomically."""
    return write_json_atomic(Path(out_dir) / ATTENTION_FILE, record.to_dict())


def read_attention(path: str | Path) -> AttentionRecord | None:
    """The record in ``path``, or None if there is no such file; ValueError saying why a file
    cannot be used (unreadable, not JSON, not a record, :class:`NewerSchema`)."""
    raw = _load(Path(path))
    return None if raw is None else AttentionRecord.from_dict(raw)


# -- cross_corpus-<map>-<target>.json --------------------------------------------------------


@dataclass
class CrossCorpusRecord:
    """A run scored on another dataset's split through a class map, over the shared classes
    (``selfcross.evaluate``; :mod:`selfcross.analysis.crosscorpus`)."""

    model: str
    modality: str
    fold: int
    seed: int
    config_hash: str
    """With ``finished``: which run of the folder the file belongs to."""
    finished: str
    source: dict[str, Any]
    """The run's own data: ``name``, ``label``, ``fingerprint``, ``scheme`` (result.json's)."""
    target: dict[str, Any]
    """The scored data: ``name``, ``label``, ``root``, ``fold``, ``split``, ``class_set``,
    ``fingerprint``, ``feature_set``."""
    class_map: str
    shared: list[str]
    """The shared classes, in the order of the confusion matrix's rows and columns."""
    masked: list[str]
    """The run's classes without a partner: their logits are masked before the arg-max."""
    masked_argmax: int
    """Scored utterances whose unmasked arg-max fell on a masked class."""
    left_out: dict[str, int]
    """The target's classes without a partner, and their utterances in the split (not scored)."""
    n_utterances: int
    wa: float
    uwa: float
    mf1: float
    wf1: float
    recall: dict[str, float | None]
    """Per shared class (None: no utterance of it in the split)."""
    confusion: list[list[int]]
    """[S, S] counts over the shared classes, rows the true class, columns the predicted one."""
    evaluated: str
    """UTC time, ISO 8601."""
    schema_version: int = CROSS_CORPUS_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return _first_version(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, raw: Any) -> CrossCorpusRecord:
        """A record from decoded JSON; ValueError naming the first problem."""
        raw, version = versioned(raw, CROSS_CORPUS_SCHEMA, NewerSchema)
        record = _build(cls, raw, "")
        for key in ("wa", "uwa", "mf1", "wf1"):
            value = getattr(record, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} is {value!r}, expected a number")
        for key in ("source", "target", "left_out", "recall"):
            _object(getattr(record, key), key)
        record.schema_version = version
        return record

    def belongs_to(self, run: RunRecord) -> bool:
        """Whether these scores are of ``run`` as recorded (its config hash and finishing time)."""
        return (self.config_hash, self.finished) == (run.config_hash, run.finished)


def cross_corpus_file(class_map: str, target_label: str) -> str:
    """The file of one target and class map in the run's folder:
    ``cross_corpus-<class map>-<target label>.json`` (the label names the class set too)."""
    return f"{CROSS_CORPUS_PREFIX}-{class_map}-{target_label}.json"


def write_cross_corpus(run_dir: str | Path, record: CrossCorpusRecord, name: str) -> Path:
    """Write ``<run_dir>/<name>`` (:func:`cross_corpus_file`) atomically."""
    return write_json_atomic(Path(run_dir) / name, record.to_dict())


def read_cross_corpus(path: str | Path) -> CrossCorpusRecord | None:
    """The record in ``path``, or None if there is no such file; ValueError saying why a file
    cannot be used (unreadable, not JSON, not a record, :class:`NewerSchema`)."""
    raw = _load(Path(path))
    return None if raw is None else CrossCorpusRecord.from_dict(raw)


# -- shared ---------------------------------------------------------------------------------


def _load(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"unreadable ({err.__class__.__name__})") from None
    return parse_record_json(text)  # ValueError with the reason


def _first_version(record: dict[str, Any]) -> dict[str, Any]:
    """The record's keys with ``schema_version`` first, where ``ablation.json`` always had it."""
    return {"schema_version": record.pop("schema_version"), **record}


def _object(value: Any, where: str) -> dict[str, Any]:
    """``value`` if it is a JSON object; else ValueError naming where it sits."""
    if not isinstance(value, dict):
        raise ValueError(f"missing key {where}" if value is None else f"{where} is not an object")
    return value


def _build(kind, raw: dict[str, Any], where: str):
    """``kind(**raw)``; ValueError naming the first missing or unknown key."""
    fields = [f for f in dataclasses.fields(kind) if f.name != "schema_version"]
    names = {f.name for f in fields}
    missing = [f.name for f in fields if f.name not in raw]
    if missing:
        raise ValueError(f"missing key {where}{missing[0]}")
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"unknown key {where}{unknown[0]}")
    return kind(**{n: raw[n] for n in names})
