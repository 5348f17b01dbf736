"""What a table shows and how it is written: values with their marks, rendered as plain text,
Markdown, LaTeX, CSV rows and on the console (rich), and the files ``<out>/<name>.md/.tex/.csv``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from selfcross.errors import DataError
from selfcross.report import paper
from selfcross.report.select import (
    Cell,
    Protocol,
    Selection,
    gather_groups,
    label_folder,
    modality_label,
)
from selfcross.report.stats import Comparison
from selfcross.utils import atomic

DAGGER = "†"
"""Marks a cell with fewer runs than the protocol expects."""

CSV_FIELDS = (
    "table", "modality", "metric", "model", "mean", "std", "n", "expected_runs", "complete",
    "missing_runs", "paper_mean", "paper_std", "bold", "compared_with", "p_ttest_ind",
    "p_ttest_rel", "n_pairs", "significant",
)  # fmt: skip
"""Columns of table1.csv and table2.csv (one row per modality x metric x model)."""


@dataclass(frozen=True)
class Value:
    """A mean ± std in a table. ``n`` is shown for our runs (None for the paper's values)."""

    mean: float | None
    std: float | None = None
    n: int | None = None
    bold: bool = False
    star: bool = False
    dagger: bool = False


def paper_value(stat: paper.Stat | None, star: bool = False) -> Value:
    return Value(None) if stat is None else Value(stat[0], stat[1], star=star)


def our_value(cell: Cell, metric: str) -> Value:
    s = cell.summary(metric)
    return Value(s.mean, s.std, s.n, dagger=cell.applicable and not cell.complete)


def format_rate(x: float) -> str:
    """0.5871 -> ``.587`` (the paper's style); -0.0104 -> ``-.010``."""
    if x < 0:
        return "-" + format_rate(-x)
    text = f"{x:.3f}"
    return text[1:] if text.startswith("0.") else text


def format_p(p: float | None) -> str:
    if p is None:
        return "-"
    if p < 1e-4:
        return "<.0001"
    text = f"{p:.4f}"
    return text[1:] if text.startswith("0.") else text


def render(item: Value | str, style: str) -> str:
    """One table entry in ``style`` (plain text, Markdown, LaTeX or rich markup)."""
    if isinstance(item, str):
        if style == "tex":
            return tex_escape(item)
        if style == "rich":
            return item.replace("[", r"\[")
        return item
    if item.mean is None:
        return "-"
    pm = {"tex": " $\\pm$ "}.get(style, " ± ")
    core = format_rate(item.mean) + ("" if item.std is None else pm + format_rate(item.std))
    if item.bold:
        core = {
            "md": f"**{core}**",
            "tex": f"\\textbf{{{core}}}",
            "rich": f"[bold]{core}[/bold]",
        }.get(style, core)
    if item.star:
        core += {"md": "\\*", "tex": "$^{*}$"}.get(style, "*")
    if item.n is not None:
        core += f" ({item.n})"
    if item.dagger:
        core += "$^{\\dagger}$" if style == "tex" else DAGGER
    return core


TEX_SPECIAL = {
    "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
    "<": r"$<$", ">": r"$>$", "±": r"$\pm$", DAGGER: r"$^{\dagger}$", "×": r"$\times$",
}  # fmt: skip


def tex_escape(text: str) -> str:
    return "".join(TEX_SPECIAL.get(ch, ch) for ch in text)


@dataclass
class Section:
    """One block of a table: a header and rows (e.g. Table 1's WA block)."""

    title: str
    header: list[str]
    rows: list[list[Value | str]]


@dataclass
class Report:
    """A built table: its blocks, legend, provenance, missing runs and CSV rows."""

    name: str
    title: str
    sections: list[Section]
    legend: list[str]
    notes: list[str]
    missing: list[str]
    csv_rows: list[dict]
    csv_fields: tuple[str, ...] = CSV_FIELDS
    """The columns of ``<name>.csv``."""


# -- pieces both tables share ----------------------------------------------------------------


def legend_marks(protocol: Protocol, star_where: str, pair: str = "Self and Cross") -> list[str]:
    """The legend lines for our values and their marks (``*``, dagger, ``-``); ``pair`` names
    the two models a star's test compares."""
    return [
        "Ours: mean ± sample standard deviation (ddof=1) over n runs, n in parentheses.",
        f"* {star_where}: {pair} differ with p < .05 by Student's two-sample t-test "
        "(scipy.stats.ttest_ind, equal variances, two-tailed, over all runs of both cells): "
        "the paper's test. The paired t-test (scipy.stats.ttest_rel over the runs matched by "
        "fold and seed; pairs = their number) is shown beside it and sets no mark.",
        f"{DAGGER} fewer runs than expected ({protocol.describe()}): see Missing runs.",
        "-: no value (no runs, a Cross model on a single modality, a test with fewer than 2 runs "
        "per side, or none in the paper).",
    ]


def csv_row(table: str, modality: str, metric: str, model: str, **values) -> dict:
    """One CSV row: every column of CSV_FIELDS, empty where not given or None."""
    row = dict.fromkeys(CSV_FIELDS, "")
    row.update(table=table, modality=modality, metric=metric, model=model)
    row.update({k: ("" if v is None else v) for k, v in values.items()})
    return row


def cell_csv(cell: Cell, metric: str, protocol: Protocol) -> dict:
    """The CSV columns of one of our cells."""
    s = cell.summary(metric)
    return {
        "mean": s.mean,
        "std": s.std,
        "n": s.n,
        "expected_runs": protocol.expected if cell.applicable else 0,
        "complete": cell.complete if cell.applicable else "",
        "missing_runs": " ".join(f"f{f}s{s}" for f, s in cell.missing),
    }


def p_cells(c: Comparison) -> list[str]:
    """A test's three table cells: ``p t-test`` (``*`` where significant), ``p paired``,
    ``pairs``."""
    return [format_p(c.p_ind) + ("*" if c.significant else ""), format_p(c.p_rel), str(c.n_pairs)]


def comparison_section(table: str, title: str, tests: dict, label) -> tuple[Section, list[dict]]:
    """The t-test section of a table and its CSV rows, from ``{(a, b, modality, metric):
    Comparison}``; ``label(a, b)`` names a comparison."""
    rows, csv_rows = [], []
    for (a, b, modality, metric), test in tests.items():
        rows.append([label(a, b), modality_label(modality), metric.upper(), *p_cells(test)])
        csv_rows.append(csv_row(f"{table}-test", modality, metric, a, **comparison_csv(b, test)))
    header = ["Comparison", "Modality", "Metric", "p t-test", "p paired", "pairs"]
    return Section(title, header, rows), csv_rows


def comparison_csv(other: str, c: Comparison) -> dict:
    """The CSV columns of a cell's test against ``other``."""
    return {
        "compared_with": other,
        "p_ttest_ind": c.p_ind,
        "p_ttest_rel": c.p_rel,
        "n_pairs": c.n_pairs,
        "significant": c.significant,
    }


# -- writing tables --------------------------------------------------------------------------


def to_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    for section in report.sections:
        lines += [f"## {section.title}", ""]
        lines.append("| " + " | ".join(section.header) + " |")
        lines.append("|" + "|".join(" --- " for _ in section.header) + "|")
        for row in section.rows:
            lines.append("| " + " | ".join(render(x, "md") for x in row) + " |")
        lines.append("")
    lines += [f"- {line}" for line in (s.replace("*", "\\*", 1) for s in report.legend)]
    lines += ["", "## Missing runs", ""]
    lines += [f"- {line}" for line in report.missing] or ["None: every cell is complete."]
    lines += ["", "## Provenance", ""]
    lines += [f"- {line}" for line in report.notes]
    return "\n".join(lines) + "\n"


def to_latex(report: Report) -> str:
    """LaTeX tabulars (base LaTeX only: \\hline, \\textbf, \\multicolumn), then the legend."""
    out = [f"% {tex_escape(report.title)}. Written by python -m selfcross.tables {report.name}."]
    groups: list[list[Section]] = []
    for section in report.sections:
        if groups and groups[-1][0].header == section.header:
            groups[-1].append(section)
        else:
            groups.append([section])
    for group in groups:
        k = len(group[0].header)
        out += [f"\\begin{{tabular}}{{l{'c' * (k - 1)}}}", "\\hline"]
        out.append(" & ".join(tex_escape(h) for h in group[0].header) + " \\\\")
        for section in group:
            title = f"\\textit{{{tex_escape(section.title)}}}"
            out += ["\\hline", f"\\multicolumn{{{k}}}{{l}}{{{title}}} \\\\"]
            out += [" & ".join(render(x, "tex") for x in row) + " \\\\" for row in section.rows]
        out += ["\\hline", "\\end{tabular}", "\\par\\smallskip"]
    notes = [*report.legend]
    if report.missing:
        notes.append("Missing runs: " + "; ".join(report.missing) + ".")
    out.append("{\\footnotesize")
    out += [tex_escape(line) + "\\par" for line in notes]
    out.append("}")
    return "\n".join(out) + "\n"


def csv_text(fields: list[str], rows: Iterable[dict], restval: str = "") -> str:
    """Rows as CSV text (the ``.csv`` of a table)."""
    handle = io.StringIO(newline="")
    writer = csv.DictWriter(handle, fieldnames=fields, restval=restval)
    writer.writeheader()
    writer.writerows(rows)
    return handle.getvalue()


def console():
    """A rich console; wide when the output is not a terminal (files, pipes, tests)."""
    from rich.console import Console

    c = Console(highlight=False, soft_wrap=True)  # long lines (paths) are never cut
    return c if c.is_terminal else Console(highlight=False, soft_wrap=True, width=160)


def print_wide(out, table) -> None:
    """Print a rich table at its natural width: cells are never squeezed into several lines."""
    from rich.measure import Measurement

    width = out.width
    out.width = max(width, Measurement.get(out, out.options.update_width(1000), table).maximum)
    out.print(table)
    out.width = width


def print_missing_and_notes(out, missing: list[str], notes: list[str]) -> None:
    """The missing-runs report and the provenance lines, on the console."""
    out.print("[bold]Missing runs[/bold]" + (":" if missing else ": none"))
    for line in missing:
        out.print(f"  {render(line, 'rich')}")
    for line in notes:
        out.print(render(line, "rich"))


def print_report(report: Report) -> None:
    from rich import box
    from rich.table import Table

    out = console()
    for section in report.sections:
        table = Table(
            title=f"{report.title}\n{section.title}",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,
        )
        for i, h in enumerate(section.header):  # "Cross (paper)" on two lines: narrower
            table.add_column(h.replace(" (", "\n("), justify="left" if i == 0 else "right")
        for row in section.rows:
            table.add_row(*(render(x, "rich") for x in row))
        print_wide(out, table)
    for line in report.legend:
        out.print(render(line, "rich"))
    print_missing_and_notes(out, report.missing, report.notes)


def make_out_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(path, f"cannot create the output directory ({err.strerror})") from None


def save_report(report: Report, out_dir: Path) -> list[Path]:
    make_out_dir(out_dir)
    md, tex, table = (out_dir / f"{report.name}.{ext}" for ext in ("md", "tex", "csv"))
    csv_file = csv_text(report.csv_fields, report.csv_rows)
    # all three or none: a full disk leaves the previous tables as they were
    return atomic.write_texts(
        {md: to_markdown(report), tex: to_latex(report), table: csv_file}, newline=""
    )


def say_written(paths: Iterable[Path]) -> None:
    console().print("Wrote " + ", ".join(str(p) for p in paths))


def publish(report: Report, out_dir: Path) -> None:
    """Print ``report`` and write its .md, .tex and .csv into ``out_dir``."""
    print_report(report)
    say_written(save_report(report, out_dir))


def make_tables(
    build: Callable[[Selection, bool], Report],
    cells: Iterable[tuple[str, str]],
    directory: Path,
    out_dir: Path,
    protocol: Protocol,
    allow_mixed_data: bool = False,
    split_configs: bool = False,
    **options,
) -> list[Report]:
    """Build a table from the ``result.json`` files under ``directory``, print it and write it
    into ``out_dir``; with ``split_configs``, one table per configuration, each titled with its
    label and written into its own folder ``out_dir/<label>/``. ``options`` (the table's own,
    e.g. ``metrics``) go to ``build``."""
    reports = []
    for label, selection in gather_groups(
        directory, protocol, cells, allow_mixed_data, split_configs
    ):
        report = build(selection, allow_mixed_data, **options)
        if label:
            report = replace(report, title=f"{report.title} [{label}]")
        publish(report, out_dir / label_folder(label) if label else out_dir)
        reports.append(report)
    return reports


METRIC_NAMES = {"wa": "WA", "uwa": "UWA", "wf1": "WF1", "mf1": "MF1"}
"""The tables' short names of the metrics (``--metrics``)."""
METRIC_MEANINGS = {
    "wa": "WA: weighted accuracy (mean per-class recall)",
    "uwa": "UWA: unweighted accuracy (share classified correctly)",
    "wf1": "WF1: weighted F1 (per-class F1 weighted by class support)",
    "mf1": "MF1: macro-F1 (mean per-class F1)",
}
"""What each short name means, as the tables' legends say it."""
