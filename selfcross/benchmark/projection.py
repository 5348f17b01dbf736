"""Table 1's wall time projected from measured step times: IEMOCAP epochs, runs, parallelism.

The projection's assumptions: every run of Table 1 sees one IEMOCAP fold whose training and
validation splits are the dataset's shares of its utterances in the reference's split ratio
(train : validation : test = 8 : 0.5 : 1.5, as the synthetic folds use), and each cell is run
on every fold with :data:`SEEDS_PER_FOLD` seeds (the paper's protocol, as
``conf/experiment/table1.yaml`` sweeps it). The dataset's facts (class counts, number of folds)
come from ``conf/data/iemocap.yaml`` through :mod:`selfcross.data.datasets`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from itertools import combinations

from selfcross import MODALITIES, fusion_problem
from selfcross.config import model_fusion
from selfcross.data.datasets import dataset
from selfcross.data.synthetic import SPLIT_RATIOS

SEEDS_PER_FOLD = 10
"""Seeds per fold of each Table 1 cell (the paper's protocol)."""
TABLE1_MODELS = ("self", "cross")

TABLE1 = {
    model: [
        "".join(subset)
        for size in range(1, len(MODALITIES) + 1)
        for subset in combinations(MODALITIES, size)
        if fusion_problem(model_fusion(model), subset) is None
    ]
    for model in TABLE1_MODELS
}
"""Table 1's cells: Self on every modality subset, Cross where it can be built (11 in all)."""


@functools.cache
def iemocap_protocol() -> dict:
    """IEMOCAP's sizes for the projection: ``runs_per_cell`` (folds x seeds) and the
    ``train_utterances`` and ``val_utterances`` of one fold (5,990 and 374 of 7,487)."""
    data = dataset("iemocap")
    utterances = sum(data.class_counts)
    total = sum(SPLIT_RATIOS)
    return {
        "runs_per_cell": int(data.n_folds) * SEEDS_PER_FOLD,
        "train_utterances": round(utterances * SPLIT_RATIOS[0] / total),
        "val_utterances": round(utterances * SPLIT_RATIOS[1] / total),
    }


def epoch_seconds(row: dict, prefix: str = "") -> float:
    """One IEMOCAP epoch: ceil(5990 / batch) training steps plus the validation batches."""
    sizes = iemocap_protocol()
    steps = math.ceil(sizes["train_utterances"] / row["batch"])
    val_batches = math.ceil(sizes["val_utterances"] / row["eval_batch"])
    return (
        steps * row[f"{prefix}train_step_ms"] + val_batches * row[f"{prefix}eval_batch_ms"]
    ) / 1e3


def projection(rows: Sequence[dict], epochs: int, parallel: int) -> dict:
    """Wall time of Table 1: 50 runs per cell, ``epochs`` epochs each, ``parallel`` at a time."""
    sizes = iemocap_protocol()
    runs_per_cell = sizes["runs_per_cell"]
    cells = {(r["model"], r["modality"]) for r in rows}
    missing = [f"{m} {s}" for m, subsets in TABLE1.items() for s in subsets if (m, s) not in cells]
    result = {
        "projection": "table1",
        "runs": runs_per_cell * sum(len(s) for s in TABLE1.values()),
        "epochs_per_run": epochs,
        "parallel_runs_per_device": parallel,
        "train_utterances": sizes["train_utterances"],
        "val_utterances": sizes["val_utterances"],
        "missing_cells": missing,
        "epoch_s": {f"{r['model']} {r['modality']}": round(epoch_seconds(r), 2) for r in rows},
    }
    for prefix, key in (("", "hours"), ("baseline_", "baseline_hours")):
        if all(f"{prefix}train_step_ms" in r for r in rows) and not missing:
            total = sum(runs_per_cell * epochs * epoch_seconds(r, prefix) for r in rows)
            result[key] = round(total / parallel / 3600, 2)
    return result
