"""Tables 1 and 2 from hand-written result.json files (python -m selfcross.tables)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from selfcross.report import paper
from selfcross.report.table1 import METRIC_TITLES
from tests.conftest import run_cli
from tests.helpers.reportkit import (
    GRID,
    KEYS,
    T_SELF,
    TA_CROSS,
    TA_SELF,
    TV_CROSS,
    TV_SELF,
    TVA_SELF,
    expect_error,
    md_tables,
    mean_std,
    read_csv,
    run_main,
    uwa_of,
    write_cell,
    write_result,
)


@pytest.fixture
def table1_results(tmp_path) -> Path:
    root = tmp_path / "multirun"
    write_cell(root, "self", "TV", TV_SELF)
    write_cell(root, "cross", "TV", TV_CROSS)
    write_cell(root, "self", "TA", TA_SELF)
    write_cell(root, "cross", "TA", TA_CROSS, keys=KEYS[:5])
    write_cell(root, "self", "TVA", TVA_SELF)
    write_result(root, "cross", "TVA", 1, 1, 0.40)
    write_cell(root, "self", "T", T_SELF)
    write_result(root, "self_nosp", "TVA", 1, 1, 0.1)  # a Table 2 model: not in Table 1
    return root


# -- the paper's numbers ----------------------------------------------------------------------


def test_paper_numbers_give_the_papers_p_values():
    """From the rounded means and stds with n = 50: p = .0037, .0009 and .054, the paper's
    three * cells (scipy's ttest_ind_from_stats, Student's test as the paper describes it).

    The last is .0535 (.054 rounds it twice); with Table 2's Self std (.021 instead of Table
    1's .022) it falls to .049, which may be where the paper's third * comes from.
    """

    def p(modality, metric):
        (ms, ss), (mc, sc) = (paper.TABLE1[modality][metric][m] for m in ("self", "cross"))
        return stats.ttest_ind_from_stats(ms, ss, 50, mc, sc, 50).pvalue

    assert round(p("TA", "wa"), 4) == 0.0037
    assert round(p("TA", "uwa"), 4) == 0.0009
    assert round(p("TVA", "wa"), 4) == 0.0535
    assert p("TV", "wa") > 0.05 and p("VA", "uwa") > 0.05 and p("TVA", "uwa") > 0.05


# -- Table 1 ---------------------------------------------------------------------------------


def test_table1_cells_hold_mean_std_n_and_both_tests(table1_results, tmp_path, capsys):
    out = tmp_path / "tables"
    run_main("table1", "--results", str(table1_results), "--out", str(out), *GRID)
    rows = read_csv(out / "table1.csv")
    for metric in ("wa", "uwa"):
        for modality, model, wa, keys in (
            ("TV", "self", TV_SELF, KEYS), ("TV", "cross", TV_CROSS, KEYS),
            ("TA", "self", TA_SELF, KEYS), ("TA", "cross", TA_CROSS, KEYS[:5]),
        ):  # fmt: skip
            values = wa if metric == "wa" else uwa_of(wa, keys)
            row = rows[(modality, metric, model)]
            assert float(row["mean"]) == pytest.approx(np.mean(values), abs=1e-12)
            assert float(row["std"]) == pytest.approx(np.std(values, ddof=1), abs=1e-12)
            assert int(row["n"]) == len(values) and int(row["expected_runs"]) == 6
    # the paper's test over all runs; the paired test over the 5 (fold, seed) both TA cells have
    for metric in ("wa", "uwa"):
        pick = (lambda v, k=KEYS: v) if metric == "wa" else uwa_of
        tv = stats.ttest_ind(pick(TV_SELF), pick(TV_CROSS)).pvalue
        ta = stats.ttest_ind(pick(TA_SELF), pick(TA_CROSS, KEYS[:5])).pvalue
        ta_paired = stats.ttest_rel(pick(TA_SELF)[:5], pick(TA_CROSS, KEYS[:5])).pvalue
        tv_paired = stats.ttest_rel(pick(TV_SELF), pick(TV_CROSS)).pvalue
        for model in ("self", "cross"):
            assert float(rows[("TV", metric, model)]["p_ttest_ind"]) == pytest.approx(tv)
            assert float(rows[("TV", metric, model)]["p_ttest_rel"]) == pytest.approx(tv_paired)
            assert float(rows[("TA", metric, model)]["p_ttest_ind"]) == pytest.approx(ta)
            assert float(rows[("TA", metric, model)]["p_ttest_rel"]) == pytest.approx(ta_paired)
            assert rows[("TA", metric, model)]["n_pairs"] == "5"
            assert rows[("TV", metric, model)]["n_pairs"] == "6"
        assert tv < 0.05 < ta  # the data are built so; the marks are checked below
    assert rows[("TV", "wa", "self")]["compared_with"] == "cross"
    assert rows[("TV", "wa", "self")]["paper_mean"] == "0.563"
    assert rows[("TV", "wa", "self")]["paper_std"] == "0.022"
    assert rows[("TV", "uwa", "mdre")]["paper_mean"] == "0.579"
    assert rows[("T", "wa", "cross")]["n"] == "0"  # cross needs two modalities: n/a
    assert rows[("T", "wa", "cross")]["expected_runs"] == "0"
    assert len(rows) == 7 * 2 * 4  # modality x metric x (MDRE, AMH, Cross, Self)

    md = (out / "table1.md").read_text()
    wa = {r["Modality"]: r for r in md_tables(md)[METRIC_TITLES["wa"]]}
    assert wa["T+V"]["Self (ours)"] == "**.650 ± .037**\\* (6)"
    assert wa["T+V"]["Cross (ours)"] == f"{mean_std(TV_CROSS)} (6)"
    assert (
        wa["T+V"]["Self (paper)"] == ".563 ± .022" and wa["T+V"]["Cross (paper)"] == ".567 ± .022"
    )
    assert wa["T+V"]["p t-test"] == f"{stats.ttest_ind(TV_SELF, TV_CROSS).pvalue:.4f}"[1:]
    assert wa["T+A"]["pairs"] == "5"
    printed = capsys.readouterr().out
    assert "Table 1" in printed and ".650 ± .037* (6)" in printed
    assert "Student's two-sample t-test" in printed and "ttest_rel" in printed


def test_table1_marks_bold_star_dagger_and_dashes(table1_results, tmp_path):
    out = tmp_path / "tables"
    run_main("table1", "--results", str(table1_results), "--out", str(out), *GRID)
    rows = read_csv(out / "table1.csv")
    sections = md_tables((out / "table1.md").read_text())
    for metric in ("wa", "uwa"):
        table = {r["Modality"]: r for r in sections[METRIC_TITLES[metric]]}
        # `*` exactly where the paper's test gives p < .05, on the higher of our two cells
        for modality, row in table.items():
            p = rows[(modality.replace("+", ""), metric, "self")]["p_ttest_ind"]
            starred = [c for c in ("Cross (ours)", "Self (ours)") if "\\*" in row[c]]
            assert starred == (["Self (ours)"] if p and float(p) < 0.05 else []), modality
        # bold: the best mean among MDRE, AMH, Cross (ours), Self (ours)
        bold = {m: [c for c, v in r.items() if v.startswith("**")] for m, r in table.items()}
        assert bold["T+V"] == ["Self (ours)"] and bold["T+A"] == ["Self (ours)"]
        assert bold["T"] == ["Self (ours)"]
        assert bold["T+V+A"] == ["AMH"] and bold["V+A"] == ["MDRE"]  # no runs: the paper's
        assert bold["V"] == bold["A"] == []
        assert table["T+V+A"]["AMH"] == (
            "**.547 ± .025**" if metric == "wa" else "**.617 ± .016**"
        )
        assert rows[("TVA", metric, "amh")]["bold"] == "True"
        assert rows[("TVA", metric, "self")]["bold"] == "False"
        # no runs: "-" for the value and the tests
        for column in ("Cross (ours)", "Self (ours)", "p t-test", "p paired"):
            assert table["V+A"][column] == "-"
        assert table["V"]["Self (ours)"] == "-" and table["T"]["Cross (ours)"] == "-"
        # one cross run: no std, no t-test (fewer than 2 runs on a side), marked incomplete
        assert table["T+V+A"]["Cross (ours)"] == (".400 (1)†" if metric == "wa" else ".450 (1)†")
        assert table["T+V+A"]["p t-test"] == "-" and table["T+V+A"]["p paired"] == "-"
        assert table["T+A"]["Cross (ours)"].endswith("(5)†")
        assert not table["T+V"]["Cross (ours)"].endswith("†")
        # the paper's own marks stay on its Self column
        assert table["T+A"]["Self (paper)"].endswith("\\*")
    assert rows[("TA", "wa", "cross")]["complete"] == "False"
    assert rows[("TA", "wa", "cross")]["missing_runs"] == "f2s3"
    assert rows[("TV", "wa", "cross")]["complete"] == "True"


def test_table1_missing_runs_report(table1_results, tmp_path, capsys):
    out = tmp_path / "tables"
    run_main("table1", "--results", str(table1_results), "--out", str(out), *GRID)
    expected = [
        "Self V: 0 of 6 runs; missing all runs",
        "Self A: 0 of 6 runs; missing all runs",
        "Cross V+A: 0 of 6 runs; missing all runs",
        "Self V+A: 0 of 6 runs; missing all runs",
        "Cross T+A: 5 of 6 runs; missing fold 2 seed 3",
        "Cross T+V+A: 1 of 6 runs; missing fold 1 seeds 2-3; fold 2 (all seeds)",
    ]
    md = (out / "table1.md").read_text()
    report = md.split("## Missing runs")[1].split("## Provenance")[0]
    printed = capsys.readouterr().out
    for line in expected:
        assert line in report and line in printed
    assert "Cross T:" not in report and "Self T:" not in report  # complete or not applicable
    assert len([x for x in report.splitlines() if x.startswith("- ")]) == len(expected)
    tex = (out / "table1.tex").read_text()
    assert "Cross T+A: 5 of 6 runs; missing fold 2 seed 3" in tex
    assert mean_std(TA_CROSS).replace("±", "$\\pm$") + " (5)$^{\\dagger}$" in tex


def test_table1_tex_is_a_well_formed_tabular(table1_results, tmp_path):
    out = tmp_path / "tables"
    run_main("table1", "--results", str(table1_results), "--out", str(out), *GRID)
    tex = (out / "table1.tex").read_text()
    assert "\\textbf{.650 $\\pm$ .037}$^{*}$ (6)" in tex
    assert "\\textbf{.547 $\\pm$ .025}" in tex  # AMH best on T+V+A WA
    assert tex.count("\\textbf{") == 2 * 5  # one per row with a value (V and A have none)
    assert tex.count("\\begin{tabular}{lccccccccc}") == 1 and tex.count("\\end{tabular}") == 1
    body = tex.split("\\begin{tabular}")[1].split("\\end{tabular}")[0]
    rows = [line for line in body.splitlines() if line.endswith("\\\\")]
    assert len(rows) == 1 + 2 * (1 + 7)  # header, then per metric a title row and 7 modalities
    for line in rows:
        assert line.count(" & ") == 9 or line.startswith("\\multicolumn{10}")
    assert tex.count("{") == tex.count("}")
    assert "±" not in tex and "†" not in tex and "_" not in tex.replace("\\_", "")


def test_table1_from_a_subprocess_as_a_user_runs_it(table1_results, tmp_path):
    out = tmp_path / "tables"
    proc = run_cli(
        "selfcross.tables", "table1", "--results", str(table1_results), "--out", str(out), *GRID
    )
    assert proc.returncode == 0, proc.stderr
    assert "T+V+A" in proc.stdout and "Missing runs" in proc.stdout
    assert {p.name for p in out.iterdir()} == {"table1.md", "table1.tex", "table1.csv"}


# -- Table 2 ---------------------------------------------------------------------------------


def test_table2_models_and_both_comparisons(tmp_path, capsys):
    root, out = tmp_path / "multirun", tmp_path / "tables"
    values = {
        "cross_nosp": [0.60, 0.59, 0.58, 0.61, 0.59, 0.60],  # above Self-noSP: its star
        "cross": [0.57, 0.56, 0.58, 0.57, 0.59, 0.58],
        "self_nosp": [0.58, 0.57, 0.56, 0.58, 0.57, 0.59],
        "self": [0.60, 0.61, 0.62, 0.60, 0.63, 0.61],
        "cross_self": [0.59, 0.60, 0.58, 0.61, 0.60, 0.59],
    }
    for model, wa in values.items():
        write_cell(root, model, "TVA", wa)
    write_cell(root, "self", "TV", TV_SELF)  # a Table 1 cell: not in Table 2
    run_main("table2", "--results", str(root), "--out", str(out), *GRID)
    rows = read_csv(out / "table2.csv")
    assert {k[2] for k in rows} == set(values) and len(rows) == 10
    for model, wa in values.items():
        row = rows[("TVA", "wa", model)]
        assert float(row["mean"]) == pytest.approx(np.mean(wa), abs=1e-12)
        assert float(row["std"]) == pytest.approx(np.std(wa, ddof=1), abs=1e-12)
        assert row["n"] == "6"
        assert float(row["paper_mean"]) == paper.TABLE2[model]["wa"][0]
        assert float(row["paper_std"]) == paper.TABLE2[model]["wa"][1]
        assert row["table"] == "table2" and row["bold"] == "False"
    for a, b in (("self", "cross"), ("self_nosp", "cross_nosp")):
        for metric in ("wa", "uwa"):
            x, y = (
                (values[a], values[b])
                if metric == "wa"
                else (uwa_of(values[a]), uwa_of(values[b]))
            )
            for model, other in ((a, b), (b, a)):
                row = rows[("TVA", metric, model)]
                assert row["compared_with"] == other
                assert float(row["p_ttest_ind"]) == pytest.approx(stats.ttest_ind(x, y).pvalue)
                assert float(row["p_ttest_rel"]) == pytest.approx(stats.ttest_rel(x, y).pvalue)
    assert rows[("TVA", "wa", "cross_self")]["p_ttest_ind"] == ""
    sections = list(md_tables((out / "table2.md").read_text()).values())
    table = {r["Model"]: r for r in sections[0]}
    assert list(table) == ["Cross-noSP", "Cross", "Self-noSP", "Self", "Cross+Self"]
    assert table["Self"]["WA (paper)"] == ".587 ± .021"
    assert table["Self"]["WA (ours)"] == f"{mean_std(values['self'])}\\* (6)"  # p < .05 vs Cross
    assert table["Cross"]["WA (ours)"] == f"{mean_std(values['cross'])} (6)"
    assert table["Cross-noSP"]["WA (ours)"] == f"{mean_std(values['cross_nosp'])}\\* (6)"
    assert table["Self-noSP"]["WA (ours)"] == f"{mean_std(values['self_nosp'])} (6)"
    assert table["Cross+Self"]["UWA (paper)"] == ".642 ± .020"
    tests = {(r["Comparison"], r["Metric"]): r for r in sections[1]}
    p = stats.ttest_ind(values["self_nosp"], values["cross_nosp"]).pvalue
    assert tests[("Self-noSP vs Cross-noSP", "WA")]["p t-test"].startswith(f"{p:.4f}"[1:])
    assert "Table 2" in capsys.readouterr().out


def test_an_output_path_that_is_a_file_is_a_one_line_error(table1_results, tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    line = expect_error(capsys, "table1", "--results", str(table1_results),
                        "--out", str(tmp_path / "taken"))  # fmt: skip
    assert line.startswith(f"error: {tmp_path / 'taken'}: cannot create the output directory")


# -- the registry of tables behind the command --------------------------------------------------
def test_the_registry_lists_every_table_in_the_commands_order():
    from selfcross.report.registry import TABLES

    assert list(TABLES) == ["table1", "table2", "table3", "table4", "table5", "tuning",
                            "masking", "crosscorpus", "figure3"]  # fmt: skip
    assert all(table.help and callable(table.make) for table in TABLES.values())


@pytest.mark.parametrize(
    "name",
    ["table1", "table2", "table3", "table4", "table5", "tuning", "masking", "crosscorpus",
     "figure3"],
)  # fmt: skip
def test_every_registered_table_is_accepted_and_made_by_the_command(name, tmp_path, monkeypatch):
    """The command parses each name with its own options and hands them to that entry's make,
    the protocol grid first for the tables read over it."""
    from dataclasses import replace

    from selfcross.report import registry
    from selfcross.report.select import Protocol

    calls = []
    table = registry.TABLES[name]
    monkeypatch.setitem(registry.TABLES, name,
                        replace(table, make=lambda *a, **kw: calls.append((a, kw))))  # fmt: skip
    own = [o for o in table.options if o.settings.get("required")]
    given = [arg for o in own for arg in (o.flags[0], str(tmp_path / o.dest))]
    run_main(name, "--results", str(tmp_path / "in"), "--out", str(tmp_path / "out"), *given)
    (args, options), = calls  # fmt: skip
    assert args[:2] == (tmp_path / "in", tmp_path / "out")
    assert set(options) == {o.dest for o in table.options}
    assert all(options[o.dest] == tmp_path / o.dest for o in own)
    if table.grid:
        assert args[2:] == (Protocol((1, 2, 3, 4, 5), tuple(range(1, 11))), False)
    else:
        assert len(args) == 2


def test_an_unknown_table_is_refused_in_one_line(capsys):
    line = expect_error(capsys, "table9", "--results", "x")
    assert line == ("error: table9: no such table; choose one of table1, table2, table3, table4, "
                    "table5, tuning, masking, crosscorpus, figure3")  # fmt: skip
