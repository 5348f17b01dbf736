"""The benchmark's rows as a readable table (the JSON lines' main figures)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def print_table(rows: Sequence[dict], file=None) -> None:
    """The JSON lines' main figures, readable (on stderr by default)."""
    file = file or sys.stderr
    if not rows:
        return
    if "seed_group" in rows[0] and "layer" in rows[0]:
        print(f"{'layer':28s} {'K':>3s} {'singles ms':>10s} {'group ms':>9s} {'x':>6s}", file=file)
        for r in rows:
            print(f"{r['layer']:28s} {r['seed_group']:3d} {r['singles_ms']:10.1f} "
                  f"{r['group_ms']:9.1f} {r['speedup']:6.2f}", file=file)  # fmt: skip
        return
    if "seed_group" in rows[0]:
        print(f"{'model':6s} {'mod':4s} {'K':>3s} {'group ms':>9s} {'singles ms':>10s} {'x':>6s} "
              f"{'peak %':>12s} {'MB':>6s}", file=file)  # fmt: skip
        for r in rows:
            share = f"{100 * r['singles_share_of_peak']:.1f}->{100 * r['group_share_of_peak']:.1f}"
            print(f"{r['model']:6s} {r['modality']:4s} {r['seed_group']:3d} "
                  f"{r['group_step_ms']:9.0f} {r['singles_step_ms']:10.0f} {r['speedup']:6.2f} "
                  f"{share:>12s} {r['group_step_mb']:6d}", file=file)  # fmt: skip
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
