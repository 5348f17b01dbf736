"""The paper's Table 1, Table 2 and Figure 3, built from the runs' ``result.json`` files.

    python -m selfcross.tables table1 --results multirun/table1 [--out tables]
    python -m selfcross.tables table2 --results multirun/table2
    python -m selfcross.tables figure3 --results multirun/table1 [--fold 1] [--seed 3]

Every file named ``result.json`` under ``--results`` is read. Each table cell is the mean ± sample
std (ddof=1) of the runs of one model on one modality subset, with their number n; a cell with
fewer runs than the protocol's grid (``--folds`` x ``--seeds``, by default 5 folds x 10 seeds) is
marked with a dagger and listed, with the missing (fold, seed), in a "missing runs" report.
Self vs Cross is tested with the paper's test (Student's two-sample t-test, ``*`` where p < .05)
and, beside it, the paired t-test over runs matched by (fold, seed). Tables are printed and
written as ``<out>/<name>.md``, ``.tex`` and ``.csv``; Figure 3 (``selfcross.figure3``) as
``<out>/figure3.png``/``.pdf``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from selfcross import paper
from selfcross.errors import ConfigError, DataError
from selfcross.results import (
    METRICS,
    RunResult,
    Skipped,
    check_runs,
    describe_source,
    load_results,
)

ALPHA = 0.05
"""Significance level of the ``*`` marks (the paper's)."""

MODEL_LABELS = {
    "self": "Self",
    "cross": "Cross",
    "self_nosp": "Self-noSP",
    "cross_nosp": "Cross-noSP",
    "cross_self": "Cross+Self",
}
METRIC_TITLES = {
    "wa": "WA (weighted accuracy: mean per-class recall)",
    "uwa": "UWA (unweighted accuracy: share classified correctly)",
}
TRIMODAL = "TVA"
DAGGER = "†"

CSV_FIELDS = (
    "table", "modality", "metric", "model", "mean", "std", "n", "expected_runs", "complete",
    "missing_runs", "paper_mean", "paper_std", "bold", "compared_with", "p_ttest_ind",
    "p_ttest_rel", "n_pairs", "significant",
)  # fmt: skip
"""Columns of table1.csv and table2.csv (one row per modality x metric x model)."""


def modality_label(modality: str) -> str:
    """``TVA`` -> ``T+V+A`` (the paper's row names)."""
    return "+".join(modality)


# -- the protocol grid and the runs of each cell ----------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """The (fold, seed) grid every cell should cover."""

    folds: tuple[int, ...]
    seeds: tuple[int, ...]

    @property
    def expected(self) -> int:
        return len(self.folds) * len(self.seeds)

    @property
    def grid(self) -> list[tuple[int, int]]:
        return list(itertools.product(self.folds, self.seeds))

    def contains(self, run: RunResult) -> bool:
        return run.fold in self.folds and run.seed in self.seeds

    def describe(self) -> str:
        folds = f"fold{'s' if len(self.folds) > 1 else ''} {format_ints(self.folds)}"
        seeds = f"seed{'s' if len(self.seeds) > 1 else ''} {format_ints(self.seeds)}"
        return f"{self.expected} per cell: {folds} x {seeds}"


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (ddof=1) and count of one cell's values; None where undefined."""

    mean: float | None
    std: float | None
    n: int


def summarize(values: Sequence[float]) -> Summary:
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    mean = float(values.mean()) if n else None
    std = float(values.std(ddof=1)) if n >= 2 else None
    return Summary(mean, std, n)


@dataclass
class Cell:
    """The runs of one model on one modality subset, by (fold, seed).

    ``expected`` is the protocol grid, empty where the model cannot run (Cross on one modality).
    """

    model: str
    modality: str
    runs: dict[tuple[int, int], RunResult] = field(default_factory=dict)
    expected: tuple[tuple[int, int], ...] = ()

    @property
    def applicable(self) -> bool:
        return bool(self.expected)

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def missing(self) -> list[tuple[int, int]]:
        return [key for key in self.expected if key not in self.runs]

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def label(self) -> str:
        return f"{MODEL_LABELS.get(self.model, self.model)} {modality_label(self.modality)}"

    def values(self, metric: str) -> np.ndarray:
        return np.array([self.runs[k].metric(metric) for k in sorted(self.runs)])

    def summary(self, metric: str) -> Summary:
        return summarize(self.values(metric))


@dataclass(frozen=True)
class Comparison:
    """Two cells compared on one metric: the paper's test and the paired one."""

    p_ind: float | None
    """Student's two-sample t-test (equal variances, two-tailed) over all runs: the paper's."""
    p_rel: float | None
    """Paired t-test over the runs matched by (fold, seed)."""
    n_pairs: int

    @property
    def significant(self) -> bool:
        return self.p_ind is not None and self.p_ind < ALPHA


def _finite(p: float) -> float | None:
    return float(p) if math.isfinite(p) else None


def compare(a: Cell, b: Cell, metric: str) -> Comparison:
    """t-tests of ``a`` vs ``b``; p is None where a side has fewer than 2 runs (or pairs)."""
    from scipy import stats

    pairs = sorted(set(a.runs) & set(b.runs))
    with warnings.catch_warnings():  # constant samples give NaN with a warning: shown as "-"
        warnings.simplefilter("ignore", RuntimeWarning)
        p_ind = None
        if a.n >= 2 and b.n >= 2:
            p_ind = _finite(stats.ttest_ind(a.values(metric), b.values(metric)).pvalue)
        p_rel = None
        if len(pairs) >= 2:
            x = [a.runs[k].metric(metric) for k in pairs]
            y = [b.runs[k].metric(metric) for k in pairs]
            p_rel = _finite(stats.ttest_rel(x, y).pvalue)
    return Comparison(p_ind, p_rel, len(pairs))


@dataclass
class Selection:
    """The runs chosen for one output, grouped into cells, and what was left out."""

    cells: dict[tuple[str, str], Cell]
    protocol: Protocol
    directory: Path
    n_files: int
    skipped: list[Skipped]
    outside: list[RunResult]
    other: int
    """Usable runs of models or modalities this output does not show."""
    sources: list[str]

    def cell(self, model: str, modality: str) -> Cell:
        return self.cells[(model, modality)]

    @property
    def used(self) -> int:
        return sum(c.n for c in self.cells.values())


def select(
    directory: Path,
    runs: list[RunResult],
    skipped: list[Skipped],
    protocol: Protocol,
    wanted: Iterable[tuple[str, str]],
    allow_mixed_data: bool,
    n_files: int | None = None,
) -> Selection:
    """Group the runs of the ``wanted`` (model, modality) cells; check them (results.check_runs).

    Runs outside the protocol grid are set aside (reported, never averaged in).
    """
    wanted = list(wanted)
    relevant = [r for r in runs if (r.model, r.modality) in set(wanted)]
    inside = [r for r in relevant if protocol.contains(r)]
    check_runs(inside, allow_mixed_data)
    cells = {}
    for model, modality in wanted:
        applicable = not (model.startswith("cross") and len(modality) < 2)
        expected = tuple(protocol.grid) if applicable else ()
        cells[(model, modality)] = Cell(model, modality, expected=expected)
    for run in inside:
        cells[(run.model, run.modality)].runs[(run.fold, run.seed)] = run
    sources = sorted({describe_source(r.source) for r in inside})
    return Selection(
        cells=cells,
        protocol=protocol,
        directory=directory,
        n_files=len(runs) + len(skipped) if n_files is None else n_files,
        skipped=skipped,
        outside=[r for r in relevant if not protocol.contains(r)],
        other=len(runs) - len(relevant),
        sources=sources,
    )


# -- what a table shows: values with marks, rendered per output format ------------------------


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
    """0.5871 -> ``.587`` (the paper's style)."""
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


def format_ints(values: Iterable[int]) -> str:
    """(1, 2, 3, 5) -> ``1-3, 5``."""
    values = sorted(set(values))
    parts = []
    for _, group in itertools.groupby(enumerate(values), lambda iv: iv[1] - iv[0]):
        run = [v for _, v in group]
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ", ".join(parts)


def describe_missing(missing: list[tuple[int, int]], protocol: Protocol) -> str:
    """The missing (fold, seed), grouped by fold: ``fold 2 seeds 3, 7; fold 5 (all seeds)``."""
    if len(missing) == protocol.expected:
        return "all runs"
    parts = []
    for fold, group in itertools.groupby(sorted(missing), lambda k: k[0]):
        seeds = [s for _, s in group]
        if len(seeds) == len(protocol.seeds) and len(seeds) > 1:
            parts.append(f"fold {fold} (all seeds)")
        else:
            parts.append(f"fold {fold} seed{'s' if len(seeds) > 1 else ''} {format_ints(seeds)}")
    return "; ".join(parts)


def missing_report(selection: Selection) -> list[str]:
    """One line per incomplete cell of the selection: which cell, how many runs, which (fold,
    seed) are missing."""
    protocol = selection.protocol
    return [
        f"{cell.label}: {cell.n} of {protocol.expected} runs; missing "
        f"{describe_missing(cell.missing, protocol)}"
        for cell in selection.cells.values()
        if cell.applicable and not cell.complete
    ]


def provenance(selection: Selection, allow_mixed_data: bool) -> list[str]:
    notes = [
        f"Results: {selection.directory} ({selection.n_files} result.json read, "
        f"{selection.used} runs used, {len(selection.skipped)} skipped as unusable, "
        f"{len(selection.outside)} outside the expected grid ignored, {selection.other} of "
        "other cells not shown here)",
        f"Expected runs: {selection.protocol.describe()}",
    ]
    if len(selection.sources) > 1:
        mixed = "MIXED DATA (--allow-mixed-data): " if allow_mixed_data else ""
        notes.append(f"Data: {mixed}{'; '.join(selection.sources)}")
    elif selection.sources:
        notes.append(f"Data: {selection.sources[0]}")
    for run in selection.outside:
        notes.append(
            f"Ignored (fold {run.fold}, seed {run.seed} is outside the grid; set --folds/--seeds):"
            f" {run.path}"
        )
    for skipped in selection.skipped:
        notes.append(f"Skipped, counted as missing: {skipped}")
    return notes


def _legend_marks(protocol: Protocol, star_where: str) -> list[str]:
    return [
        "Ours: mean ± sample standard deviation (ddof=1) over n runs, n in parentheses.",
        f"* {star_where}: Self and Cross differ with p < .05 by Student's two-sample t-test "
        "(scipy.stats.ttest_ind, equal variances, two-tailed, over all runs of both cells): "
        "the paper's test. The paired t-test (scipy.stats.ttest_rel over the runs matched by "
        "fold and seed; pairs = their number) is shown beside it and sets no mark.",
        f"{DAGGER} fewer runs than expected ({protocol.describe()}): see Missing runs.",
        "-: no value (no runs, a Cross model on a single modality, a test with fewer than 2 runs "
        "per side, or none in the paper).",
    ]


def _csv_row(table: str, modality: str, metric: str, model: str, **values) -> dict:
    row = dict.fromkeys(CSV_FIELDS, "")
    row.update(table=table, modality=modality, metric=metric, model=model)
    row.update({k: ("" if v is None else v) for k, v in values.items()})
    return row


def _cell_csv(cell: Cell, metric: str, protocol: Protocol) -> dict:
    s = cell.summary(metric)
    return {
        "mean": s.mean,
        "std": s.std,
        "n": s.n,
        "expected_runs": protocol.expected if cell.applicable else 0,
        "complete": cell.complete if cell.applicable else "",
        "missing_runs": " ".join(f"f{f}s{s}" for f, s in cell.missing),
    }


def _comparison_csv(other: str, c: Comparison) -> dict:
    return {
        "compared_with": other,
        "p_ttest_ind": c.p_ind,
        "p_ttest_rel": c.p_rel,
        "n_pairs": c.n_pairs,
        "significant": c.significant,
    }


# -- Table 1 ---------------------------------------------------------------------------------

TABLE1_HEADER = [
    "Modality", "MDRE", "AMH", "Cross (paper)", "Cross (ours)", "Self (paper)", "Self (ours)",
    "p t-test", "p paired", "pairs",
]  # fmt: skip


def table1_cells() -> list[tuple[str, str]]:
    return [(m, mod) for mod in paper.TABLE1_MODALITIES for m in ("cross", "self")]


def build_table1(selection: Selection, allow_mixed_data: bool = False) -> Report:
    """Table 1: Self vs Cross on every modality subset, beside the paper's numbers."""
    protocol = selection.protocol
    sections, csv_rows = [], []
    for metric in METRICS:
        rows = []
        for modality in paper.TABLE1_MODALITIES:
            ref = paper.TABLE1[modality][metric]
            cross, self_ = selection.cell("cross", modality), selection.cell("self", modality)
            ours = {"cross": our_value(cross, metric), "self": our_value(self_, metric)}
            test = compare(self_, cross, metric)
            candidates = [ref[r][0] for r in paper.TABLE1_REFERENCES if ref[r] is not None]
            candidates += [v.mean for v in ours.values() if v.mean is not None]
            best = max(candidates, default=None)
            starred = None
            if test.significant:
                starred = "self" if ours["self"].mean >= ours["cross"].mean else "cross"
            ours = {
                name: replace(v, bold=v.mean is not None and v.mean == best, star=name == starred)
                for name, v in ours.items()
            }
            refs = {
                r: Value(ref[r][0], ref[r][1], bold=ref[r][0] == best) if ref[r] else Value(None)
                for r in paper.TABLE1_REFERENCES
            }
            paper_star = (modality, metric) in paper.TABLE1_STARRED
            rows.append(
                [
                    modality_label(modality),
                    refs["mdre"],
                    refs["amh"],
                    paper_value(ref["cross"]),
                    ours["cross"],
                    paper_value(ref["self"], star=paper_star),
                    ours["self"],
                    format_p(test.p_ind),
                    format_p(test.p_rel),
                    str(test.n_pairs) if cross.applicable else "-",
                ]
            )
            for r in paper.TABLE1_REFERENCES:
                csv_rows.append(
                    _csv_row(
                        "table1", modality, metric, r,
                        paper_mean=ref[r][0] if ref[r] else None,
                        paper_std=ref[r][1] if ref[r] else None,
                        bold=refs[r].bold,
                    )
                )  # fmt: skip
            for name, cell, other in (("cross", cross, "self"), ("self", self_, "cross")):
                comparison = _comparison_csv(other, test) if cross.applicable else {}
                csv_rows.append(
                    _csv_row(
                        "table1", modality, metric, name,
                        **_cell_csv(cell, metric, protocol),
                        paper_mean=ref[name][0] if ref[name] else None,
                        paper_std=ref[name][1] if ref[name] else None,
                        bold=ours[name].bold,
                        **comparison,
                    )
                )  # fmt: skip
        sections.append(Section(METRIC_TITLES[metric], TABLE1_HEADER, rows))
    legend = [
        "MDRE [19] and AMH [3, 7] (bi-modal MHA, tri-modal AMH) and the (paper) columns are the "
        "paper's reported values over 50 runs; in them * is the paper's own mark.",
        "Bold: the best mean of the row among MDRE, AMH, Cross (ours) and Self (ours).",
        *_legend_marks(protocol, "on the higher of Cross (ours) and Self (ours)"),
    ]
    return Report(
        name="table1",
        title="Table 1: 7-class emotion recognition, mean ± std over runs",
        sections=sections,
        legend=legend,
        notes=provenance(selection, allow_mixed_data),
        missing=missing_report(selection),
        csv_rows=csv_rows,
    )


# -- Table 2 ---------------------------------------------------------------------------------

TABLE2_PAIRS = (("self", "cross"), ("self_nosp", "cross_nosp"))
"""The comparisons Table 2 tests (the paper reports the first in Table 1, the second in text)."""


def table2_cells() -> list[tuple[str, str]]:
    return [(m, TRIMODAL) for m in paper.TABLE2_MODELS]


def build_table2(selection: Selection, allow_mixed_data: bool = False) -> Report:
    """Table 2: the five tri-modal models, and the t-tests of self vs cross with and w/o SP."""
    protocol = selection.protocol
    tests = {
        (a, b, metric): compare(selection.cell(a, TRIMODAL), selection.cell(b, TRIMODAL), metric)
        for a, b in TABLE2_PAIRS
        for metric in METRICS
    }
    starred = set()
    for (a, b, metric), test in tests.items():
        if test.significant:
            sa = selection.cell(a, TRIMODAL).summary(metric).mean
            sb = selection.cell(b, TRIMODAL).summary(metric).mean
            starred.add((a if sa >= sb else b, metric))
    partner = {a: b for a, b in TABLE2_PAIRS} | {b: a for a, b in TABLE2_PAIRS}
    rows, csv_rows = [], []
    for model in paper.TABLE2_MODELS:
        cell = selection.cell(model, TRIMODAL)
        row: list[Value | str] = [MODEL_LABELS[model]]
        for metric in METRICS:
            ref = paper.TABLE2[model][metric]
            ours = replace(our_value(cell, metric), star=(model, metric) in starred)
            row += [paper_value(ref), ours]
            comparison = {}
            if model in partner:
                other = partner[model]
                pair = (model, other) if (model, other) in TABLE2_PAIRS else (other, model)
                comparison = _comparison_csv(other, tests[(*pair, metric)])
            csv_rows.append(
                _csv_row(
                    "table2", TRIMODAL, metric, model,
                    **_cell_csv(cell, metric, protocol),
                    paper_mean=ref[0], paper_std=ref[1], bold=False, **comparison,
                )
            )  # fmt: skip
        rows.append(row)
    header = ["Model", "WA (paper)", "WA (ours)", "UWA (paper)", "UWA (ours)"]
    test_rows = []
    for (a, b, metric), test in tests.items():
        test_rows.append(
            [
                f"{MODEL_LABELS[a]} vs {MODEL_LABELS[b]}",
                metric.upper(),
                format_p(test.p_ind) + ("*" if test.significant else ""),
                format_p(test.p_rel),
                str(test.n_pairs),
            ]
        )
    sections = [
        Section("Tri-modal (T+V+A) models: WA and UWA", header, rows),
        Section(
            "Self vs Cross, with and without statistical pooling (SP)",
            ["Comparison", "Metric", "p t-test", "p paired", "pairs"],
            test_rows,
        ),
    ]
    legend = [
        "(paper): the paper's reported values over 50 runs. WA: weighted accuracy (mean "
        "per-class recall); UWA: unweighted accuracy (share classified correctly).",
        *_legend_marks(protocol, "on the higher model of a tested pair"),
    ]
    return Report(
        name="table2",
        title="Table 2: tri-modal model variants, mean ± std over runs",
        sections=sections,
        legend=legend,
        notes=provenance(selection, allow_mixed_data),
        missing=missing_report(selection),
        csv_rows=csv_rows,
    )


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


def write_csv(report: Report, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(report.csv_rows)


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
    out.print("[bold]Missing runs[/bold]" + (":" if report.missing else ": none"))
    for line in report.missing:
        out.print(f"  {render(line, 'rich')}")
    for line in report.notes:
        out.print(render(line, "rich"))


def make_out_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(path, f"cannot create the output directory ({err.strerror})") from None


def save_report(report: Report, out_dir: Path) -> list[Path]:
    make_out_dir(out_dir)
    md, tex, table = (out_dir / f"{report.name}.{ext}" for ext in ("md", "tex", "csv"))
    md.write_text(to_markdown(report))
    tex.write_text(to_latex(report))
    write_csv(report, table)
    return [md, tex, table]


# -- command line ----------------------------------------------------------------------------


def int_list(text: str) -> tuple[int, ...]:
    """``1-5`` or ``1,3,5`` or ``1-3,7`` -> sorted unique integers."""
    values: set[int] = set()
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            lo_i = int(lo)
            hi_i = int(hi) if sep else lo_i
            if hi_i < lo_i:
                raise ValueError
            values.update(range(lo_i, hi_i + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected integers such as 1-5 or 1,3,5"
        ) from None
    return tuple(sorted(values))


def protocol_from(args: argparse.Namespace) -> Protocol:
    """The grid from --folds and --seeds, or --folds and --expected-runs (seeds 1..runs/folds)."""
    folds = args.folds
    if args.seeds is not None:
        seeds = args.seeds
        if args.expected_runs is not None and args.expected_runs != len(folds) * len(seeds):
            raise ConfigError(
                f"--expected-runs {args.expected_runs} disagrees with {len(folds)} folds x "
                f"{len(seeds)} seeds"
            )
        return Protocol(folds, seeds)
    expected = paper.N_RUNS if args.expected_runs is None else args.expected_runs
    if expected < 1 or expected % len(folds):
        raise ConfigError(
            f"--expected-runs {expected} is not a positive multiple of the {len(folds)} folds; "
            "give --seeds"
        )
    return Protocol(folds, tuple(range(1, expected // len(folds) + 1)))


def say_written(paths: list[Path]) -> None:
    console().print("Wrote " + ", ".join(str(p) for p in paths))


def warn_skipped(skipped: list[Skipped]) -> None:
    for s in skipped:
        print(f"warning: {s}; not used, counted as missing", file=sys.stderr)


def run_table(args: argparse.Namespace) -> Report:
    protocol = protocol_from(args)
    runs, skipped = load_results(args.results)
    warn_skipped(skipped)
    build, cells = {
        "table1": (build_table1, table1_cells()),
        "table2": (build_table2, table2_cells()),
    }[args.command]
    selection = select(args.results, runs, skipped, protocol, cells, args.allow_mixed_data)
    report = build(selection, args.allow_mixed_data)
    print_report(report)
    say_written(save_report(report, args.out))
    return report


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--results", type=Path, required=True,
        help="directory searched (recursively) for result.json files",
    )  # fmt: skip
    common.add_argument("--out", type=Path, default=Path("tables"), help="output directory")
    common.add_argument("--folds", type=int_list, default=(1, 2, 3, 4, 5), help="default 1-5")
    common.add_argument(
        "--seeds", type=int_list, default=None,
        help="expected seeds (default 1..expected-runs/folds, i.e. 1-10)",
    )  # fmt: skip
    common.add_argument(
        "--expected-runs", type=int, default=None,
        help=f"runs per cell (default {paper.N_RUNS} = 5 folds x 10 seeds)",
    )  # fmt: skip
    common.add_argument(
        "--allow-mixed-data", action="store_true",
        help="aggregate runs of different data sources or fold fingerprints anyway",
    )  # fmt: skip
    parser = argparse.ArgumentParser(
        prog="python -m selfcross.tables",
        description="Build the paper's Table 1, Table 2 or Figure 3 from result.json files.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("table1", parents=[common], help="Self vs Cross on all modality subsets")
    sub.add_parser("table2", parents=[common], help="the five tri-modal models")
    fig = sub.add_parser("figure3", parents=[common], help="tri-modal confusion matrices")
    fig.add_argument("--fold", type=int, default=None, help="default: the lowest fold present")
    fig.add_argument("--seed", type=int, default=None, help="one seed (default: sum all seeds)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from selfcross.config import user_errors  # imported here: it pulls in torch

    with user_errors():
        if args.command == "figure3":
            from selfcross.figure3 import run_figure3  # it imports this module

            run_figure3(args)
        else:
            run_table(args)


if __name__ == "__main__":
    main()
