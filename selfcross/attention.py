"""Attention maps of a finished run, and the share of attention that falls on padding.

    python -m selfcross.attention <run folder> [--utterances 4] [--out <run>/attention]

The run is rebuilt from its ``result.json`` and its best checkpoint (weights only; a run whose
checkpoints were pruned cannot be read). Writes ``attention.json`` (per attention module and head,
over the whole test split: mean attention entropy and the share of attention mass on padded
keys) and one PNG per picked test utterance (one heatmap per attention module, query step x key
step, mean over heads, padding hatched) into ``<run>/attention/``. The work is done by
:mod:`selfcross.report.attention` (docs/diagnostics.md, "Attention maps and padding").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from selfcross.config import user_errors


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


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with user_errors():
        from selfcross.report.attention import attention_report, print_summary

        out = args.out or args.run / "attention"
        result = attention_report(args.run, args.utterances, out)
        print_summary(result, out)


if __name__ == "__main__":
    main()
