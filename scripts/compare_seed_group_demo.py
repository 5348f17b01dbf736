"""The demo grid (``experiment=demo``: 22 short runs) as single runs and as seed groups.

    nice -n 10 .venv/bin/python scripts/compare_seed_group_demo.py --work /tmp/demo-groups

Generates the synthetic data once under ``<work>/data`` (outside the timing), then runs the
grid twice, one sweep after the other: single runs into ``<work>/single`` and ``seed_group=K``
(default 2: the demo's two seeds as one group) into ``<work>/grouped``, timing each. Then reads
both sets of ``result.json`` files (``selfcross.benchmark.demo_groups.compare``) and writes
``<work>/compare.json``: each way's wall time and run count, per (model, modality) the mean,
std, minimum and maximum of test UWA and WA each way, whether the grouped mean lies within the
single runs' spread, and the mean absolute difference of test UWA over matching runs. A report,
not a check: docs/performance.md quotes it. ``--way single`` or ``--way grouped`` trains one
sweep only (each way's timing is kept in ``<work>/<way>-timing.json``: wall and CPU seconds, load
averages before and after); ``--way none`` compares two finished sweeps.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selfcross.benchmark.demo_groups import compare, read_runs, run_demo  # noqa: E402
from selfcross.benchmark.timing import machine  # noqa: E402


def timed(way: str, folder: Path, data: Path, overrides: list[str], work: Path) -> dict:
    """Run one way's sweep; its wall and CPU seconds and the load around it, also written to
    ``<work>/<way>-timing.json`` (a later ``--way none`` reads it back)."""
    before, cpu = os.getloadavg(), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    seconds = run_demo(folder, data, overrides)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    timing = {
        "wall_seconds": round(seconds, 1),
        "cpu_seconds": round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 1),
        "load_avg": {"before": before, "after": os.getloadavg()},
        "started": started,
        "overrides": overrides,
    }
    (work / f"{way}-timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    return timing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder of both sweeps")
    parser.add_argument("--seed-group", type=int, default=2, help="K of the grouped sweep")
    parser.add_argument("--way", choices=("both", "single", "grouped", "none"), default="both",
                        help="the sweeps to train (none: compare finished ones)")  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="more overrides for both sweeps")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    data = work / "data"
    folders = {"single": work / "single", "grouped": work / "grouped"}
    ways = {
        "single": args.overrides,
        "grouped": [f"seed_group={args.seed_group}", *args.overrides],
    }
    if args.way != "none":
        prepare = [sys.executable, "-m", "selfcross.check", "data=synthetic",
                   f"paths.data_dir={data}"]  # fmt: skip
        subprocess.run(prepare, check=True, stdout=subprocess.DEVNULL)
        for way, overrides in ways.items():
            if args.way in ("both", way):
                timed(way, folders[way], data, overrides, work)
    if args.way not in ("both", "none"):
        return 0
    runs = {way: read_runs(folder) for way, folder in folders.items()}
    report = {}
    for way, folder in folders.items():
        timing = work / f"{way}-timing.json"
        report[way] = {
            "folder": str(folder),
            "runs": len(runs[way]),
            "timing": json.loads(timing.read_text()) if timing.is_file() else None,
        }
    report["grouped"]["seed_group"] = args.seed_group
    report.update(compare(runs["single"], runs["grouped"]), machine=machine())
    text = json.dumps(report, indent=2)
    (work / "compare.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
