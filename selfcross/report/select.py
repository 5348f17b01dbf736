"""Which runs a table or figure uses: the protocol grid, the cells, and what is left out.

A cell is the runs of one model on one modality subset, keyed by (fold, seed). It expects the
whole (fold, seed) grid of the protocol, or nothing where the model cannot be built on the
modality subset (the rule lives in :func:`selfcross.fusion_problem`). Runs outside the grid are
reported, never averaged in; cells short of runs are listed in a missing-runs report.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfcross import fusion_problem
from selfcross.analysis.pooling import (
    check_runs,
    config_groups,
    describe_source,
)
from selfcross.analysis.results import (
    RunResult,
    Skipped,
    check_metrics,
    describe_scheme,
    find_result_files,
    load_results,
    warn_skipped,
)
from selfcross.config import model_fusion
from selfcross.manifest import read_manifest
from selfcross.report.stats import Summary, metric_values, summarize
from selfcross.training.record import read_record

MODEL_LABELS = {
    "self": "Self",
    "cross": "Cross",
    "self_nosp": "Self-noSP",
    "cross_nosp": "Cross-noSP",
    "cross_self": "Cross+Self",
    "self_transformer": "Self-Transformer",
    "cross_transformer": "Cross-Transformer",
    "cross_self_transformer": "Cross+Self-Transformer",
}
"""Model config name -> the paper's name."""

TRIMODAL = "TVA"


def modality_label(modality: str) -> str:
    """``TVA`` -> ``T+V+A`` (the paper's row names)."""
    return "+".join(modality)


def format_ints(values: Iterable[int]) -> str:
    """(1, 2, 3, 5) -> ``1-3, 5``."""
    values = sorted(set(values))
    parts = []
    for _, group in itertools.groupby(enumerate(values), lambda iv: iv[1] - iv[0]):
        run = [v for _, v in group]
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ", ".join(parts)


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


DEFAULT_FOLDS = (1, 2, 3, 4, 5)
"""The protocol's folds when neither --folds nor the runs' data root says: IEMOCAP's five."""


def manifest_folds(results: str | Path) -> tuple[int, ...] | None:
    """Folds 1..n of the data root the runs under ``results`` read, n as the root's manifest
    (``dataset.json``) says; None when the first readable run names a root without one, or when
    ``results`` is no folder (the table then says so itself)."""
    if not Path(results).is_dir():
        return None
    for path in find_result_files(results):
        record = read_record(path)
        root = getattr(getattr(record, "data", None), "root", None)
        if isinstance(root, str) and root:
            manifest = read_manifest(root)
            return None if manifest is None else tuple(range(1, manifest.n_folds + 1))
    return None


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
        return metric_values(self.runs, metric)

    def summary(self, metric: str) -> Summary:
        return summarize(self.values(metric))


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

    @property
    def feature_sets(self) -> set[str]:
        """The feature sets of the runs used (one: ``check_runs`` refuses a mix)."""
        return {run.feature_set for c in self.cells.values() for run in c.runs.values()}

    @property
    def datasets(self) -> set[str]:
        """The data.name of the runs used (e.g. ``{"meld"}``)."""
        return {run.source[0] for c in self.cells.values() for run in c.runs.values()}

    @property
    def scheme(self) -> str:
        """The runs' evaluation scheme (``split random (seed 0), all classes``; the tables
        refuse runs of different recorded schemes); ``not recorded`` for older records."""
        runs = [run for c in self.cells.values() for run in c.runs.values()]
        recorded = sorted({r.scheme for r in runs if r.scheme is not None}, key=str)
        return describe_scheme(recorded[0]) if recorded else describe_scheme(None)

    @property
    def n_classes(self) -> int:
        """Classes of the runs used (their records' class names; 7, the paper's, if none)."""
        runs = [run for c in self.cells.values() for run in c.runs.values()]
        return next((len(r.class_names) for r in runs if r.class_names), 7)


