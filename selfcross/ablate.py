"""Missing-modality evaluation of finished runs, and its table and figure.

    python -m selfcross.ablate --results multirun/<sweep> [--out tables] [--fill zeros|train_mean]
        [--metrics wa,uwa,wf1,mf1]

Every finished run under ``--results`` trained on two or more modalities is reloaded from its
best checkpoint and its test split scored once per non-empty subset of its modalities, the
absent ones blanked with ``--fill``; each run gets ``ablation.json`` (runs whose file matches
are not scored again). Then ``<out>/ablation.md``, ``.tex``, ``.csv`` and ``ablation.png``:
each metric (``--metrics``; default the dataset's: IEMOCAP WA and UWA) per present subset,
the drop from the full set, and Self vs Cross t-tests on the drops (docs/diagnostics.md). The
work is done by :mod:`selfcross.analysis.ablation` and :mod:`selfcross.report.ablation`; this
module only reads the command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from selfcross.analysis.ablation import ablate_results
from selfcross.config import user_errors
from selfcross.models.blanking import FILLS
from selfcross.report.ablation import make_ablation_report
from selfcross.report.registry import metric_list
from selfcross.utils import signals


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m selfcross.ablate",
        description="Score finished runs with modalities left out; write ablation.json per "
        "run and the ablation table and figure.",
    )
    parser.add_argument(
        "--results", type=Path, required=True,
        help="directory searched (recursively) for result.json files",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("tables"), help="output directory")
    parser.add_argument(
        "--fill", choices=FILLS, default="zeros",
        help="what replaces an absent modality: zeros, or the per-feature mean of the train "
        "split (default zeros)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics", type=metric_list, default=None,
        help="metrics to show, among wa,uwa,wf1,mf1 (default: the dataset's, conf/data/"
        "<name>.yaml: metrics; IEMOCAP wa,uwa, MELD wf1,uwa)",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with user_errors():
        signals.phase("while scoring the runs with modalities left out",
                      "rerun the same command to resume (scored runs are kept)")  # fmt: skip
        outcome = ablate_results(args.results, args.fill)
        for run in outcome.runs:
            line = f"{run.status:8s} {run.run_dir}"
            print(line + (f": {run.reason}" if run.reason else ""), flush=True)
        counts = {s: len(outcome.with_status(s)) for s in ("scored", "reused", "skipped")}
        print(
            f"{counts['scored']} runs scored, {counts['reused']} reused, "
            f"{counts['skipped']} skipped; {outcome.not_applicable} uni-modal runs not "
            "applicable",
            flush=True,
        )
        signals.phase("while writing the ablation table", "rerun the same command to write it")
        make_ablation_report(args.results, args.out, args.fill, args.metrics)
        signals.finished(f"the ablation table ({args.out})")


if __name__ == "__main__":
    main()
