"""Shared pieces of the report tests: hand-made runs on a small grid, readers of the outputs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from selfcross.tables import main
from tests.helpers.recordkit import write_run

GRID = ["--folds", "1-2", "--seeds", "1-3"]  # 6 runs per cell keeps the files few
KEYS = [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]

# Table 1 data on a folds 1-2 x seeds 1-3 grid (WA; UWA = WA + .05 + .01 x seed):
# T+V: self far above cross (p < .05, bold Self); T+A: close (no mark), cross lacks (2, 3);
# T+V+A: self below AMH (bold AMH), cross has one run; T: self only; V, A, V+A: no runs.
TV_SELF = [0.60, 0.62, 0.64, 0.66, 0.68, 0.70]
TV_CROSS = [0.51, 0.50, 0.55, 0.53, 0.58, 0.57]
TA_SELF = [0.50, 0.53, 0.49, 0.52, 0.51, 0.48]
TA_CROSS = [0.51, 0.49, 0.52, 0.50, 0.47]  # no fold 2 seed 3
TVA_SELF = [0.40, 0.41, 0.42, 0.43, 0.44, 0.45]
T_SELF = [0.45, 0.47, 0.46, 0.44, 0.48, 0.49]


def write_result(
    root: Path,
    model: str,
    modality: str,
    fold: int,
    seed: int,
    wa: float,
    uwa: float | None = None,
    folder: str | None = None,
    **fields,
) -> Path:
    """A complete result.json (as selfcross.run writes it) under ``root``; ``fields`` (e.g.
    ``data={...}``, ``confusion=...``) replace the record's values."""
    directory = root / (folder or f"{model}/{modality}/fold{fold}/seed{seed}")
    uwa = wa + 0.05 if uwa is None else uwa
    return write_run(directory, model, modality, fold, seed, wa, uwa, **fields)


def write_cell(root: Path, model: str, modality: str, wa: list[float], keys=KEYS) -> None:
    for (fold, seed), value in zip(keys, wa, strict=True):
        # UWA varies differently from WA so that the two blocks are not copies of each other
        write_result(root, model, modality, fold, seed, value, uwa=value + 0.05 + 0.01 * seed)


def uwa_of(wa: list[float], keys=KEYS) -> list[float]:
    return [v + 0.05 + 0.01 * seed for v, (_, seed) in zip(wa, keys, strict=True)]


def rate(x: float) -> str:
    """A table's rate: three decimals, no leading zero, the sign kept (.587, -.039, -.000)."""
    text = f"{x:.3f}"
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    return sign + digits.removeprefix("0")


def mean_std(values) -> str:
    return f"{rate(np.mean(values))} ± {rate(np.std(values, ddof=1))}"


def md_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """{section title: [{column: cell}]} from our Markdown tables."""
    sections: dict[str, list[dict[str, str]]] = {}
    title = header = None
    for line in text.splitlines():
        if line.startswith("## "):
            title, header = line[3:], None
        elif line.startswith("| ") and title:
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if set(cells) == {"---"}:
                continue
            if header is None:
                header, sections[title] = cells, []
            else:
                sections[title].append(dict(zip(header, cells, strict=True)))
    return sections


def read_csv(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with path.open() as handle:
        return {(r["modality"], r["metric"], r["model"]): r for r in csv.DictReader(handle)}


def run_main(*args: str) -> None:
    main(list(args))


def expect_error(capsys, *args: str) -> str:
    """Run main, expect exit status 2; return the one stderr line."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]
