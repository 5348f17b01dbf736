"""Attention maps of a finished run, and the share of attention that falls on padding.

    python -m selfcross.attention <run folder> [--utterances 4] [--out <run>/attention]

The run is rebuilt from its ``result.json`` and its best checkpoint (weights only; a run whose
checkpoints were pruned cannot be read). Writes ``attention.json`` (per attention module and head,
over the whole test split: mean attention entropy and the share of attention mass on padded
keys) and one PNG per picked test utterance (one heatmap per attention module, query step x key
step, mean over heads, padding hatched) into ``<run>/attention/``. The work is done by
:mod:`selfcross.analysis.attention` (the measurement) and :mod:`selfcross.report.attention` (the
drawing) (docs/diagnostics.md, "Attention maps and padding").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from selfcross.config import user_errors
from selfcross.utils import signals


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m selfcross.attention",
        description="Attention maps and attention-on-padding statistics of a finished run.",
    )
    parser.add_argument("run", type=Path, help="a run folder (holding result.json)")
    parser.add_argument(
        "--utterances", type=int, default=4,
        help="test utterances drawn as heatmaps (default 4, spanning the classes)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="default <run>/attention")
    return parser


def attention_report(run_dir: Path, utterances: int = 4, out: Path | None = None):
    """Measure the run's attention, draw the picked utterances and write ``attention.json``
    into ``out`` (default ``<run>/attention``); return its record."""
    from selfcross.analysis.attention import measure_attention
    from selfcross.analysis.records import ATTENTION_DIR, write_attention
    from selfcross.report.attention import draw_attention

    measured = measure_attention(run_dir, utterances)
    out = Path(out) if out is not None else measured.run.run_dir / ATTENTION_DIR
    record = measured.record()
    draw_attention(record, measured.sites, measured.maps, out)
    write_attention(out, record)
    return record


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with user_errors():
        from selfcross.analysis.records import ATTENTION_DIR
        from selfcross.report.attention import print_summary

        out = args.out or args.run / ATTENTION_DIR
        signals.phase(f"while measuring the attention of {args.run}",
                      "rerun the same command to measure it")  # fmt: skip
        record = attention_report(args.run, args.utterances, out)
        signals.finished(f"the attention report ({out})")
        print_summary(record, out)


if __name__ == "__main__":
    main()
