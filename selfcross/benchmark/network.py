"""Whole networks: one row per (model, modality) with ours, the baseline and their ratio."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from selfcross.benchmark.projection import TABLE1
from selfcross.benchmark.timing import machine, measure, summarise
from selfcross.benchmark.variants import Settings, Variant, build_pair, kernel_flags
from selfcross.training.runtime import compile_network

OnRow = Callable[[dict], None]


def bench_models(settings: Settings, on_row: OnRow | None = None) -> list[dict]:
    """Time a training step and an evaluation batch of every model on every modality subset.

    Before timing, ours and the baseline (same weights, same inputs) are run once on the
    evaluation batch and their largest logit difference is recorded. ``on_row`` gets each row
    as soon as it is measured.
    """
    s = settings
    autocast_dtype = s.autocast_dtype
    rows = []
    for model in s.models:
        for modality in s.modalities:
            ours_net, base_net, shapes = build_pair(model, modality, s.preset, s.overrides)
            compiled = compile_network(ours_net, {"mode": s.compile_mode} if s.compile else False)
            sizes = (s.batch, s.eval_batch)
            ours = Variant(
                "ours", ours_net, shapes, sizes, s.device, torch.float32, autocast_dtype
            )
            variants = [ours]
            if s.baseline:
                base = Variant("baseline", base_net, shapes, sizes, s.device, torch.float64)
                # Same weights and inputs: the logits must agree before anything is timed.
                diff = (ours.eval_logits().double() - base.eval_logits()).abs().max().item()
                variants.append(base)
            measure(variants, s.warmup, s.steps)
            row = {
                "model": model,
                "modality": modality,
                "device": s.device,
                "dtype": "bfloat16-autocast" if autocast_dtype else "float32",
                "precision": s.precision,
                "batch": s.batch,
                "eval_batch": s.eval_batch,
                **summarise(ours),
                "compiled": compiled,
                "fast_paths": {
                    "attention_weights": ours_net.attention_weights,
                    **kernel_flags(ours_net),
                },
                "steps": s.steps,
                "warmup": s.warmup,
            }
            if s.baseline:
                base_summary = summarise(base)
                row.update({f"baseline_{k}": v for k, v in base_summary.items()})
                row["baseline_dtype"] = "float64"
                row["train_speedup"] = round(
                    base_summary["train_step_ms"] / row["train_step_ms"], 2
                )
                row["eval_speedup"] = round(
                    base_summary["eval_batch_ms"] / row["eval_batch_ms"], 2
                )
                row["max_logit_diff"] = float(f"{diff:.3g}")
            row["machine"] = machine()
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def bench_table1(settings: Settings, on_row: OnRow | None = None) -> list[dict]:
    """:func:`bench_models` over Table 1's 11 cells, model by model."""
    rows = []
    for model, subsets in TABLE1.items():
        cell_settings = dataclasses.replace(settings, models=[model], modalities=list(subsets))
        rows += bench_models(cell_settings, on_row)
    return rows
