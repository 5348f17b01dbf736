"""Per-case tuning: an Optuna study over the hyper-parameters of one (model, modality) cell.

The paper's first hypothesis for its bi-modal gap is that its bi-modal models are the tri-modal
architecture with a modality removed, never tuned for their own case. A study searches the space
of ``tune.space`` (``conf/experiment/tune.yaml``) with a seeded TPE sampler, driven here through
Optuna's ask/tell interface; the study lives in ``<study dir>/study.db`` (SQLite, Optuna's RDB
storage). With a shared ``tune.storage`` (a database, a journal file) each process is one worker
of the study, in ``Study.optimize`` with Optuna's heartbeat and retry
(:mod:`selfcross.training.shared`). Each trial trains one ordinary run per tuning fold
(``tune.folds``, the run's ``seed``) with :func:`selfcross.training.experiment.train_and_test`,
in ``<study dir>/trials/<NNN>/fold<k>/``, with ``run_test: false``: the test split is never
evaluated. The objective is the mean over those folds of the best-validation value of the runs'
selection metric (``monitor.metric``, the dataset's ``selection_metric``: the record's ``val_uwa``
for IEMOCAP, ``val_wf1`` for MELD; :data:`~selfcross.training.search.OBJECTIVES`), the value of
the epoch the checkpoint keeps.

Rerunning the same command continues the study: finished trials are kept (their runs are
skipped as complete), a trial that was running when the process died is marked failed
(``interrupted``) and its parameters are tried again in the same folder, so its finished folds
are kept and an interrupted fold resumes from its last epoch. A trial whose configuration is
invalid is pruned; one whose run fails is failed; the study goes on. ``best.json`` holds the
best trial's settings; ``experiment=tuned`` (:func:`apply_tuned`) trains with them.

The base configuration is composed once per study; each trial's runs are copies of it with the
trial's values, fold and folder set as a composition's overrides would set them. The search
space is :mod:`selfcross.training.search`, the stored trials :mod:`selfcross.training.study`,
``best.json`` :mod:`selfcross.training.tuned`.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from selfcross.config import (
    apply_overrides,
    check_output_folder,
    compose,
    first_paragraph,
    validate,
)
from selfcross.errors import ConfigError, DataError, Interrupted
from selfcross.training.search import OBJECTIVES, Settings, as_override, suggest
from selfcross.training.shared import optimize_shared
from selfcross.training.storage import (
    SQLITE,
    open_shared,
    parse_storage,
    storage_said,
)
from selfcross.training.study import (
    LOCK_FILE,
    STUDY_DB,
    TRIALS_DIR,
    db_said,
    n_counted,
    open_storage,
    retry_interrupted,
    trial_folder,
)
from selfcross.training.tuned import write_best

log = logging.getLogger("selfcross")


def base_run_config(cfg: DictConfig) -> DictConfig:
    """The study's base configuration as its trials' runs share it (no fold, no folder)."""
    run_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(run_cfg):
        run_cfg.pop("tune", None)
        run_cfg.fold = "<fold>"  # the folds are tune.folds
        run_cfg.paths.output_dir = "<output_dir>"
    return run_cfg


def base_settings(cfg: DictConfig) -> dict[str, str]:
    """The hashed settings of the study's base configuration, flattened (``{"model.optimizer.lr":
    "0.001", ...}``), kept in the study so that a refusal can name the keys that differ."""
    from selfcross.training.resume import comparable_config

    return comparable_config(OmegaConf.to_container(base_run_config(cfg), resolve=True))


def differing(stored: dict[str, Any], ident: dict[str, Any], before, now) -> list[str]:
    """The identity keys that differ, ``base_config_hash`` replaced by the configuration keys
    behind it (with both values) where the study kept its base settings (``before``)."""
    keys = sorted(k for k in ident if stored.get(k) != ident.get(k))
    if "base_config_hash" not in keys or not isinstance(before, dict):
        return keys
    changed = [
        f"{k}: {before.get(k, '<absent>')} vs {now.get(k, '<absent>')}"
        for k in sorted(before.keys() | now.keys())
        if before.get(k) != now.get(k)
    ]
    shown = changed[:4] + ([f"{len(changed) - 4} more"] if len(changed) > 4 else [])
    return [k for k in keys if k != "base_config_hash"] + (shown or ["base_config_hash"])


def tuned_data(cfg: DictConfig) -> dict[str, Any]:
    """Which data the study tunes on (``best.json`` carries it; ``experiment=tuned`` compares)."""
    return {
        "name": cfg.data.name,
        "preset": cfg.data.get("preset"),
        "root": str(Path(str(cfg.data.root)).resolve()),
    }


def identity(cfg: DictConfig, settings: Settings) -> dict[str, Any]:
    """What a study's trials depend on: a rerun with another value is another study."""
    from selfcross.training.resume import config_hash

    run_cfg = base_run_config(cfg)
    return {
        "model": cfg.model.name,
        "modality": cfg.modality.name,
        "folds": list(settings.folds),
        "seed": cfg.seed,
        "sampler_seed": settings.seed,
        "n_startup_trials": settings.n_startup_trials,
        "space": OmegaConf.to_container(cfg.tune.space, resolve=True),
        "base_config_hash": config_hash(run_cfg),
    } | ({} if settings.objective == "val/uwa" else {"objective": settings.objective})


