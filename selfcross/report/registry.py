"""Every output of ``python -m selfcross.tables``, by name: its help line, how it is made and the
options only it takes. The command builds its parser and dispatches from :data:`TABLES` alone,
so a new table is one entry here beside its module.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from selfcross.analysis.results import TABLE_METRICS
from selfcross.report.crosscorpus import make_crosscorpus
from selfcross.report.figure3 import make_figure3
from selfcross.report.masking import make_masking
from selfcross.report.render import make_tables
from selfcross.report.table1 import build_table1, table1_cells
from selfcross.report.table2 import build_table2, table2_cells
from selfcross.report.table3 import build_table3, table3_cells
from selfcross.report.table4 import make_table4
from selfcross.report.table5 import make_table5
from selfcross.report.tuning import make_tuning

RESULTS_HELP = "directory searched (recursively) for result.json files"


@dataclass(frozen=True)
class Option:
    """A command-line option of one table: argparse's flags and keyword arguments. Its value
    reaches the table's ``make`` as the keyword ``dest``."""

    flags: tuple[str, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        """The keyword argparse stores the value under (``--split-configs``: split_configs)."""
        if "dest" in self.settings:
            return self.settings["dest"]
        long = next((f for f in self.flags if f.startswith("--")), self.flags[0])
        return long.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Table:
    """One output of the command.

    ``grid``: it reads ``result.json`` files over the protocol grid, with the options every
    such table takes (``--folds``, ``--seeds``, ``--expected-runs``, ``--allow-mixed-data``),
    and is made by ``make(results, out, protocol, allow_mixed_data, **options)``; otherwise by
    ``make(results, out, **options)``. ``options`` are its own, passed by their ``dest``.
    """

    help: str
    make: Callable[..., object]
    options: tuple[Option, ...] = ()
    grid: bool = True
    results_help: str = RESULTS_HELP


def metric_list(text: str) -> tuple[str, ...]:
    """``--metrics wa,uwa,wf1,mf1`` -> the names, in the order given (argparse's type)."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",")))
    unknown = [n for n in names if n not in TABLE_METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected metric names among {','.join(TABLE_METRICS)}"
        )
    return names


METRICS = Option(
    ("--metrics",),
    {
        "type": metric_list,
        "default": None,
        "help": "metrics to show, among wa,uwa,wf1,mf1 (default: the dataset's, conf/data/"
        "<name>.yaml: metrics; IEMOCAP wa,uwa, MELD wf1,uwa)",
    },
)

SPLIT_CONFIGS = Option(
    ("--split-configs",),
    {
        "action": "store_true",
        "help": "runs of one cell whose configurations differ (beyond fold and seed) become "
        "separate tables, labelled with the differing keys, under --out/<label>/ "
        "(default: refused)",
    },
)


def cell_table(build, cells) -> Callable[..., object]:
    """``make`` of a table laid out from cells of the grid (Table 1, 2, 3): gathered, built by
    ``build``, printed and written (one table per configuration with ``split_configs``)."""
    return partial(make_tables, build, cells)


TABLES: dict[str, Table] = {
    "table1": Table(
        "Self vs Cross on all modality subsets",
        cell_table(build_table1, table1_cells()),
        (SPLIT_CONFIGS, METRICS),
    ),
    "table2": Table(
        "the five tri-modal models",
        cell_table(build_table2, table2_cells()),
        (SPLIT_CONFIGS, METRICS),
    ),
    "table3": Table(
        "transformer layers vs bare attention",
        cell_table(build_table3, table3_cells()),
        (SPLIT_CONFIGS, METRICS),
    ),
    "table4": Table(
        "untuned vs tuned Self and Cross on T+V, T+A, V+A",
        make_table4,
        (
            Option(
                ("--tuned",),
                {
                    "type": Path,
                    "required": True,
                    "help": "directory of the experiment=tuned runs (--results: the untuned "
                    "Table 1 runs)",
                },
            ),
            METRICS,
        ),
    ),
    "table5": Table(
        "Self vs Cross under each evaluation protocol, and cross-corpus",
        make_table5,
        (
            Option(
                ("--block",),
                {
                    "action": "append",
                    "dest": "blocks",
                    "metavar": "NAME=DIR",
                    "help": "a "
                    "block's runs elsewhere than <results>/NAME (random, 4class, session, meld)",
                },
            ),
            METRICS,
        ),
    ),
    "tuning": Table(
        "one study's trials, best settings, importances",
        make_tuning,
        (
            Option(
                ("--storage",),
                {
                    "help": "the study's tune.storage with credentials (default: study.db, "
                    "or the URL best.json records, credentials from PGPASSWORD/~/.pgpass)",
                },
            ),
        ),
        grid=False,
        results_help="the study folder (holding study.db or best.json)",
    ),
    "masking": Table("masked vs unmasked padding (Self, Cross)", make_masking, (METRICS,)),
    "crosscorpus": Table(
        "Self and Cross in-corpus vs on another dataset (selfcross.evaluate's scores)",
        make_crosscorpus,
        (
            Option(
                ("--class-map",),
                {
                    "default": "iemocap_meld",
                    "help": "the class map the runs were scored "
                    "through (conf/class_map/; default iemocap_meld)",
                },
            ),
            Option(
                ("--target",),
                {
                    "default": None,
                    "help": "the scored data's label, where the runs were "
                    "scored on several (default: the one found)",
                },
            ),
            METRICS,
        ),
    ),
    "figure3": Table(
        "tri-modal confusion matrices",
        make_figure3,
        (
            Option(
                ("--fold",),
                {"type": int, "default": None, "help": "default: the lowest fold present"},
            ),
            Option(
                ("--seed",),
                {"type": int, "default": None, "help": "one seed (default: sum all seeds)"},
            ),
        ),
    ),
}
"""Name -> table, in the order of the command's help."""
