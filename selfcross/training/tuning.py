"""Per-case tuning: an Optuna study over the hyper-parameters of one (model, modality) cell.

The paper's first hypothesis for its bi-modal gap is that its bi-modal models are the tri-modal
architecture with a modality removed, never tuned for their own case. A study searches the space
of ``tune.space`` (``conf/experiment/tune.yaml``) with a seeded TPE sampler, driven here through
Optuna's ask/tell interface; the study lives in ``<study dir>/study.db`` (SQLite, Optuna's RDB
storage). Each trial trains one ordinary run per tuning fold (``tune.folds``, the run's ``seed``)
with :func:`selfcross.training.experiment.train_and_test`, in
``<study dir>/trials/<NNN>/fold<k>/``, with ``run_test: false``: the test split is never
evaluated. The objective is the mean best-validation UWA over those folds (the record's
``val_uwa``: the validation UWA of the best epoch, the one the checkpoint keeps).

Rerunning the same command continues the study: finished trials are kept (their runs are
skipped as complete), a trial that was running when the process died is marked failed
(``interrupted``) and its parameters are tried again in the same folder, so its finished folds
are kept and an interrupted fold resumes from its last epoch. A trial whose configuration is
invalid is pruned; one whose run fails is failed; the study goes on. ``best.json`` holds the
best trial's settings; ``experiment=tuned`` (:func:`apply_tuned`) trains with them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from selfcross.config import compose, validate
from selfcross.errors import ConfigError, DataError, Interrupted
from selfcross.training.tuned import BEST_FILE
from selfcross.utils.io import write_json_atomic

log = logging.getLogger("selfcross")

STUDY_DB = "study.db"
LOCK_FILE = ".study.lock"
TRIALS_DIR = "trials"
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


@dataclass(frozen=True)
class Settings:
    """``tune.*`` of the composed configuration."""

    n_trials: int
    folds: tuple[int, ...]
    seed: int
    n_startup_trials: int
    space: list[Param]

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
        if not folds or any(not isinstance(f, int) or not 1 <= f <= n_folds for f in folds):
            raise ConfigError(f"tune.folds={list(folds)}: expected folds among 1..{n_folds}")
        if len(set(folds)) != len(folds):
            raise ConfigError(f"tune.folds={list(folds)}: a fold is listed twice")
        space_cfg = OmegaConf.to_container(tune.space, resolve=True) if tune.get("space") else {}
        space = parse_space(space_cfg, cfg)
        if any(p.type == "heads" for p in space):
            widths(space, cfg)  # a hidden size that gives no width is refused now
        return cls(
            n_trials=n_trials,
            folds=folds,
            seed=int(tune.sampler.seed),
            n_startup_trials=int(tune.sampler.n_startup_trials),
            space=space,
        )


def identity(cfg: DictConfig, settings: Settings) -> dict[str, Any]:
    """What a study's trials depend on: a rerun with another value is another study."""
    from selfcross.training.resume import config_hash

    run_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(run_cfg):
        run_cfg.pop("tune", None)
        run_cfg.fold = "<fold>"  # the folds are tune.folds
        run_cfg.paths.output_dir = "<output_dir>"
    return {
        "model": cfg.model.name,
        "modality": cfg.modality.name,
        "folds": list(settings.folds),
        "seed": cfg.seed,
        "sampler_seed": settings.seed,
        "n_startup_trials": settings.n_startup_trials,
        "space": OmegaConf.to_container(cfg.tune.space, resolve=True),
        "base_config_hash": config_hash(run_cfg),
    }


# -- the study ----------------------------------------------------------------------------------


def interrupted(trials) -> set[int]:
    """Numbers of the trials that were interrupted and are retried by a later trial."""
    return {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}


def n_counted(trials) -> int:
    """Finished trials that count towards ``n_trials`` (an interrupted one is retried)."""
    from optuna.trial import TrialState

    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    retried = interrupted(trials)
    return sum(t.state in finished and t.number not in retried for t in trials)