# -- the study -----------------------------------------------------------------------------------


@dataclass
class StudyOutcome:
    """What :func:`run_study` did."""

    directory: Path
    n_trials: int
    ran: int
    best: dict[str, Any] | None


def study_config(overrides: list[str]) -> tuple[Path, DictConfig]:
    """The study folder (``hydra.sweep.dir``, ``multirun/<sweep_name>``) and the base
    configuration of every trial (``paths.output_dir``: that folder), from one composition."""
    merged = [o for o in overrides if o.split("=", 1)[0] == "tune.space"]
    cfg = compose([o for o in overrides if o not in merged], with_hydra=True)
    for line in merged:
        merge_space(cfg, line)
    directory = Path(str(cfg.hydra.sweep.dir))
    check_output_folder("hydra.sweep.dir", directory)  # the study's folder
    with open_dict(cfg):
        del cfg["hydra"]  # what a composition without it returns
    apply_overrides(cfg, [f"paths.output_dir={directory}"])
    return directory, cfg


def merge_space(cfg: DictConfig, line: str) -> None:
    """Merge a plain ``tune.space={...}`` override into the default space, as the docs say it
    does: Hydra refuses a key the default space lacks (and advises ``+tune.space``), while here
    every key is then checked by :func:`selfcross.training.search.parse_space` (one line, "no
    such configuration key", for a key the run configuration lacks)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        value = OverridesParser.create().parse_override(line).value()
    except HydraException as err:
        raise ConfigError(f"cannot parse {line!r}: {first_paragraph(str(err))}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{line}: expected a mapping such as tune.space={{KEY: {{type: ..}}}}")
    with open_dict(cfg):
        cfg.tune.space = OmegaConf.merge(cfg.tune.space, value)


def run_configs(base: DictConfig, values: dict[str, Any], folds, folder: Path) -> list[DictConfig]:
    """A trial's runs, one per tuning fold: copies of ``base`` with the trial's ``values``, the
    fold and its folder ``folder/fold<k>`` (the configuration, and so the hash, that composing
    them as overrides gives), without the study's settings and never testing. Each is checked
    (ConfigError)."""
    configs = []
    settings = [as_override(k, v) for k, v in values.items()]
    for fold in folds:
        cfg = copy.deepcopy(base)
        apply_overrides(
            cfg, [*settings, f"fold={fold}", f"paths.output_dir={folder / f'fold{fold}'}"]
        )
        with open_dict(cfg):
            cfg.pop("tune", None)  # the study's settings are not the run's
            cfg.run_test = False
        validate(cfg)
        configs.append(cfg)
    return configs


def run_study(overrides: list[str], run=None) -> StudyOutcome:
    """Run (or continue) the study of ``overrides`` (``experiment=tune`` added if absent) until
    ``tune.n_trials`` trials have finished. ``run`` trains one run (default
    :func:`selfcross.training.experiment.train_and_test`; tests replace it). With a shared
    ``tune.storage`` this process is one worker of the study
    (:func:`selfcross.training.shared.optimize_shared`)."""
    from filelock import FileLock, Timeout

    directory, cfg, settings, ident, setting = prepare_study(overrides)
    if setting.shared:
        study = open_study(cfg, settings, directory, ident, setting)
        with storage_said(setting):
            ran = optimize_shared(study, settings, cfg, directory, setting.shown,
                                  partial(_run_trial, run=run))  # fmt: skip
            best = write_best(study, directory, ident, settings.n_trials, setting.shown)
        return StudyOutcome(directory, settings.n_trials, ran, best)
    lock = FileLock(directory / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(
            f"{directory}: the study is running in another process ({directory / LOCK_FILE} "
            "is held)"
        ) from None
    try:
        with db_said(directory / STUDY_DB):
            study = open_study(cfg, settings, directory, ident, setting)
            retry_interrupted(study)
            ran = _optimize(study, settings, cfg, directory, run)
            best = write_best(study, directory, ident, settings.n_trials)
        return StudyOutcome(directory, settings.n_trials, ran, best)
    finally:
        lock.release()


def study_outcome(overrides: list[str], ran: int = 0) -> StudyOutcome:
    """The shared study of ``overrides`` as its storage holds it (``best.json`` written again):
    what the command that started the workers reports, or None-best if no trial completed.
    Also the check before the workers start: the settings and the storage (one line)."""
    directory, cfg, settings, ident, setting = prepare_study(overrides)
    study = open_study(cfg, settings, directory, ident, setting)
    with storage_said(setting):
        best = write_best(study, directory, ident, settings.n_trials, setting.shown)
    return StudyOutcome(directory, settings.n_trials, ran, best)


def prepare_study(overrides: list[str]):
    """The study's folder, base configuration, settings, identity and storage, all checked
    (ConfigError) before any work."""
    overrides = list(overrides)
    if not any(o.split("=")[0].lstrip("+") == "experiment" for o in overrides):
        overrides.insert(0, "experiment=tune")
    directory, cfg = study_config(overrides)
    settings = Settings.from_config(cfg)
    setting = parse_storage(cfg.tune.get("storage", SQLITE))
    workers = cfg.tune.get("workers", 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"tune.workers={workers}: expected a positive integer")
    launcher = cfg.tune.get("launcher", "local")
    if launcher not in ("local", "slurm"):
        raise ConfigError(f"tune.launcher={launcher}: expected local or slurm")
    if (workers > 1 or launcher == "slurm") and not setting.shared:
        raise ConfigError(
            f"tune.workers={workers}: the sqlite storage runs one process; give tune.storage "
            "a database URL (postgresql://user@host/db) or journal:<file>"
        )
    for key in ("heartbeat_s", "grace_s"):
        value = cfg.tune.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"tune.{key}={value}: expected a positive number of seconds")
    if cfg.tune.grace_s <= cfg.tune.heartbeat_s:
        raise ConfigError(
            f"tune.grace_s={cfg.tune.grace_s}: must exceed tune.heartbeat_s="
            f"{cfg.tune.heartbeat_s} (a live worker's trial would be failed)"
        )
    validate(cfg)  # the untuned cell itself must be a valid experiment
    directory.mkdir(parents=True, exist_ok=True)
    return directory, cfg, settings, identity(cfg, settings), setting


def open_study(cfg: DictConfig, settings: Settings, directory: Path, ident, setting):
    """The study in its storage, created with its identity, or refused if it was created with
    other settings."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if setting.shared:
        storage, existing = open_shared(setting, cfg.tune.heartbeat_s, cfg.tune.grace_s)
        name = directory.name  # a database holds many studies: the sweep's name is the study's
        where = f"tune.storage={setting.shown}, study {name}"
    else:
        storage, existing = open_storage(directory / STUDY_DB)  # a renamed folder keeps it
        name = existing[0] if len(existing) == 1 else directory.name
        where = str(directory / STUDY_DB)
    study = optuna.create_study(
        storage=storage, study_name=name, direction="maximize", load_if_exists=True
    )
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", ident)
        study.set_user_attr("base_settings", base_settings(cfg))
        study.set_user_attr("data", tuned_data(cfg))
        untuned = {p.key: OmegaConf.select(cfg, p.key) for p in settings.space}
        study.set_user_attr("untuned", untuned)
    elif stored != ident:
        before = study.user_attrs.get("base_settings")
        keys = differing(stored, ident, before, base_settings(cfg))
        raise ConfigError(
            f"{where}: this study was created with other settings "
            f"({', '.join(keys)} differ); choose another sweep_name or remove the folder"
        )
    return study


