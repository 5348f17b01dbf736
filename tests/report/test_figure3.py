"""Figure 3 from hand-written result.json files (python -m selfcross.tables figure3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from selfcross.analysis.results import load_results
from selfcross.report.figure3 import figure3_panels
from tests.helpers.recordkit import CLASSES
from tests.helpers.reportkit import TV_SELF, expect_error, run_main, write_cell, write_result

# -- Figure 3 --------------------------------------------------------------------------------


def confusion(seed: int, model: str) -> np.ndarray:
    """A distinct 7x7 count matrix per (model, seed); class 'surprise' never in the test set."""
    rng = np.random.default_rng(seed * 10 + len(model))
    counts = rng.integers(0, 9, (7, 7)) + np.diag(rng.integers(20, 40, 7))
    counts[5] = 0
    return counts


def write_figure_runs(root: Path) -> None:
    for model in ("self", "cross"):
        for fold in (2, 3):
            for seed in (1, 2):
                write_result(root, model, "TVA", fold, seed, 0.5,
                             confusion=confusion(seed + fold, model).tolist(),
                             class_names=CLASSES)  # fmt: skip


def test_figure3_matrices_are_row_normalised_sums(tmp_path):
    root = tmp_path / "multirun"
    write_figure_runs(root)
    runs, skipped = load_results(root)
    panels, selection = figure3_panels(root, runs, skipped, seeds=(1, 2))
    assert selection.protocol.folds == (2,)  # the lowest fold present
    for model in ("self", "cross"):
        counts = confusion(3, model) + confusion(4, model)  # fold 2, seeds 1 and 2
        with np.errstate(invalid="ignore"):
            expected = counts / counts.sum(axis=1, keepdims=True)
        got = panels[model].normalised
        assert np.isnan(got[5]).all()  # no 'surprise' utterance: nothing to normalise
        keep = [i for i in range(7) if i != 5]
        np.testing.assert_allclose(got[keep], expected[keep])
        np.testing.assert_allclose(got[keep].sum(axis=1), 1.0)
    one, _ = figure3_panels(root, runs, skipped, seeds=(2,), fold=3)
    counts = confusion(5, "cross")
    np.testing.assert_allclose(one["cross"].normalised[0], counts[0] / counts[0].sum())


def test_figure3_writes_readable_images(tmp_path, capsys):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    write_figure_runs(root)
    (root / "self/TVA/fold2/seed2/result.json").unlink()  # an incomplete panel
    run_main("figure3", "--results", str(root), "--out", str(out), "--seeds", "1-2")
    png, pdf = out / "figure3.png", out / "figure3.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 30_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000
    printed = capsys.readouterr().out
    assert (
        "Self T+V+A, fold 2, 1 run(s)†" in printed and "Cross T+V+A, fold 2, 2 run(s)" in printed
    )
    assert "Self T+V+A: 1 of 2 runs; missing fold 2 seed 2" in printed
    assert (
        "(7 result.json read, 3 runs used, 0 skipped as unusable, 0 outside the expected "
        "grid ignored, 4 of other cells not shown here)" in printed
    )
    for label in ("ang", "exc", "hap", "sad", "fru", "sur", "neu"):
        assert label in printed


def test_figure3_without_tri_modal_runs_is_an_error(tmp_path, capsys):
    root = tmp_path / "multirun"
    write_cell(root, "self", "TV", TV_SELF)
    line = expect_error(capsys, "figure3", "--results", str(root), "--out", str(tmp_path / "o"))
    assert line == f"error: {root}: no tri-modal self or cross run with seed 1-10"
