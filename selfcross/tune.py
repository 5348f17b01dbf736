"""Tune one (model, modality) cell with Optuna: the paper's hypothesis that its bi-modal models,
never tuned for their own case, lose accuracy to that.

    python -m selfcross.tune model=cross modality=TA                  # 40 trials x 5 folds
    python -m selfcross.tune model=self modality=TV tune.n_trials=20 data=iemocap data.root=...
    python -m selfcross.tune model=cross modality=TA tune.folds=[1] trainer.max_epochs=4

Arguments are Hydra overrides of ``conf/`` with ``experiment=tune`` added. The study is stored
in ``multirun/<sweep_name>/study.db`` (default ``tune-<data>-<model>-<modality>``); rerunning the
same command continues it. The objective is the mean best-validation value of the selection
metric (``monitor.metric``: UWA for IEMOCAP, weighted F1 for MELD) over ``tune.folds``;
the test split is never evaluated. Afterwards: ``python -m selfcross.tables tuning --results
multirun/<sweep_name>``, and ``experiment=tuned`` trains the full protocol with the best
settings. ``tune.storage`` (a database) and ``tune.workers=N`` run one study in N processes
(:mod:`selfcross.training.workers`). The work is :func:`selfcross.training.tuning.run_study`.
"""

from __future__ import annotations

import logging
import sys

from selfcross.config import check_group_choices, hydra_arguments, shown_config, user_errors
from selfcross.errors import ConfigError
from selfcross.utils import signals


def _is_list(arg: str) -> bool:
    """A sweep list such as ``model=self,cross`` (a bracketed value is one list value)."""
    value = arg.split("=", 1)[-1]
    return "," in value and not value.startswith(("[", "{"))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    with user_errors():
        if any(a in ("-m", "--multirun") or _is_list(a) for a in argv):
            raise ConfigError(
                "python -m selfcross.tune tunes one cell: give one model and one modality "
                "(no -m, no comma lists); run one command per cell"
            )
        check_group_choices(argv)
        arguments = hydra_arguments(argv)
        if arguments is not None and (arguments.cfg or arguments.info):
            if arguments.info:
                raise ConfigError(
                    "--info: python -m selfcross.run experiment=tune --info shows what Hydra "
                    "knows of this configuration"
                )
            overrides = list(arguments.overrides)
            if not any(o.split("=")[0].lstrip("+") == "experiment" for o in overrides):
                overrides.insert(0, "experiment=tune")
            print(shown_config(arguments, overrides), flush=True)
            return
        from selfcross.training.tuning import run_study

        signals.phase("while tuning", "rerun the same command to continue the study")
        outcome = _workers(argv) or run_study(argv)
        signals.finished(f"the study ({outcome.directory})")
        best = outcome.best
        if best is None:
            print(f"study {outcome.directory}: no trial completed", flush=True)
            sys.exit(1)
        settings = " ".join(f"{k}={v}" for k, v in best["settings"].items())
        print(
            f"study {outcome.directory}: {best['n_finished']} of {outcome.n_trials} trials "
            f"finished ({outcome.ran} now); best trial {best['trial']}: mean best "
            f"{best.get('objective', 'val/uwa')} {best['value']:.4f} over folds "
            f"{best['folds']}  {settings}",
            flush=True,
        )


def _workers(argv: list[str]):
    """With ``tune.workers=N`` (N > 1): the study checked and its storage opened here, then N
    worker processes (:mod:`selfcross.training.workers`); the study's outcome, or None when
    this process is to run the study itself."""
    import os

    from selfcross.training.tuning import prepare_study, study_outcome
    from selfcross.training.workers import WORKER_ENV, run_workers

    given = [a for a in argv if a.lstrip("+").startswith(("tune.workers=", "tune.launcher="))]
    if os.environ.get(WORKER_ENV) is not None or given in ([], ["tune.workers=1"]):
        return None
    directory, cfg, _, _, setting = prepare_study(argv)
    if cfg.tune.launcher == "slurm":
        return _slurm_workers(argv, directory, cfg, setting)
    if cfg.tune.workers == 1:
        return None
    study_outcome(argv)  # the storage reached before any work (one line if not)
    statuses = run_workers(argv, cfg.tune.workers)
    failed = [f"worker {i}: {s}" for i, s in enumerate(statuses) if s != 0]
    if failed:
        raise WorkersFailed(
            f"tune.storage={setting.masked}: {len(failed)} of {len(statuses)} workers failed "
            f"({', '.join(failed)}); rerun the same command to continue the study"
        )
    return study_outcome(argv)


def _slurm_workers(argv: list[str], directory, cfg, setting):
    """``tune.launcher=slurm``: the workers as SLURM jobs with ``hydra/launcher=slurm``'s
    settings (``hydra.launcher.*`` overrides apply), waited for through ``squeue``."""
    from omegaconf import OmegaConf

    from selfcross.config import compose
    from selfcross.training.tuning import study_outcome
    from selfcross.training.workers import slurm_workers, wait_for_jobs

    study_outcome(argv)  # the storage reached before any work (one line if not)
    ours = [a for a in argv if a.startswith(("hydra/launcher=", "hydra.launcher."))]
    hydra_cfg = compose(["hydra/launcher=slurm", *ours], with_hydra=True)
    launcher = OmegaConf.to_container(hydra_cfg.hydra.launcher, resolve=False)
    folder = directory / ".submitit" / "%j"
    ids = slurm_workers(argv, cfg.tune.workers, setting, launcher, folder)
    print(f"{len(ids)} SLURM jobs: {', '.join(ids)} (logs: {folder.parent})", flush=True)
    wait_for_jobs(ids, float(launcher.get("poll_s") or 5))
    outcome = study_outcome(argv)
    n_finished = (outcome.best or {}).get("n_finished", 0)
    if n_finished < outcome.n_trials:
        raise WorkersFailed(
            f"tune.storage={setting.masked}: the SLURM jobs ended with {n_finished} of "
            f"{outcome.n_trials} trials finished (logs: {folder.parent}); rerun the same "
            "command to continue the study"
        )
    return outcome


class WorkersFailed(ConfigError):
    """Some worker ended with an error (each said why on its own line)."""

    exit_code = 1


if __name__ == "__main__":
    main()