def _optimize(study, settings: Settings, base: DictConfig, directory: Path, run) -> int:
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
            state, value = _run_trial(trial, settings, base, directory, run)
        except (Interrupted, KeyboardInterrupt):
            # the signal's own line says what happened and what to do; this only adds which trial
            log.info("Study %s: trial %d stopped; it runs again first", directory, trial.number)
            raise
        study.tell(trial, value, state=state)
        ran += 1
        shown = f"{value:.4f}" if state == TrialState.COMPLETE else state.name.lower()
        values = trial.user_attrs.get("values", {})
        shown_values = " ".join(as_override(k, v) for k, v in values.items())
        print(f"trial {trial.number} ({done + 1} of {settings.n_trials}): {shown}  {shown_values}")
        write_best(study, directory, study.user_attrs.get("identity"), settings.n_trials)


def _run_trial(trial, settings: Settings, base: DictConfig, directory: Path, run):
    """Train the trial's runs; (state, value) for ``study.tell``."""
    from optuna.trial import TrialState

    try:
        values = suggest(trial, settings.space, base)
    except ConfigError as err:
        trial.set_user_attr("invalid", str(err))
        return TrialState.PRUNED, None
    trial.set_user_attr("values", values)
    folder = directory / TRIALS_DIR / trial_folder(trial)
    try:
        configs = run_configs(base, values, settings.folds, folder)
    except ConfigError as err:
        log.warning("Trial %d is invalid: %s", trial.number, err)
        trial.set_user_attr("invalid", str(err))
        return TrialState.PRUNED, None
    if run is None:
        from selfcross.training.experiment import train_and_test as run
    scores, fingerprints = [], {}
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
        score = None if record is None else getattr(record, OBJECTIVES[settings.objective])
        if score is None or not math.isfinite(score):
            trial.set_user_attr(
                "error", f"fold {fold}: no {settings.objective} ({outcome.status})"
            )
            return TrialState.FAIL, None
        scores.append(float(score))
        fingerprints[str(fold)] = str(record.data.fingerprint)
    trial.set_user_attr("fold_scores", dict(zip(map(str, settings.folds), scores, strict=True)))
    trial.set_user_attr("fingerprints", fingerprints)
    return TrialState.COMPLETE, sum(scores) / len(scores)
