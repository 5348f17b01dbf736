"""Every preset's configuration hash, pinned: a finished run is recognised by its hash, so a
refactoring that moves a key, renames a group or changes a default must not change one.

The values in ``pinned/config_hashes.json`` were computed before the package's rooms were
rearranged (issue 22) and must never be regenerated to make this test pass; a change that is
meant to alter runs adds a key to ``HASHED_UNLESS_DEFAULT`` instead. One deliberate change of a
default is pinned by hand, with the override that gives the old identity back: MELD selects on
validation weighted F1 (issue 25), and ``data.selection_metric=val/uwa`` keeps the old hash.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from selfcross.config import CONFIG_DIR, compose
from selfcross.training.resume import config_hash

PINNED = json.loads((Path(__file__).parent / "pinned" / "config_hashes.json").read_text())


def test_every_experiment_and_model_is_pinned():
    """A new preset or model gets a pinned hash too (an unpinned one could drift unseen)."""
    experiments = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
    models = sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))
    expected = {f"model={m}" for m in models} | {
        f"model={m} experiment={e}" for m in models for e in experiments
    }
    assert expected <= set(PINNED)


@pytest.mark.parametrize("overrides", sorted(PINNED))
def test_config_hash_unchanged(overrides, monkeypatch):
    for name in ("SELFCROSS_DATA_DIR", "SELFCROSS_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert config_hash(compose(overrides.split())) == PINNED[overrides], overrides


KEYS = json.loads((Path(__file__).parent / "pinned" / "hash_keys.json").read_text())
KEY_CASES = (
    ["model=cross_transformer"],
    ["experiment=tune", "model=cross"],
    ["data=meld", "data.root=/m"],
    ["data=synthetic_meld"],
    ["data=synthetic_session"],
)
"""Compositions that together hold every configuration key (tuning's, MELD's split counts)."""
OTHER_VALUE = {"data.preset": "tiny"}
"""Keys whose perturbed value must still resolve (the preset names a block of data_presets)."""


def _leaves(node: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _other(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "_x"
    if isinstance(value, list):
        return [*value, 1]
    return 7 if value is None else {"x": 1}


def test_every_key_is_classified_and_hashed_as_listed(monkeypatch):
    """Each configuration key, changed on its own, changes the hash exactly when it is listed as
    hashed: a new key must be put on one list on purpose (one that can change a number is hashed,
    one that cannot is not), and moving a key between lists changes finished runs' identity."""
    for name in ("SELFCROSS_DATA_DIR", "SELFCROSS_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    seen: dict[str, bool] = {}
    for overrides in KEY_CASES:
        cfg = compose(overrides)
        base = config_hash(cfg)
        for key, value in _leaves(OmegaConf.to_container(cfg, resolve=False)).items():
            if key.startswith("hydra."):
                continue
            changed = copy.deepcopy(cfg)
            with open_dict(changed):
                OmegaConf.update(changed, key, OTHER_VALUE.get(key, _other(value)), merge=False)
            seen[key] = seen.get(key, False) or config_hash(changed) != base
    hashed = {key for key, is_hashed in seen.items() if is_hashed}
    unlisted = set(seen) - set(KEYS["hashed"]) - set(KEYS["not_hashed"])
    assert not unlisted, f"keys on neither list of pinned/hash_keys.json: {sorted(unlisted)}"
    assert hashed == set(KEYS["hashed"]) & set(seen), sorted(hashed ^ set(KEYS["hashed"]))
    assert not hashed & set(KEYS["not_hashed"])
