"""The demo grid single vs grouped (scripts/compare_seed_group_demo.py): the comparison of
two sets of hand-made ``result.json`` files, every value checked."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from selfcross.benchmark.demo_groups import compare, read_runs
from selfcross.errors import DataError
from tests.helpers.recordkit import write_run

ROOT = Path(__file__).resolve().parents[2]

# (model, modality, seed): (uwa, wa) for each way; self-A seed 1 has no grouped run
SINGLE = {
    ("self", "T", 1): (0.5, 0.25),
    ("self", "T", 2): (0.75, 0.5),
    ("cross", "TV", 1): (0.25, 0.5),
    ("cross", "TV", 2): (0.5, 0.75),
    ("self", "A", 1): (0.5, 0.5),
}
GROUPED = {
    ("self", "T", 1): (0.5, 0.75),
    ("self", "T", 2): (0.5, 0.75),
    ("cross", "TV", 1): (0.625, 0.5),
    ("cross", "TV", 2): (0.875, 0.625),
}


def write_sweep(folder: Path, runs: dict) -> Path:
    for (model, modality, seed), (uwa, wa) in runs.items():
        write_run(folder / model / modality / "fold1" / f"seed{seed}", model, modality, 1, seed,
                  wa=wa, uwa=uwa)  # fmt: skip
    return folder


@pytest.fixture
def sweeps(tmp_path):
    return write_sweep(tmp_path / "single", SINGLE), write_sweep(tmp_path / "grouped", GROUPED)


def test_cells_spread_and_the_mean_absolute_difference(sweeps):
    single, grouped = (read_runs(folder) for folder in sweeps)
    out = compare(single, grouped)
    cells = {(c["model"], c["modality"]): c for c in out["cells"]}
    assert list(cells) == [("cross", "TV"), ("self", "A"), ("self", "T")]
    self_t = cells["self", "T"]
    assert self_t["single"]["uwa"] == {
        "mean": 0.625, "std": pytest.approx(math.sqrt(0.03125), rel=1e-12),
        "min": 0.5, "max": 0.75, "n": 2,
    }  # fmt: skip
    assert self_t["grouped"]["uwa"] == {"mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5, "n": 2}
    assert self_t["grouped"]["wa"]["mean"] == 0.75 and self_t["single"]["wa"]["max"] == 0.5
    # a mean on the spread's end is within; 0.75 above [0.25, 0.5] is not
    assert self_t["grouped_uwa_mean_within_single_spread"] is True
    assert self_t["grouped_wa_mean_within_single_spread"] is False
    cross = cells["cross", "TV"]
    assert cross["grouped"]["uwa"]["mean"] == 0.75  # above [0.25, 0.5]
    assert cross["grouped_uwa_mean_within_single_spread"] is False
    assert cross["grouped"]["wa"]["mean"] == 0.5625  # within [0.5, 0.75]
    assert cross["grouped_wa_mean_within_single_spread"] is True
    alone = cells["self", "A"]
    assert alone["grouped"] is None
    assert alone["single"]["uwa"] == {"mean": 0.5, "std": None, "min": 0.5, "max": 0.5, "n": 1}
    assert alone["grouped_uwa_mean_within_single_spread"] is None
    # |0.5-0.5|, |0.75-0.5|, |0.25-0.625|, |0.5-0.875| over the 4 runs present both ways
    assert out["matched_runs"] == 4
    assert out["mean_abs_diff_test_uwa"] == 0.25
    assert out["max_abs_diff_test_uwa"] == 0.375
    assert out["unmatched_runs"] == [["self", "A", 1, 1]]
    assert out["cells_within_single_spread"] == {"uwa": 1, "wa": 1}
    assert out["cells_compared"] == 2


def test_a_run_twice_is_refused(sweeps):
    single, _ = sweeps
    write_run(single / "again", "self", "T", 1, 1, wa=0.5, uwa=0.5)
    with pytest.raises(DataError, match="the same run as"):
        compare(read_runs(single), [])


def test_an_unusable_record_names_its_file(sweeps):
    single, _ = sweeps
    broken = single / "self" / "T" / "fold1" / "seed2" / "result.json"
    broken.write_text(broken.read_text()[:40])
    with pytest.raises(DataError, match="seed2/result.json: unusable record"):
        read_runs(single)


def test_the_script_compares_two_finished_sweeps(sweeps, tmp_path):
    script = ROOT / "scripts" / "compare_seed_group_demo.py"
    done = subprocess.run([sys.executable, script, "--work", tmp_path, "--way", "none"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "compare.json").read_text())
    assert report == json.loads(done.stdout)
    assert (report["single"]["runs"], report["grouped"]["runs"]) == (5, 4)
    assert report["single"]["timing"] is None and report["grouped"]["seed_group"] == 2
    assert report["mean_abs_diff_test_uwa"] == 0.25
