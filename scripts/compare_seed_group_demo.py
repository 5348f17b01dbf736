"""The demo grid (``experiment=demo``: 22 short runs) as single runs and as seed groups.

    nice -n 10 .venv/bin/python scripts/compare_seed_group_demo.py --work /tmp/demo-groups

Generates the synthetic data once under ``<work>/data`` (outside the timing), then runs the
grid twice, one sweep after the other: single runs into ``<work>/single`` and ``seed_group=K``
(default 2: the demo's two seeds as one group) into ``<work>/grouped``, timing each. Then reads
both sets of ``result.json`` files (``selfcross.benchmark.demo_groups.compare``) and writes
``<work>/compare.json``: each way's wall time and run count, per (model, modality) the mean,
std, minimum and maximum of test UWA and WA each way, whether the grouped mean lies within the
single runs' spread, and the mean absolute difference of test UWA over matching runs. A report,
not a check: docs/performance.md quotes it. ``--compare-only`` reads two finished sweeps again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selfcross.benchmark.demo_groups import compare, read_runs, run_demo  # noqa: E402
from selfcross.benchmark.timing import machine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder of both sweeps")
    parser.add_argument("--seed-group", type=int, default=2, help="K of the grouped sweep")
    parser.add_argument("--compare-only", action="store_true", help="no training: compare")
    parser.add_argument("overrides", nargs="*", help="more overrides for both sweeps")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    data = work / "data"
    folders = {"single": work / "single", "grouped": work / "grouped"}
    seconds = {"single": None, "grouped": None}
    load = {"single": None, "grouped": None}  # load averages (1, 5, 15 min) before and after
    if not args.compare_only:
        prepare = [sys.executable, "-m", "selfcross.check", "data=synthetic",
                   f"paths.data_dir={data}"]  # fmt: skip
        subprocess.run(prepare, check=True, stdout=subprocess.DEVNULL)
        grouped = [f"seed_group={args.seed_group}", *args.overrides]
        for way, overrides in (("single", args.overrides), ("grouped", grouped)):
            before = os.getloadavg()
            seconds[way] = run_demo(folders[way], data, overrides)
            load[way] = {"before": before, "after": os.getloadavg()}
    runs = {way: read_runs(folder) for way, folder in folders.items()}
    report = {
        way: {
            "folder": str(folders[way]),
            "wall_seconds": seconds[way],
            "load_avg": load[way],
            "runs": len(runs[way]),
        }
        for way in folders
    }
    report["grouped"]["seed_group"] = args.seed_group
    report.update(compare(runs["single"], runs["grouped"]), machine=machine())
    text = json.dumps(report, indent=2)
    (work / "compare.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
