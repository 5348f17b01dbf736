"""A study's ``best.json``, written and read here only, and its settings applied to a run
(``experiment=tuned``, ``tuned.study=<folder>``).

Apart from :mod:`selfcross.training.tuning` (which runs studies and trains through
:mod:`selfcross.training.experiment`), so that a run can read a study's ``best.json`` without
importing the study machinery.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from selfcross.errors import ConfigError
from selfcross.training.study import n_counted
from selfcross.utils.io import write_json_atomic
from selfcross.utils.values import Refused, check_value, composed_value, instantiation_key

BEST_FILE = "best.json"


def write_best(
    study, directory: Path, ident, n_trials: int, storage: str | None = None
) -> dict[str, Any] | None:
    """``best.json``: the best complete trial's settings and value, and how far the study is;
    ``storage``: a shared study's storage URL, without credentials (absent for ``study.db``)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    best = max(complete, key=lambda t: (t.value, -t.number))
    fingerprints = best.user_attrs.get("fingerprints")  # of the tuning folds, as run
    payload = {
        "study": str(directory),
        "model": ident["model"],
        "modality": ident["modality"],
        "folds": ident["folds"],
        "seed": ident["seed"],
        "trial": best.number,
        "value": best.value,
        "objective": ident.get("objective", "val/uwa"),
        "fold_scores": best.user_attrs.get("fold_scores"),
        "settings": best.user_attrs.get("values", {}),
        "n_trials": n_trials,
        "n_finished": n_counted(trials),
        "n_complete": len(complete),
        "data": {**study.user_attrs.get("data", {}), "fingerprints": fingerprints},
    }
    if storage is not None:
        payload["storage"] = storage
        payload["study_name"] = study.study_name
    write_json_atomic(directory / BEST_FILE, payload)
    return payload


def read_best(study: str | Path) -> dict[str, Any]:
    """The ``best.json`` of a study folder (ConfigError if there is none or it is unusable)."""
    import json

    path = Path(study) / BEST_FILE
    try:
        best = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"tuned.study={study}: no {BEST_FILE} (run python -m selfcross.tune for this cell "
            "first, or point tuned.study at its study folder)"
        ) from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: unreadable ({err})") from None
    if not isinstance(best, dict) or not isinstance(best.get("settings"), dict):
        raise ConfigError(f"{path}: no settings in it")
    return best


def check_setting(cfg: DictConfig, key: str, value) -> None:
    """Refused unless the setting ``key=value`` of a ``best.json`` is a value of a key of
    ``cfg`` of the kind it replaces (never one of Hydra's instantiation keys: a study's
    settings are values, never code)."""
    parts = str(key).split(".")
    special = next((p for p in parts if instantiation_key(p)), None)
    if special is not None:
        raise Refused(f"{key}: names Hydra's {special} (a file sets values, never code)")
    parent, _, leaf = str(key).rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_resolution_failure=False) if parent else cfg
    if not isinstance(node, DictConfig) or leaf not in node:
        raise Refused(f"{key}: no such configuration key")
    check_value(composed_value(node, leaf), value, key)


def apply_tuned(cfg: DictConfig) -> DictConfig:
    """``cfg`` with the best settings of the study ``tuned.study`` (a copy; ``cfg`` itself when
    ``tuned.study`` is not set). The study must be of this run's cell and finished (unless
    ``tuned.allow_unfinished``); ``tuned.trial`` and ``tuned.value`` record which trial. Each
    setting must pass :func:`check_setting`.

    Also refuses the study settings of ``experiment=tune`` in a run: a study is started with
    ``python -m selfcross.tune`` (whose runs do not carry them)."""
    if "tune" in cfg:
        raise ConfigError(
            "experiment=tune configures a study, not a run: use python -m selfcross.tune "
            f"model={cfg.model.name} modality={cfg.modality.name} [overrides]"
        )
    tuned = cfg.get("tuned")
    if not tuned or not tuned.get("study"):
        return cfg
    best = read_best(tuned.study)
    cell = (cfg.model.name, cfg.modality.name)
    if (best.get("model"), best.get("modality")) != cell:
        raise ConfigError(
            f"tuned.study={tuned.study} tuned {best.get('model')} on {best.get('modality')}, "
            f"but this run is {cell[0]} on {cell[1]}"
        )
    if best.get("n_finished", 0) < best.get("n_trials", 0) and not tuned.get("allow_unfinished"):
        raise ConfigError(
            f"tuned.study={tuned.study}: {best.get('n_finished')} of {best.get('n_trials')} "
            "trials finished; finish the study (rerun python -m selfcross.tune) or set "
            "tuned.allow_unfinished=true"
        )
    if not tuned.get("accept_other_data"):
        check_same_data(cfg, best, tuned.study)
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    path = Path(str(tuned.study)) / BEST_FILE
    with open_dict(out):
        for key, value in best["settings"].items():
            try:
                check_setting(out, key, value)
            except Refused as err:
                raise ConfigError(f"{path}: {err}") from None
            OmegaConf.update(out, key, value, merge=isinstance(value, dict))  # keeps the rest
        out.tuned.trial = best.get("trial")
        out.tuned.value = best.get("value")
    return out


def check_same_data(cfg: DictConfig, best: dict[str, Any], study) -> None:
    """ConfigError unless the study was tuned on this run's data: the same dataset, preset and
    root, and tuning folds whose files are unchanged (their fingerprints as the trials' runs
    recorded them). A ``best.json`` written before it carried its data is not checked."""
    from selfcross.training.record import same_data

    data = best.get("data")
    if not isinstance(data, dict):
        return
    hint = "tune on this data, or set tuned.accept_other_data=true to use its settings anyway"
    ours = {
        "name": cfg.data.name,
        "preset": cfg.data.get("preset"),
        "root": str(Path(str(cfg.data.root)).resolve()),
    }
    for key, value in ours.items():
        if key in data and data[key] != value:
            raise ConfigError(
                f"tuned.study={study} was tuned on data.{key}={data[key]}, but this run has "
                f"data.{key}={value}: {hint}"
            )
    from selfcross.data.fingerprint import current_fingerprint  # the data package needs torch

    for fold, theirs in (data.get("fingerprints") or {}).items():
        now = current_fingerprint(cfg.data.root, int(fold), cfg.data.get("cache_dir"))
        if now is not None and not same_data(str(theirs), now):
            raise ConfigError(
                f"tuned.study={study} was tuned on fold {fold} as it was (fingerprint {theirs}); "
                f"its files have changed since (now {now}): {hint}"
            )