def trial_folder(trial) -> str:
    """The trial's folder name under ``trials/``: its number, or that of the interrupted trial
    it retries (so the finished folds of that one are kept)."""
    return str(trial.user_attrs.get("folder") or f"{trial.number:03d}")


def retry_interrupted(study) -> int:
    """Mark every RUNNING trial failed (``interrupted``) and enqueue its parameters again, in its
    folder. Only one process runs a study (its lock), so a RUNNING trial is one whose process
    died. Returns how many were found."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(
            trial.params,
            user_attrs={"folder": trial_folder(trial), "retry_of": trial.number},
        )
        log.info("Trial %d was interrupted: retried with the same parameters", trial.number)
    return len(stale)


@dataclass
class StudyOutcome:
    """What :func:`run_study` did."""

    directory: Path
    n_trials: int
    ran: int
    best: dict[str, Any] | None


def study_dir(overrides: list[str]) -> Path:
    """The study folder: ``hydra.sweep.dir`` (``multirun/<sweep_name>``) of the composition."""
    cfg = compose(overrides, with_hydra=True)
    return Path(str(cfg.hydra.sweep.dir))


def run_study(overrides: list[str], run=None) -> StudyOutcome:
    """Run (or continue) the study of ``overrides`` (``experiment=tune`` added if absent) until
    ``tune.n_trials`` trials have finished. ``run`` trains one run (default
    :func:`selfcross.training.experiment.train_and_test`; tests replace it)."""
    import optuna
    from filelock import FileLock, Timeout

    overrides = list(overrides)
    if not any(o.split("=")[0].lstrip("+") == "experiment" for o in overrides):
        overrides.insert(0, "experiment=tune")
    directory = study_dir(overrides)
    cfg = compose([*overrides, f"paths.output_dir={directory}"])
    settings = Settings.from_config(cfg)
    validate(cfg)  # the untuned cell itself must be a valid experiment
    ident = identity(cfg, settings)
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(directory / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(
            f"{directory}: the study is running in another process ({directory / LOCK_FILE} "
            "is held)"
        ) from None
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(f"sqlite:///{(directory / STUDY_DB).resolve()}")
        existing = optuna.get_all_study_names(storage)  # a renamed folder keeps its study
        name = existing[0] if len(existing) == 1 else directory.name
        study = optuna.create_study(
            storage=storage, study_name=name, direction="maximize", load_if_exists=True
        )
        stored = study.user_attrs.get("identity")
        if stored is None:
            study.set_user_attr("identity", ident)
            untuned = {p.key: OmegaConf.select(cfg, p.key) for p in settings.space}
            study.set_user_attr("untuned", untuned)
        elif stored != ident:
            keys = sorted(k for k in ident if stored.get(k) != ident.get(k))
            raise ConfigError(
                f"{directory / STUDY_DB}: this study was created with other settings "
                f"({', '.join(keys)} differ); choose another sweep_name or remove the folder"
            )
        retry_interrupted(study)
        ran = _optimize(study, settings, overrides, directory, run)
        best = write_best(study, directory, ident, settings.n_trials)
        return StudyOutcome(directory, settings.n_trials, ran, best)
    finally:
        lock.release()


def _optimize(study, settings: Settings, overrides, directory: Path, run) -> int:
    """Ask, train, tell until ``n_trials`` trials count; returns the number run now."""
    import optuna
    from optuna.trial import TrialState

    ran = 0
    while True:
        done = n_counted(study.get_trials(deepcopy=False))
        if done >= settings.n_trials:
            return ran
        # One sampler per trial, seeded by the trial's place in the study: a resumed study does
        # not repeat its first draws, and given the same values draws what an uninterrupted
        # one would (TPE ignores the failed, interrupted trial).
        study.sampler = optuna.samplers.TPESampler(
            seed=settings.seed + done, n_startup_trials=settings.n_startup_trials
        )
        trial = study.ask()
        try:
            state, value = _run_trial(trial, settings, overrides, directory, run)
        except (Interrupted, KeyboardInterrupt):
            log.error(
                "Study %s interrupted in trial %d: rerun to continue", directory, trial.number
            )
            raise
        study.tell(trial, value, state=state)
        ran += 1
        shown = f"{value:.4f}" if state == TrialState.COMPLETE else state.name.lower()
        values = trial.user_attrs.get("values", {})
        shown_values = " ".join(as_override(k, v) for k, v in values.items())
        print(f"trial {trial.number} ({done + 1} of {settings.n_trials}): {shown}  {shown_values}")
        write_best(study, directory, study.user_attrs.get("identity"), settings.n_trials)


def _run_trial(trial, settings: Settings, overrides, directory: Path, run):
    """Train the trial's runs; (state, value) for ``study.tell``."""
    from optuna.trial import TrialState

    base = compose([*overrides, f"paths.output_dir={directory}"])
    try:
        values = suggest(trial, settings.space, base)
    except ConfigError as err:
        trial.set_user_attr("invalid", str(err))
        return TrialState.PRUNED, None
    trial.set_user_attr("values", values)
    folder = directory / TRIALS_DIR / trial_folder(trial)
    configs = []
    try:
        for fold in settings.folds:
            out_dir = folder / f"fold{fold}"
            cfg = compose(
                [
                    *overrides,
                    *(as_override(k, v) for k, v in values.items()),
                    f"fold={fold}",
                    f"paths.output_dir={out_dir}",
                ]  # fmt: skip
            )
            with open_dict(cfg):
                cfg.pop("tune", None)  # the study's settings are not the run's
                cfg.run_test = False
            validate(cfg)
            configs.append(cfg)
    except ConfigError as err:
        log.warning("Trial %d is invalid: %s", trial.number, err)
        trial.set_user_attr("invalid", str(err))
        return TrialState.PRUNED, None
    if run is None:
        from selfcross.training.experiment import train_and_test as run
    scores = []
    for fold, cfg in zip(settings.folds, configs, strict=True):
        try:
            outcome = run(cfg)
        except (Interrupted, KeyboardInterrupt, DataError):
            raise
        except ConfigError as err:
            trial.set_user_attr("invalid", str(err))
            return TrialState.PRUNED, None
        except Exception as err:  # a diverging or crashing run fails the trial, not the study
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            log.warning("Trial %d, fold %d failed: %s", trial.number, fold, first)
            trial.set_user_attr("error", f"fold {fold}: {first}")
            return TrialState.FAIL, None
        record = outcome.record
        score = None if record is None else record.val_uwa
        if score is None or not math.isfinite(score):
            trial.set_user_attr("error", f"fold {fold}: no validation UWA ({outcome.status})")
            return TrialState.FAIL, None
        scores.append(float(score))
    trial.set_user_attr("fold_scores", dict(zip(map(str, settings.folds), scores, strict=True)))
    return TrialState.COMPLETE, sum(scores) / len(scores)


def write_best(study, directory: Path, ident, n_trials: int) -> dict[str, Any] | None:
    """``best.json``: the best complete trial's settings and value, and how far the study is."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    best = max(complete, key=lambda t: (t.value, -t.number))
    payload = {
        "study": str(directory),
        "model": ident["model"],
        "modality": ident["modality"],
        "folds": ident["folds"],
        "seed": ident["seed"],
        "trial": best.number,
        "value": best.value,
        "fold_scores": best.user_attrs.get("fold_scores"),
        "settings": best.user_attrs.get("values", {}),
        "n_trials": n_trials,
        "n_finished": n_counted(trials),
        "n_complete": len(complete),
    }
    write_json_atomic(directory / BEST_FILE, payload)
    return payload


# -- training with a study's best settings ------------------------------------------------------
