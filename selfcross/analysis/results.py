"""Find and load the ``result.json`` files of finished runs, and refuse what must not be
aggregated.

Every run of ``selfcross.run`` writes one ``result.json`` (a
:class:`~selfcross.training.record.RunRecord`); tables and figures are built from these files
only. A file that is not valid JSON, lacks a key of the record (e.g. truncated), comes from a
newer selfcross, or holds a value the tables cannot use is never used: it is reported as skipped
and its run counts as missing. Runs of different data, and the same run found twice, are errors
(:func:`check_runs`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfcross.errors import DataError
from selfcross.training.record import RESULT_FILE, RunRecord, parse_record_json, same_data
from selfcross.training.resume import comparable_config
from selfcross.training.rundir import SUPERSEDED

METRICS = {"wa": "test_wa", "uwa": "test_uwa"}
"""The paper's metric names -> record keys (WA = mean per-class recall, UWA = accuracy)."""

DataSource = tuple[str, str | None, str]
"""(data.name, data.preset, data.root)."""


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

    @property
    def key(self) -> tuple[str, str, int, int]:
        """(model, modality, fold, seed): one run of the protocol."""
        return (self.model, self.modality, self.fold, self.seed)

    def metric(self, name: str) -> float:
        return {"wa": self.wa, "uwa": self.uwa}[name]


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
    )


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


def describe_source(source: DataSource) -> str:
    name, preset, root = source
    return f"{name}" + (f"/{preset}" if preset else "") + f" at {root}"


CELL_KEYS = ("fold", "seed", "data.fold")
"""What may differ between the runs of one cell (``data.fold`` is ``${fold}``); every other
hashed key must agree."""


def config_difference(a: RunResult, b: RunResult) -> dict[str, tuple[str, str]]:
    """The keys, beyond fold and seed, whose values differ between two runs: key -> (a, b)."""
    absent = "<absent>"
    return {
        key: (a.config.get(key, absent), b.config.get(key, absent))
        for key in sorted(set(a.config) | set(b.config))
        if key not in CELL_KEYS and a.config.get(key, absent) != b.config.get(key, absent)
    }


def _shown(value: str) -> str:
    return value[1:-1] if value.startswith('"') and value.endswith('"') else value


def describe_difference(diff: dict[str, tuple[str, str]], limit: int = 4) -> str:
    """``model.optimizer.lr: 0.01 vs 0.001; ...`` (the first ``limit`` keys)."""
    parts = [f"{k}: {_shown(a)} vs {_shown(b)}" for k, (a, b) in list(diff.items())[:limit]]
    if len(diff) > limit:
        parts.append(f"and {len(diff) - limit} more")
    return "; ".join(parts)


def config_groups(runs: list[RunResult]) -> list[tuple[str, list[RunResult]]]:
    """The runs split by the keys that differ within some cell, each group with its label
    (``model.optimizer.lr=0.01``); one unlabelled group when every cell is one configuration."""
    first: dict[tuple[str, str], RunResult] = {}
    keys: set[str] = set()
    for run in runs:
        keys |= set(config_difference(run, first.setdefault((run.model, run.modality), run)))
    if not keys:
        return [("", list(runs))]
    groups: dict[str, list[RunResult]] = {}
    for run in runs:
        label = ", ".join(f"{k}={_shown(run.config.get(k, '<absent>'))}" for k in sorted(keys))
        groups.setdefault(label, []).append(run)
    return sorted(groups.items())


def check_runs(runs: Iterable[RunResult], allow_mixed_data: bool = False) -> None:
    """Refuse runs that must not be aggregated together (DataError naming two files).

    - runs of one (model, modality) cell whose configurations differ beyond fold and seed
      (a learning rate, the epochs, the synthetic generator's seed): always an error, naming
      the keys (``--split-configs`` shows each configuration as its own cell instead);
    - the same (model, modality, fold, seed) twice: always an error;
    - different data sources (name, preset, root): an error unless ``allow_mixed_data``;
    - the same fold with different ``data.fingerprint`` (a hash of every file of the fold
      directory, whichever modalities a run read): likewise.
    """
    runs = list(runs)
    first_of_key: dict[tuple, RunResult] = {}
    first_of_cell: dict[tuple[str, str], RunResult] = {}
    for run in runs:
        reference = first_of_cell.setdefault((run.model, run.modality), run)
        diff = config_difference(run, reference)
        if diff:
            raise DataError(
                run.path,
                f"configuration differs from {reference.path} ({describe_difference(diff)}): "
                "a cell averages runs of one configuration; pass --split-configs to show "
                "each configuration as its own cell",
            )
        other = first_of_key.setdefault(run.key, run)
        if other is not run:
            model, modality, fold, seed = run.key
            raise DataError(
                run.path,
                f"the same run (model {model}, modality {modality}, fold {fold}, seed {seed}) "
                f"as {other.path}; remove one of them",
            )
    if not allow_mixed_data:
        check_same_data(runs)


def check_same_data(runs: Iterable[RunResult], verb: str = "aggregate") -> None:
    """Refuse runs of different data sources (name, preset, root), or of one fold with
    different fingerprints; the message offers ``--allow-mixed-data`` to ``verb`` them anyway."""
    first_source: RunResult | None = None
    first_of_fold: dict[int, RunResult] = {}
    for run in runs:
        if first_source is None:
            first_source = run
        elif run.source != first_source.source:
            raise DataError(
                run.path,
                f"data {describe_source(run.source)} differs from "
                f"{describe_source(first_source.source)} in {first_source.path}; "
                f"pass --allow-mixed-data to {verb} them anyway",
            )
        same_fold = first_of_fold.setdefault(run.fold, run)
        if not same_data(same_fold.fingerprint, run.fingerprint):
            raise DataError(
                run.path,
                f"fold {run.fold} data fingerprint {run.fingerprint} differs from "
                f"{same_fold.fingerprint} in {same_fold.path} (the fold's files changed between "
                f"the runs); pass --allow-mixed-data to {verb} them anyway",
            )
