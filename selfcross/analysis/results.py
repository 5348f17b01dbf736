"""Find and load the ``result.json`` files of finished runs, and refuse what must not be
aggregated.

Every run of ``selfcross.run`` writes one ``result.json`` (a
:class:`~selfcross.training.record.RunRecord`); tables and figures are built from these files
only. A file that is not valid JSON, lacks a key of the record (e.g. truncated), comes from a
newer selfcross, or holds a value the tables cannot use is never used: it is reported as skipped
and its run counts as missing. Which runs may be pooled is :mod:`selfcross.analysis.pooling`'s.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfcross.errors import DataError
from selfcross.manifest import feature_set_label
from selfcross.training.record import RESULT_FILE, RunRecord, parse_record_json
from selfcross.training.resume import comparable_config
from selfcross.training.rundir import SUPERSEDED

METRICS = {"wa": "test_wa", "uwa": "test_uwa"}
"""The paper's metric names -> record keys (WA = mean per-class recall, UWA = accuracy)."""

TABLE_METRICS = {**METRICS, "wf1": "test_wf1", "mf1": "test_f1"}
"""Every metric a table can show (``--metrics``) -> its record key: the paper's two, weighted F1
(support-weighted, MELD's usual metric) and macro-F1 (docs/protocols.md, "Metrics")."""

DataSource = tuple[str, str | None, str]
"""(data.name, data.preset, data.root)."""

Scheme = tuple[str, str | None, int | None]
"""An evaluation scheme: (split, class set or None for the full set, the split's seed)."""


def describe_scheme(scheme: Scheme | None) -> str:
    """``split speaker (seed 0), class set 4class``; ``not recorded`` for None."""
    if scheme is None:
        return "not recorded"
    split, class_set, seed = scheme
    seed_text = "" if seed is None else f" (seed {seed})"
    return f"split {split}{seed_text}, " + (
        f"class set {class_set}" if class_set else "all classes"
    )


@dataclass(frozen=True)
class RunResult:
    """The parts of one run's record that tables and figures use."""

    path: Path
    model: str
    modality: str
    fold: int
    seed: int
    wa: float
    uwa: float
    source: DataSource
    fingerprint: str
    confusion: np.ndarray | None = None
    """[C, C] test counts, rows true class, columns predicted; None if absent."""
    class_names: tuple[str, ...] | None = None
    config: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    """The run's configuration as the config hash sees it, flattened (``comparable_config``)."""
    n_params: int | None = None
    """Trainable parameters of the run's network; None if the record lacks a count."""
    feature_set: str = "paper"
    """The data's feature set in one name (``selfcross.manifest.feature_set_label``)."""
    wf1: float | None = None
    """Test weighted F1: the record's, or for a version-1 record derived from its confusion
    matrix; None when neither is there."""
    mf1: float | None = None
    """Test macro-F1 (the record's ``test_f1``); None if the record holds none."""
    val_wf1: float | None = None
    """Best-validation weighted F1; None (absent) in a version-1 record: it cannot be derived."""
    scheme: Scheme | None = None
    """The fold's evaluation scheme (split, class set, split seed); None if not recorded."""

    @property
    def key(self) -> tuple[str, str, int, int]:
        """(model, modality, fold, seed): one run of the protocol."""
        return (self.model, self.modality, self.fold, self.seed)

    def metric(self, name: str) -> float:
        """The test value of ``name`` (a key of :data:`TABLE_METRICS`); ValueError if this run
        has none (see :func:`check_metrics`)."""
        value = {"wa": self.wa, "uwa": self.uwa, "wf1": self.wf1, "mf1": self.mf1}[name]
        if value is None:
            raise ValueError(f"{self.path}: no {TABLE_METRICS[name]} in this record")
        return value


@dataclass(frozen=True)
class Skipped:
    """A ``result.json`` that could not be used, and why."""

    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def _checked(value, kind, name: str):
    """``value`` if it is a ``kind`` (bools are not numbers here); else ValueError naming it."""
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} is {value!r}, expected an integer")
    if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"{name} is {value!r}, expected a number")
    if kind is str and not isinstance(value, str):
        raise ValueError(f"{name} is {value!r}, expected a string")
    return value


def _confusion(record: RunRecord) -> tuple[np.ndarray | None, tuple[str, ...] | None]:
    """The confusion matrix and class names if present and well formed, else (None, None)."""
    names, matrix = record.class_names, record.confusion
    if names is None or matrix is None:
        return None, None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("class_names is not a list of strings")
    try:
        counts = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("confusion is not a matrix of numbers") from None
    c = len(names)
    if counts.shape != (c, c):
        raise ValueError(f"confusion has shape {list(counts.shape)}, expected [{c}, {c}]")
    if not np.isfinite(counts).all() or (counts < 0).any() or (counts != np.round(counts)).any():
        raise ValueError("confusion holds values that are not non-negative counts")
    return counts.astype(np.int64), tuple(names)


