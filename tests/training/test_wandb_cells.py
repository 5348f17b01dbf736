"""The W&B group of a run is its table cell, the run name its run: every key a preset's sweep
varies, apart from fold and seed, is in the group (else the dashboard's mean ± std pools cells),
and the name adds fold and seed. Mutation tools do not mutate YAML: this test reads conf/."""

from __future__ import annotations

import itertools

from selfcross.config import CONFIG_DIR, compose

RUN_KEYS = ("fold", "seed")
"""What varies between the runs of one cell."""


def sweep_grid(preset: str) -> dict[str, list[str]]:
    """The preset's sweep parameters (comma lists; ranges stand for their first two values)."""
    from omegaconf import OmegaConf

    params = OmegaConf.load(CONFIG_DIR / "experiment" / f"{preset}.yaml")
    params = OmegaConf.select(params, "hydra.sweeper.params") or {}
    grid = {}
    for key, value in params.items():
        text = str(value)
        values = ["1", "2"] if text.startswith("range(") else text.split(",")
        grid[key] = [v.strip() for v in values][: 2 if key in RUN_KEYS else None]
    return grid


def test_every_presets_cells_have_their_own_wandb_group_and_runs_their_own_name():
    presets = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
    checked = 0
    for preset in presets:
        grid = sweep_grid(preset)
        if not grid:
            continue
        cell_keys = [k for k in grid if k not in RUN_KEYS]
        groups: dict[str, tuple] = {}
        names: dict[str, tuple] = {}
        cells = list(itertools.product(*(grid[k] for k in cell_keys)))
        runs = list(itertools.product(*(grid.get(k, ["1"]) for k in RUN_KEYS)))
        # every cell with one run, and every run of the first cell
        jobs = [(c, runs[0]) for c in cells] + [(cells[0], r) for r in runs[1:]]
        for cell, run in jobs:
            overrides = [f"experiment={preset}", "logger=wandb", "paths.output_dir=/x",
                         *(f"{k}={v}" for k, v in zip(cell_keys, cell, strict=True)),
                         *(f"{k}={v}" for k, v in zip(RUN_KEYS, run, strict=True))]  # fmt: skip
            logger = compose(overrides).logger.wandb
            group, name = str(logger.group), str(logger.name)
            where = f"experiment={preset} {' '.join(overrides[3:])}"
            for key, value in zip(cell_keys, cell, strict=True):
                shown = value.lower()
                assert shown in group.lower() and shown in name.lower(), (where, key, group)
            assert f"fold{run[0]}" in name and f"seed{run[1]}" in name, (where, name)
            assert groups.setdefault(group, cell) == cell, f"{where}: group {group} pools cells"
            assert names.setdefault(name, (cell, run)) == (cell, run), f"{where}: name {name}"
            checked += 1
    assert checked > 40
