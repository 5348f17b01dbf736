"""A study's search space: the ``tune.*`` settings, the distributions of ``tune.space`` and
one trial's draw from them (the study loop is :mod:`selfcross.training.tuning`).

Every searched key must be a key of the run configuration, not a config group (``model=cross``
swaps a whole group, which ``experiment=tuned`` could not apply afterwards).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from selfcross import fold_problem
from selfcross.config import CONFIG_DIR
from selfcross.errors import ConfigError

HEADS_KEY = "model.network.num_heads"
HIDDEN_KEY = "model.network.hidden"
PARAM_TYPES = ("float", "int", "categorical", "heads")


@dataclass(frozen=True)
class Param:
    """One searched setting: a dotted config key and its distribution.

    ``heads``: a categorical over the ``choices`` that divide the attention width 2 x
    ``model.network.hidden`` of the trial (searched or fixed): only valid head counts are ever
    sampled. When every choice divides every width the parameter keeps its plain name; otherwise
    it is named per width (``model.network.num_heads[width=120]``), as Optuna's categorical
    distributions cannot change their choices between trials.
    """

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None


def parse_space(space: Mapping, base: DictConfig) -> list[Param]:
    """The search space of ``tune.space``, checked against the run configuration ``base``:
    every key exists, every distribution is well formed (ConfigError naming the key)."""
    if not space:
        raise ConfigError("tune.space is empty: give at least one setting to search")
    params = []
    for key, spec in space.items():
        where = f"tune.space.{key}"
        if OmegaConf.select(base, key, default="<absent>") == "<absent>":
            raise ConfigError(f"{where}: no such configuration key")
        if (CONFIG_DIR / key.replace(".", "/")).is_dir():
            raise ConfigError(f"{where}: a config group, not a key; search the keys inside it")
        if not isinstance(spec, Mapping):
            raise ConfigError(
                f"{where}: expected a mapping such as {{type: float, low: .., high: ..}}"
            )
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind not in PARAM_TYPES:
            raise ConfigError(f"{where}.type={kind!r}: expected one of {', '.join(PARAM_TYPES)}")
        known = {"low", "high", "log", "step"} if kind in ("float", "int") else {"choices"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown entry {unknown[0]!r} for type {kind}")
        if kind in ("float", "int"):
            low, high = spec.get("low"), spec.get("high")
            number = int if kind == "int" else (int, float)
            for name, value in (("low", low), ("high", high)):
                if isinstance(value, bool) or not isinstance(value, number):
                    raise ConfigError(f"{where}.{name}={value!r}: expected a {kind}")
            if low >= high:
                raise ConfigError(f"{where}: low={low} must be below high={high}")
            if spec.get("log") and low <= 0:
                raise ConfigError(f"{where}: a log scale needs low > 0, got {low}")
            params.append(
                Param(key, kind, low, high, bool(spec.get("log", False)), spec.get("step"))
            )
        else:
            choices = spec.get("choices")
            if not isinstance(choices, list | tuple) or not choices:
                raise ConfigError(f"{where}.choices: expected a non-empty list")
            if kind == "heads":
                if key != HEADS_KEY:
                    raise ConfigError(f"{where}: type heads is for {HEADS_KEY} only")
                if any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in choices):
                    raise ConfigError(f"{where}.choices: expected positive integers")
            params.append(Param(key, kind, choices=tuple(choices)))
    return params


def widths(params: list[Param], base: DictConfig) -> list[int]:
    """Every attention width (2 x hidden) a trial can have."""
    hidden = next((p for p in params if p.key == HIDDEN_KEY), None)
    if hidden is None:
        return [2 * int(OmegaConf.select(base, HIDDEN_KEY))]
    if hidden.type == "categorical":
        return [2 * int(h) for h in hidden.choices]
    if hidden.type == "int":
        step = int(hidden.step or 1)
        return [2 * h for h in range(int(hidden.low), int(hidden.high) + 1, step)]
    raise ConfigError(f"tune.space.{HIDDEN_KEY}: expected type int or categorical")


def suggest(trial, params: list[Param], base: DictConfig) -> dict[str, Any]:
    """The trial's settings (dotted key -> value), sampled in the order of the space, hidden
    size before heads."""
    values: dict[str, Any] = {}
    ordered = sorted(params, key=lambda p: p.type == "heads")
    for p in ordered:
        if p.type == "float":
            values[p.key] = trial.suggest_float(p.key, p.low, p.high, log=p.log, step=p.step)
        elif p.type == "int":
            values[p.key] = trial.suggest_int(
                p.key, int(p.low), int(p.high), log=p.log, step=int(p.step or 1)
            )
        elif p.type == "categorical":
            values[p.key] = trial.suggest_categorical(p.key, list(p.choices))
        else:
            width = 2 * int(values.get(HIDDEN_KEY, OmegaConf.select(base, HIDDEN_KEY)))
            valid = [c for c in p.choices if width % c == 0]
            if not valid:
                raise ConfigError(
                    f"tune.space.{HEADS_KEY}: none of {list(p.choices)} divides the attention "
                    f"width {width} (2 x {HIDDEN_KEY})"
                )
            everywhere = all(w % c == 0 for w in widths(params, base) for c in p.choices)
            name = p.key if everywhere else f"{p.key}[width={width}]"
            values[p.key] = trial.suggest_categorical(name, valid)
    return values


def as_override(key: str, value: Any) -> str:
    """``key=value`` as a Hydra override (floats in full precision)."""
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"


OBJECTIVES = {"val/uwa": "val_uwa", "val/wa": "val_wa", "val/wf1": "val_wf1", "val/f1": "val_f1"}
"""The selection metrics a study can maximise, each with the record field of its best-validation
value (``data.selection_metric``: IEMOCAP's val/uwa, MELD's val/wf1)."""


@dataclass(frozen=True)
class Settings:
    """``tune.*`` of the composed configuration, and the objective: the run's selection metric
    (``monitor.metric``), whose best-validation value is each fold run's score."""

    n_trials: int
    folds: tuple[int, ...]
    seed: int
    n_startup_trials: int
    space: list[Param]
    objective: str = "val/uwa"

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Settings:
        if "tune" not in cfg:
            raise ConfigError("no tune settings: add experiment=tune")
        tune = cfg.tune
        n_trials = tune.get("n_trials")
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
            raise ConfigError(f"tune.n_trials={n_trials}: expected an integer >= 1")
        folds = tuple(tune.get("folds") or ())
        n_folds = cfg.data.n_folds
        if not folds or any(fold_problem(f, n_folds) for f in folds):
            raise ConfigError(f"tune.folds={list(folds)}: expected folds among 1..{n_folds}")
        if len(set(folds)) != len(folds):
            raise ConfigError(f"tune.folds={list(folds)}: a fold is listed twice")
        space_cfg = OmegaConf.to_container(tune.space, resolve=True) if tune.get("space") else {}
        space = parse_space(space_cfg, cfg)
        if any(p.type == "heads" for p in space):
            widths(space, cfg)  # a hidden size that gives no width is refused now
        objective = str(cfg.monitor.metric)
        if objective not in OBJECTIVES or cfg.monitor.mode != "max":
            raise ConfigError(
                f"monitor.metric={objective} (mode {cfg.monitor.mode}): a study maximises a "
                f"validation score, one of {', '.join(OBJECTIVES)} with mode max"
            )
        return cls(
            n_trials=n_trials,
            folds=folds,
            seed=int(tune.sampler.seed),
            n_startup_trials=int(tune.sampler.n_startup_trials),
            space=space,
            objective=objective,
        )