def _rate(value, key: str) -> float | None:
    """``value`` as a rate in [0, 1], None if absent; ValueError naming ``key`` otherwise."""
    if value is None:
        return None
    value = float(_checked(value, float, key))
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{key} is {value!r}, expected a rate in [0, 1]")
    return value


def _test_wf1(record: RunRecord, confusion: np.ndarray | None) -> float | None:
    """The record's test weighted F1; for a record older than the key, derived from its test
    confusion matrix by the one definition (``models/metrics.py``: ``weighted_f1``)."""
    if record.test_wf1 is not None or confusion is None or not confusion.sum():
        return _rate(record.test_wf1, "test_wf1")
    from selfcross.models.metrics import weighted_f1  # torch: only for version-1 records

    return float(weighted_f1(confusion))


def check_metrics(runs: Iterable[RunResult], metrics: Iterable[str]) -> None:
    """DataError naming the first run that lacks one of ``metrics`` (e.g. weighted F1 of a
    version-1 record without a confusion matrix)."""
    for metric in metrics:
        for run in runs:
            if {"wf1": run.wf1, "mf1": run.mf1}.get(metric, 0.0) is None:
                raise DataError(
                    run.path,
                    f"holds no {TABLE_METRICS[metric]} (nor a confusion matrix to derive it "
                    f"from): leave {metric} out of --metrics",
                )


def parse_result(path: Path, raw) -> RunResult:
    """One run from a decoded ``result.json``; ValueError names the first problem."""
    record = RunRecord.from_dict(raw)
    model = _checked(record.model, str, "model")
    modality = _checked(record.modality, str, "modality")
    fold = _checked(record.fold, int, "fold")
    seed = _checked(record.seed, int, "seed")
    if record.test_wa is None and (record.config or {}).get("run_test") is False:
        raise ValueError("a tuning run (run_test=false): it has no test metrics")
    scores = {}
    for name, key in METRICS.items():
        value = float(_checked(getattr(record, key), float, key))
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"{key} is {value!r}, expected a rate in [0, 1]")
        scores[name] = value
    data = record.data
    name = _checked(data.name, str, "data.name")
    root = _checked(data.root, str, "data.root")
    fingerprint = _checked(data.fingerprint, str, "data.fingerprint")
    confusion, class_names = _confusion(record)
    wf1 = _test_wf1(record, confusion)
    scheme = data.scheme
    if scheme is not None and not isinstance(scheme, dict):
        raise ValueError("data.scheme is not an object")
    return RunResult(
        path=path,
        model=model,
        modality=modality,
        fold=fold,
        seed=seed,
        wa=scores["wa"],
        uwa=scores["uwa"],
        source=(name, None if data.preset is None else str(data.preset), root),
        fingerprint=fingerprint,
        confusion=confusion,
        class_names=class_names,
        config=comparable_config(record.config) if isinstance(record.config, dict) else {},
        n_params=record.n_params if isinstance(record.n_params, int) else None,
        feature_set=feature_set_label(
            data.feature_set if isinstance(data.feature_set, dict) else {}
        ),  # fmt: skip
        wf1=wf1,
        mf1=_rate(record.test_f1, "test_f1"),
        val_wf1=_rate(record.val_wf1, "val_wf1"),
        scheme=None if scheme is None else _scheme(scheme),
    )


def _scheme(raw: dict) -> Scheme:
    seed, class_set = raw.get("seed"), raw.get("class_set")
    return (str(raw.get("split")), None if class_set is None else str(class_set), seed)


def find_result_files(directory: str | Path) -> list[Path]:
    """Every file named exactly ``result.json`` under ``directory``, sorted; runs moved to a
    ``superseded/`` folder (replaced by a run of another configuration) are left out.

    DataError if the directory does not exist or holds none.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(directory, "no such results directory")
    paths = sorted(
        p
        for p in directory.rglob(RESULT_FILE)
        if p.is_file() and SUPERSEDED not in p.relative_to(directory).parts
    )
    if not paths:
        raise DataError(directory, f"no {RESULT_FILE} under this directory: nothing to tabulate")
    return paths


def load_results(directory: str | Path) -> tuple[list[RunResult], list[Skipped]]:
    """All usable runs under ``directory`` and the files that were skipped (with the reason)."""
    runs: list[RunResult] = []
    skipped: list[Skipped] = []
    for path in find_result_files(directory):
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            skipped.append(Skipped(path, f"unreadable ({err.__class__.__name__})"))
            continue
        try:
            raw = parse_record_json(text)
        except ValueError as err:
            skipped.append(Skipped(path, str(err)))
            continue
        try:
            runs.append(parse_result(path, raw))
        except ValueError as err:
            skipped.append(Skipped(path, str(err)))
    return runs, skipped


def warn_skipped(skipped: Iterable[Skipped]) -> None:
    """One warning line on stderr per skipped file."""
    for s in skipped:
        print(f"warning: {s}; not used, counted as missing", file=sys.stderr)
