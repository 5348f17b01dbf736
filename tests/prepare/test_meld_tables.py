"""The tables and Figure 3 on a hand-made one-fold MELD grid: no paper columns, the folds taken
from the data root's manifest, MELD's class names.
"""

from __future__ import annotations

from tests.helpers.meldkit import CLASSES, SHAPES


def meld_grid(root, data_root="/data/meld"):
    """Hand-made results of a one-fold MELD grid: Table 1's cells and Table 2's models."""
    from tests.helpers.reportkit import write_result

    data = {"name": "meld", "preset": None, "root": str(data_root), "fingerprint": "fold1",
            "fold_path": f"{data_root}/fold01"}  # fmt: skip
    for model, modalities in (("self", "T V A TV TA VA TVA"), ("cross", "TV TA VA TVA"),
                              ("self_nosp", "TVA"), ("cross_nosp", "TVA"),
                              ("cross_self", "TVA")):  # fmt: skip
        for modality in modalities.split():
            for seed in (1, 2, 3):
                wa = 0.40 + 0.01 * seed + (0.05 if model == "self" else 0.0)
                write_result(root, model, modality, 1, seed, wa, data=data,
                             class_names=list(CLASSES))  # fmt: skip
    # one run missing: the report names it
    (root / "cross/TA/fold1/seed3/result.json").unlink()


def test_tables_on_a_one_fold_meld_grid_have_no_paper_columns(tmp_path, capsys):
    from tests.helpers.reportkit import md_tables, read_csv, run_main

    meld_grid(tmp_path / "runs")
    out = tmp_path / "tables"
    for table in ("table1", "table2"):
        run_main(table, "--results", str(tmp_path / "runs"), "--out", str(out), "--folds", "1",
                 "--seeds", "1-3")  # fmt: skip
    text = capsys.readouterr().out
    t1 = md_tables((out / "table1.md").read_text())
    for rows in t1.values():
        assert list(rows[0]) == ["Modality", "Cross", "Self", "p t-test", "p paired", "pairs"]
    first = next(iter(t1.values()))
    tva = next(r for r in first if r["Modality"] == "T+V+A")
    assert tva["Self"].startswith("**.470 ± .010") and tva["Cross"].startswith(".420 ± .010")
    t2 = md_tables((out / "table2.md").read_text())
    assert list(next(iter(t2.values()))[0]) == ["Model", "WF1", "UWA"]  # MELD's metrics
    for name in ("table1", "table2"):
        body = (out / f"{name}.md").read_text() + (out / f"{name}.tex").read_text()
        for reference in ("(paper)", "(ours)", "MDRE", "AMH", ".642", ".636"):
            assert reference not in body, (name, reference)
        assert "The paper reports no results on meld" in body
        rows = read_csv(out / f"{name}.csv")
        assert all(r["paper_mean"] == "" for r in rows.values())
        assert not any(model in ("mdre", "amh") for _, _, model in rows)
    assert "Expected runs: 3 per cell: fold 1 x seeds 1-3" in text
    assert "- Cross T+A: 2 of 3 runs; missing fold 1 seed 3" in (out / "table1.md").read_text()


def test_tables_take_their_default_folds_from_the_data_roots_manifest(tmp_path, capsys):
    """Without --folds: the folds of the runs' data root (its dataset.json says one), 10 seeds."""
    from selfcross.manifest import FoldsManifest, write_manifest
    from tests.helpers.reportkit import run_main

    dims = {m: {"seq_len": s["seq_len"], "feat_dim": s["feat_dim"]} for m, s in SHAPES.items()}
    write_manifest(tmp_path / "meld", FoldsManifest("meld", 1, CLASSES, dims, "official"))
    meld_grid(tmp_path / "runs", tmp_path / "meld")
    run_main("table2", "--results", str(tmp_path / "runs"), "--out", str(tmp_path / "t"))
    assert "Expected runs: 10 per cell: fold 1 x seeds 1-10" in capsys.readouterr().out


def test_figure3_on_meld_uses_its_class_names(tmp_path, capsys):
    from tests.helpers.reportkit import run_main

    meld_grid(tmp_path / "runs")
    run_main("figure3", "--results", str(tmp_path / "runs"), "--out", str(tmp_path / "fig"),
             "--folds", "1", "--seeds", "1-3")  # fmt: skip
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.strip().startswith("┃ true"))
    columns = [c.strip() for c in header.split("┃")[1:-1]]
    assert columns == ["true", "ang", "dis", "fea", "joy", "neu", "sad", "sur"]
    assert (tmp_path / "fig" / "figure3.png").is_file()