def shown_metrics(selection: Selection, metrics: Sequence[str] | None) -> tuple[str, ...]:
    """The metrics a table shows: ``metrics`` (``--metrics``), else the default of the runs'
    dataset (``metrics`` of conf/data/<name>.yaml; over several datasets, each one's in turn;
    no runs: IEMOCAP's). DataError if a run lacks one (:func:`check_metrics`)."""
    from selfcross.data.datasets import default_metrics

    if metrics is None:
        names = sorted(selection.datasets) or ["iemocap"]
        metrics = tuple(dict.fromkeys(m for name in names for m in default_metrics(name)))
    runs = [run for cell in selection.cells.values() for run in cell.runs.values()]
    check_metrics(runs, metrics)
    return tuple(metrics)


def applicable(model: str, modality: str) -> bool:
    """Whether ``model`` can be built on ``modality`` (the package's one rule, e.g. cross
    needs two modalities)."""
    return fusion_problem(model_fusion(model), modality) is None


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
        expected = tuple(protocol.grid) if applicable(model, modality) else ()
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


def gather(
    directory: Path,
    protocol: Protocol,
    wanted: Iterable[tuple[str, str]],
    allow_mixed_data: bool,
) -> Selection:
    """The runs of the ``wanted`` cells under ``directory``; a warning per skipped file."""
    runs, skipped = load_results(directory)
    warn_skipped(skipped)
    return select(directory, runs, skipped, protocol, wanted, allow_mixed_data)


def gather_groups(
    directory: Path,
    protocol: Protocol,
    wanted: Iterable[tuple[str, str]],
    allow_mixed_data: bool,
    split_configs: bool,
) -> list[tuple[str, Selection]]:
    """:func:`gather`, or with ``split_configs`` one labelled selection per configuration
    (``results.config_groups``: the label names the keys that differ and their values)."""
    if not split_configs:
        return [("", gather(directory, protocol, wanted, allow_mixed_data))]
    runs, skipped = load_results(directory)
    warn_skipped(skipped)
    wanted = list(wanted)
    relevant = [r for r in runs if (r.model, r.modality) in set(wanted)]
    n_files = len(runs) + len(skipped)
    return [
        (label, select(directory, group, skipped, protocol, wanted, allow_mixed_data, n_files))
        for label, group in config_groups(relevant)
    ]


def label_folder(label: str) -> str:
    """A folder name for a configuration label: ``model.optimizer.lr=0.01`` ->
    ``model.optimizer.lr=0.01`` with anything but letters, digits and ``.=-_`` as ``_``."""
    return "".join(c if c.isalnum() or c in ".=-_" else "_" for c in label)[:120]


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
    """Where the numbers come from: files read and used, the grid, the data, what was left out."""
    notes = [
        f"Results: {selection.directory} ({selection.n_files} result.json read, "
        f"{selection.used} runs used, {len(selection.skipped)} skipped as unusable, "
        f"{len(selection.outside)} outside the expected grid ignored, {selection.other} of "
        "other cells not shown here)",
        f"Expected runs: {selection.protocol.describe()}",
        f"Evaluation scheme: {selection.scheme}",
    ]
    if len(selection.sources) > 1:
        mixed = "MIXED DATA (--allow-mixed-data): " if allow_mixed_data else ""
        notes.append(f"Data: {mixed}{'; '.join(selection.sources)}")
    elif selection.sources:
        notes.append(f"Data: {selection.sources[0]}")
    if selection.feature_sets - {"paper"}:
        notes.append(f"Features: {'; '.join(sorted(selection.feature_sets))} (docs/features.md)")
    for run in selection.outside:
        notes.append(
            f"Ignored (fold {run.fold}, seed {run.seed} is outside the grid; set --folds/--seeds):"
            f" {run.path}"
        )
    for skipped in selection.skipped:
        notes.append(f"Skipped, counted as missing: {skipped}")
    return notes
