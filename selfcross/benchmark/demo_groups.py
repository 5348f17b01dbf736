"""The demo grid trained as single runs and as seed groups, compared from their records.

``scripts/compare_seed_group_demo.py`` runs ``experiment=demo`` twice into two sweep folders
(single runs, then ``seed_group=K``), timing each, and :func:`compare` reads both sets of
``result.json`` files through :func:`selfcross.analysis.results.load_results` (never the logs).

Per (model, modality) cell and per way: the mean, sample standard deviation (ddof=1), minimum
and maximum over the cell's runs of test UWA and WA; whether the grouped mean lies within the
single runs' spread (their minimum to maximum, ends included); and over the runs present both
ways (same model, modality, fold and seed) the mean absolute difference of test UWA. A report,
not a test: a group replays its single runs' random draws, but not their floating-point order,
so a member's numbers differ from its single run's by rounding, which training can grow.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from selfcross.analysis.results import RunResult, load_results
from selfcross.errors import DataError

WAYS = ("single", "grouped")
METRICS = ("uwa", "wa")


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, sample std (ddof=1; None for one value), minimum, maximum and count."""
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) >= 2 else None,
        "min": float(array.min()),
        "max": float(array.max()),
        "n": len(array),
    }


def by_cell(runs: Iterable[RunResult]) -> dict[tuple[str, str], list[RunResult]]:
    """The runs of each (model, modality), in (fold, seed) order; DataError on a run twice."""
    cells: dict[tuple[str, str], list[RunResult]] = {}
    seen: dict[tuple, RunResult] = {}
    for run in runs:
        if run.key in seen:
            raise DataError(run.path, f"the same run as {seen[run.key].path}")
        seen[run.key] = run
        cells.setdefault((run.model, run.modality), []).append(run)
    return {cell: sorted(found, key=lambda r: (r.fold, r.seed)) for cell, found in cells.items()}


def compare(single: Sequence[RunResult], grouped: Sequence[RunResult]) -> dict:
    """The comparison of the two ways' runs (see the module docstring), JSON-ready."""
    ways = {"single": by_cell(single), "grouped": by_cell(grouped)}
    cells = []
    for model, modality in sorted(set(ways["single"]) | set(ways["grouped"])):
        row: dict = {"model": model, "modality": modality}
        for way in WAYS:
            runs = ways[way].get((model, modality), [])
            row[way] = {m: summary([r.metric(m) for r in runs]) for m in METRICS} if runs else None
        for metric in METRICS:
            inside = None
            if row["single"] is not None and row["grouped"] is not None:
                spread = row["single"][metric]
                inside = spread["min"] <= row["grouped"][metric]["mean"] <= spread["max"]
            row[f"grouped_{metric}_mean_within_single_spread"] = inside
        cells.append(row)
    singles = {r.key: r for r in single}
    matched = sorted(set(singles) & {r.key for r in grouped})
    diffs = [abs(singles[g.key].uwa - g.uwa) for g in grouped if g.key in singles]
    unmatched = sorted(set(singles) ^ {r.key for r in grouped})
    return {
        "cells": cells,
        "matched_runs": len(matched),
        "mean_abs_diff_test_uwa": float(np.mean(diffs)) if diffs else None,
        "max_abs_diff_test_uwa": float(np.max(diffs)) if diffs else None,
        "unmatched_runs": [list(k) for k in unmatched],
        "cells_within_single_spread": {
            metric: sum(bool(c[f"grouped_{metric}_mean_within_single_spread"]) for c in cells)
            for metric in METRICS
        },
        "cells_compared": sum(c["single"] is not None and c["grouped"] is not None for c in cells),
    }


def read_runs(folder: str | Path) -> list[RunResult]:
    """Every usable run under ``folder``; DataError naming the first unusable file."""
    runs, skipped = load_results(folder)
    if skipped:
        raise DataError(skipped[0].path, f"unusable record: {skipped[0].problem}")
    return runs


def run_demo(folder: Path, data_dir: Path, overrides: Sequence[str]) -> float:
    """``python -m selfcross.run -m experiment=demo`` into ``folder``; its wall seconds.
    DataError naming the folder if the sweep fails."""
    command = [sys.executable, "-m", "selfcross.run", "-m", "experiment=demo",
               f"hydra.sweep.dir={folder}", f"paths.data_dir={data_dir}", *overrides]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise DataError(folder, f"the demo sweep exited with status {done.returncode}")
    return seconds
