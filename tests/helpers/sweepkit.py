"""Pieces of the sweep tests: the tiny run settings, Hydra's composed configuration with its
own keys, and the result.json files of a sweep by (model, modality, fold, seed)."""

from __future__ import annotations

import json
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from selfcross.config import CONFIG_DIR

TINY = ["debug=fast", "logger=none", "trainer.enable_progress_bar=false"]


def hydra_cfg(*overrides):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=True)


def results(root: Path) -> dict[tuple, dict]:
    out = {}
    for path in root.rglob("result.json"):
        r = json.loads(path.read_text())
        out[(r["model"], r["modality"], r["fold"], r["seed"])] = {"path": path, **r}
    return out
