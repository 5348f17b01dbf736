"""The paper's Table 1, Table 2 and Figure 3, and our Table 3 (transformer layers), built
from the runs' ``result.json`` files.

    python -m selfcross.tables table1 --results multirun/table1 [--out tables]
    python -m selfcross.tables table2 --results multirun/table2
    python -m selfcross.tables table3 --results multirun/table3
    python -m selfcross.tables figure3 --results multirun/table1 [--fold 1] [--seed 3]
    python -m selfcross.tables tuning --results multirun/tune-synthetic-small-cross-TA
    python -m selfcross.tables table4 --results multirun/paper-synthetic-small \
        --tuned multirun/tuned-synthetic-small
    python -m selfcross.tables masking --results multirun/mask_padding-<data>

Every file named ``result.json`` under ``--results`` is read. Each table cell is the mean ± sample
std (ddof=1) of the runs of one model on one modality subset, with their number n; a cell with
fewer runs than the protocol's grid (``--folds`` x ``--seeds``, by default 5 folds, or those of the
data root's manifest, x 10 seeds) is marked with a dagger and listed, with the missing (fold,
seed), in a "missing runs" report.
Self vs Cross is tested with the paper's test (Student's two-sample t-test, ``*`` where p < .05)
and, beside it, the paired t-test over runs matched by (fold, seed). Tables are printed and
written as ``<out>/<name>.md``, ``.tex`` and ``.csv``; Figure 3 as ``<out>/figure3.png``/``.pdf``.
The work is done by :mod:`selfcross.report`; this module only reads the command line. The
tables it knows, their help lines and their own options are
:data:`selfcross.report.registry.TABLES`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from selfcross.config import user_errors
from selfcross.errors import ConfigError
from selfcross.report.paper import N_RUNS
from selfcross.report.registry import RESULTS_HELP, TABLES
from selfcross.report.select import DEFAULT_FOLDS, Protocol, manifest_folds
from selfcross.utils import signals


def int_list(text: str) -> tuple[int, ...]:
    """``1-5`` or ``1,3,5`` or ``1-3,7`` -> sorted unique integers."""
    values: set[int] = set()
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            lo_i = int(lo)
            hi_i = int(hi) if sep else lo_i
            if hi_i < lo_i:
                raise ValueError
            values.update(range(lo_i, hi_i + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected integers such as 1-5 or 1,3,5"
        ) from None
    return tuple(sorted(values))


def protocol_from(args: argparse.Namespace) -> Protocol:
    """The grid from --folds and --seeds, or --folds and --expected-runs (seeds 1..runs/folds).

    Without --folds: the folds of the runs' data root, as its manifest says (seeds then default
    to 1-10), else 1-5."""
    folds = args.folds
    if folds is not None and min(folds) < 1:
        shown = ",".join(map(str, folds))
        raise ConfigError(f"--folds {shown}: folds are numbered from 1 (fold 1 is fold01)")
    if folds is None:
        folds = manifest_folds(args.results)
        if folds is None:
            folds = DEFAULT_FOLDS
        elif args.seeds is None and args.expected_runs is None:
            args.seeds = tuple(range(1, N_RUNS // len(DEFAULT_FOLDS) + 1))
    if args.seeds is not None:
        seeds = args.seeds
        if args.expected_runs is not None and args.expected_runs != len(folds) * len(seeds):
            raise ConfigError(
                f"--expected-runs {args.expected_runs} disagrees with {len(folds)} folds x "
                f"{len(seeds)} seeds"
            )
        return Protocol(folds, seeds)
    expected = N_RUNS if args.expected_runs is None else args.expected_runs
    if expected < 1 or expected % len(folds):
        raise ConfigError(
            f"--expected-runs {expected} is not a positive multiple of the {len(folds)} folds; "
            "give --seeds"
        )
    return Protocol(folds, tuple(range(1, expected // len(folds) + 1)))


def io_options(results_help: str) -> argparse.ArgumentParser:
    """``--results`` and ``--out``, which every table takes."""
    io = argparse.ArgumentParser(add_help=False)
    io.add_argument("--results", type=Path, required=True, help=results_help)
    io.add_argument("--out", type=Path, default=Path("tables"), help="output directory")
    return io


def grid_options() -> argparse.ArgumentParser:
    """The protocol grid's options, which every table read from result.json files takes."""
    grid = argparse.ArgumentParser(add_help=False)
    grid.add_argument(
        "--folds", type=int_list, default=None,
        help="default: 1..n of the data root's manifest (dataset.json), else 1-5",
    )  # fmt: skip
    grid.add_argument(
        "--seeds", type=int_list, default=None,
        help="expected seeds (default 1..expected-runs/folds, i.e. 1-10)",
    )  # fmt: skip
    grid.add_argument(
        "--expected-runs", type=int, default=None,
        help=f"runs per cell (default {N_RUNS} = 5 folds x 10 seeds)",
    )  # fmt: skip
    grid.add_argument(
        "--allow-mixed-data", action="store_true",
        help="aggregate runs of different data sources or fold fingerprints anyway",
    )  # fmt: skip
    return grid


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per entry of :data:`TABLES`, in its order."""
    parser = argparse.ArgumentParser(
        prog="python -m selfcross.tables",
        description="Build Table 1-5, Figure 3, the cross-corpus or a tuning table from result "
        "files.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = [io_options(RESULTS_HELP), grid_options()]
    for name, table in TABLES.items():
        parents = common if table.grid else [io_options(table.results_help)]
        command = sub.add_parser(name, parents=parents, help=table.help)
        for option in table.options:
            command.add_argument(*option.flags, **option.settings)
    return parser


def check_table_name(argv: list[str]) -> None:
    """An unknown table name in one line (argparse's own message comes with its usage)."""
    name = argv[0] if argv else "-"
    if not name.startswith("-") and name not in TABLES:
        raise ConfigError(f"{name}: no such table; choose one of {', '.join(TABLES)}")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    with user_errors():
        check_table_name(argv)
    args = build_parser().parse_args(argv)
    table = TABLES[args.command]
    options = {option.dest: getattr(args, option.dest) for option in table.options}
    with user_errors():
        signals.phase(f"while making {args.command}", "rerun the same command to make it")
        if table.grid:
            protocol = protocol_from(args)
            table.make(args.results, args.out, protocol, args.allow_mixed_data, **options)
        else:
            table.make(args.results, args.out, **options)
        signals.finished(f"{args.command} ({args.out})")


if __name__ == "__main__":
    main()
