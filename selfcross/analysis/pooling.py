"""Which finished runs may be pooled into one number: runs of one cell with one configuration,
one data source, one feature set and one evaluation scheme, each run once (:func:`check_runs`).
Split from :mod:`selfcross.analysis.results`, which finds and reads the runs."""

from __future__ import annotations

from collections.abc import Iterable

from selfcross.analysis.results import DataSource, RunResult, describe_scheme
from selfcross.errors import DataError
from selfcross.training.record import same_data


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
      directory, whichever modalities a run read): likewise;
    - different feature sets (``data.feature_set``: the encoders the folds were prepared with):
      always an error, naming both (a table compares models on one feature set);
    - different recorded evaluation schemes (split, class set, split seed): always an error;
      records without a scheme are not compared.
    """
    runs = list(runs)
    check_one_of(runs, "feature set", lambda r: r.feature_set, str,
                 "a table compares runs of one feature set; give it the runs of one "
                 "(--results <their folder>)")  # fmt: skip
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
    check_one_of(runs, "evaluation scheme", lambda r: r.scheme, describe_scheme,
                 "a table pools runs of one scheme")  # fmt: skip
    if not allow_mixed_data:
        check_same_data(runs)


def check_one_of(runs: Iterable[RunResult], label: str, value, describe, why: str) -> None:
    """Refuse runs whose ``value(run)`` differs (DataError naming both files and values, then
    ``why``); runs whose value is None are not compared. Serves the feature set and the
    evaluation scheme: what a table must never pool, whatever ``--allow-mixed-data`` says."""
    first: RunResult | None = None
    for run in runs:
        if value(run) is None:
            continue
        if first is None:
            first = run
        elif value(run) != value(first):
            raise DataError(
                run.path,
                f"{label} {describe(value(run))} differs from {describe(value(first))} in "
                f"{first.path}: {why}",
            )


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
