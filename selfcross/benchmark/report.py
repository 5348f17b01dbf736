"""The benchmark's rows as a readable table (the JSON lines' main figures)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def print_table(rows: Sequence[dict], file=None) -> None:
    """The JSON lines' main figures, readable (on stderr by default)."""
    file = file or sys.stderr
    if not rows:
        return
    if "layer" in rows[0]:
        print(
            f"{'layer':34s} {'train ms':>9s} {'base ms':>9s} {'x':>6s} {'eval ms':>8s}", file=file
        )
        for r in rows:
            print(
                f"{r['layer']:34s} {r['train_ms']:9.1f} {r.get('baseline_train_ms', 0):9.1f} "
                f"{r.get('train_speedup', 0):6.2f} {r['eval_ms']:8.1f}",
                file=file,
            )
        return
    print(
        f"{'model':6s} {'mod':4s} {'train ms':>9s} {'base ms':>9s} {'x':>6s} "
        f"{'eval ms':>8s} {'base ms':>9s} {'x':>6s}",
        file=file,
    )
    for r in rows:
        print(
            f"{r['model']:6s} {r['modality']:4s} {r['train_step_ms']:9.1f} "
            f"{r.get('baseline_train_step_ms', 0):9.1f} {r.get('train_speedup', 0):6.2f} "
            f"{r['eval_batch_ms']:8.1f} {r.get('baseline_eval_batch_ms', 0):9.1f} "
            f"{r.get('eval_speedup', 0):6.2f}",
            file=file,
        )
