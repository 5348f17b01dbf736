"""Tables print the runs' evaluation scheme and refuse to pool runs of different schemes."""

from __future__ import annotations

from tests.helpers.reportkit import (
    GRID,
    KEYS,
    TV_CROSS,
    TV_SELF,
    expect_error,
    run_main,
    write_result,
)

RANDOM = {"split": "random", "seed": 0, "class_set": None}
FOUR = {"split": "random", "seed": 0, "class_set": "4class"}
SPEAKER = {"split": "speaker", "seed": 0, "class_set": None}


def write_cell(root, model, values, scheme, **fields):
    for (fold, seed), wa in zip(KEYS, values, strict=True):
        data = {"scheme": scheme} if scheme is not None else {}
        write_result(root, model, "TV", fold, seed, wa, data=data, **fields)


def test_the_scheme_is_in_the_title_and_provenance(tmp_path):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_cell(root, "self", TV_SELF, SPEAKER)
    write_cell(root, "cross", TV_CROSS, SPEAKER)
    run_main("table1", "--results", str(root), "--out", str(out), *GRID)
    md = (out / "table1.md").read_text()
    scheme = "split speaker (seed 0), all classes"
    assert md.splitlines()[0].endswith(f"mean ± std over runs ({scheme})")
    assert f"Evaluation scheme: {scheme}" in md


def test_runs_of_another_class_set_are_refused(tmp_path, capsys):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_cell(root, "self", TV_SELF, RANDOM)
    write_cell(root, "cross", TV_CROSS, FOUR)
    line = expect_error(capsys, "table1", "--results", str(root), "--out", str(out), *GRID)
    cross, self_ = (root / f"{m}/TV/fold1/seed1/result.json" for m in ("cross", "self"))
    assert line == (
        f"error: {self_}: evaluation scheme split random (seed 0), all classes differs from "
        f"split random (seed 0), class set 4class in {cross}: a table pools runs of one scheme"
    )


def test_runs_of_another_split_are_refused_even_with_mixed_data_allowed(tmp_path, capsys):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_cell(root, "self", TV_SELF, RANDOM)
    write_cell(root, "cross", TV_CROSS, SPEAKER)
    line = expect_error(capsys, "table1", "--results", str(root), "--out", str(out), *GRID,
                        "--allow-mixed-data")  # fmt: skip
    assert (
        "evaluation scheme split random (seed 0), all classes differs from split speaker" in line
    )


def test_records_without_a_scheme_pool_with_any(tmp_path):
    """Records written before the scheme was recorded are not compared (older tables work)."""
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_cell(root, "self", TV_SELF, None)
    write_cell(root, "cross", TV_CROSS, RANDOM)
    run_main("table1", "--results", str(root), "--out", str(out), *GRID)
    assert (
        "Evaluation scheme: split random (seed 0), all classes" in (out / "table1.md").read_text()
    )
