"""Peak memory and CPU time of MELD preparation, on fake releases of growing size.

    .venv/bin/python scripts/bench_prepare.py --clips 60 300 --work /tmp/bench-prepare

For each size it writes a clean fake release (``tests/helpers/meldkit.py``: H.264 320 x 180 clips
of MELD-like lengths, 48 kHz stereo AAC; kept in ``--work`` and reused) and runs the real command
``python -m selfcross.prepare dataset=meld ... vision.random_weights=true`` in a fresh process,
from an empty output folder (no cache), at the real shapes (MFCC 1000 x 120, ResNet-101 32 x 2048
of 224 x 224 frames, GloVe 300-D). Random ResNet weights cost what real ones do.

Per size it reports the peak resident memory of the largest process (``ru_maxrss`` of the
command and its waited-for workers, from ``wait4``), CPU seconds (user + system, workers
included) and CPU seconds per 1,000 utterances. The baseline is the smallest release of the same
run: memory is bounded when the peak does not grow with the release (ratio near 1). One JSON
line per size on stdout, a table on stderr; docs/preparing-meld.md quotes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers.meldkit import make_scaled_meld  # noqa: E402


def release(work: Path, n: int) -> Path:
    """The fake release of ``n`` clips, written once (a marker file says it is complete)."""
    folder = work / f"release-{n}"
    done = folder / "complete"
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        make_scaled_meld(folder, n)
        done.write_text("")
    return folder


def prepare(folder: Path, out: Path, jobs: int, extra: list[str]) -> dict:
    """Run the preparation command in a new process; its resource usage and summary."""
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable, "-m", "selfcross.prepare", "dataset=meld",
        f"raw={folder / 'MELD.Raw'}", f"glove={folder / 'glove.txt'}", f"out={out}",
        "vision.random_weights=true", f"jobs={jobs}", "progress=false", *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    with open(out.with_suffix(".log"), "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{out.with_suffix('.log')}: preparation failed with exit code {code}")
    summary = json.loads((out / "prepare.json").read_text())
    utterances = summary["computed"]["audio"]  # every usable clip, computed from scratch
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "clips": None,
        "utterances": utterances,
        "frames": summary["computed"]["frames"],
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "cpu_s": round(cpu, 1),
        "cpu_s_per_1000_utterances": round(1000 * cpu / max(utterances, 1)),
        "wall_s": round(wall, 1),
        "resnet_s": summary["timing"]["resnet_seconds"],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, nargs="+", default=[60, 300])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-prepare"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("extra", nargs="*", help="more prepare overrides (key=value)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sorted(args.clips):
        folder = release(args.work, n)
        row = prepare(folder, args.work / f"prepared-{n}", args.jobs, args.extra)
        row["clips"] = n
        row["peak_vs_smallest"] = round(row["peak_rss_mb"] / (rows or [row])[0]["peak_rss_mb"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    header = ("clips", "frames", "peak RSS MB", "x smallest", "CPU s", "CPU s / 1k utt", "wall s")
    keys = ("clips", "frames", "peak_rss_mb", "peak_vs_smallest", "cpu_s",
            "cpu_s_per_1000_utterances", "wall_s")  # fmt: skip
    print(" | ".join(header), file=sys.stderr)
    for r in rows:
        print(
            " | ".join(f"{r[k]:>{len(h)}}" for k, h in zip(keys, header, strict=True)),
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
