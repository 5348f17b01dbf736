"""One worker of a study in a shared storage (a database or a journal file,
:mod:`selfcross.training.storage`), run by as many processes as ``tune.workers`` starts.

Failure handling is Optuna's own: the loop is ``Study.optimize``, which runs a heartbeat thread
beside each trial (database storages) and, before each new trial, calls ``fail_stale_trials``:
a trial whose worker stopped beating for ``tune.grace_s`` seconds (killed, its machine gone) is
marked failed and enqueued once more with the same parameters by the storage's
``RetryHeartbeatStaleTrialCallback(max_retry=1)``. The retry carries the failed trial's number
(Optuna's ``failed_trial`` system attribute): it runs in that trial's folder, so finished fold
runs are skipped as complete and an interrupted fold resumes from its ``last.ckpt``, as a rerun
of a single-process study does. A worker stopped by a signal (Ctrl-C, SIGTERM) calls the same
callback for its trial before it ends. ``n_trials`` counts finished trials across workers (a
retried one excluded); each worker stops after the trial that reaches it, so with N workers up
to N - 1 trials already under way finish beyond it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from selfcross.errors import Interrupted
from selfcross.training.search import as_override
from selfcross.training.storage import storage_errors
from selfcross.training.study import n_counted, trial_folder
from selfcross.training.tuned import write_best
from selfcross.training.workers import WORKER_ENV

WORKER_SEED_STRIDE = 1_000_003
"""Worker i's sampler seeds are offset by i times this (worker 0 seeds as one process does)."""

log = logging.getLogger("selfcross")


class _TrialFailed(Exception):
    """A trial's run failed (its reason is in the trial's ``error``): FAIL, the study goes on."""


def optimize_shared(study, settings, base, directory: Path, storage: str, run_trial) -> int:
    """One worker of a shared study: Optuna's ``Study.optimize``, which beats the trial's
    heartbeat while it runs and, before asking for a trial, fails the trials whose heartbeat
    stopped and retries each once (the storage's ``RetryHeartbeatStaleTrialCallback``); until
    ``n_trials`` trials count, across all workers. Returns the number of trials run here."""
    import optuna
    from optuna.trial import TrialState

    ran = 0

    worker = int(os.environ.get(WORKER_ENV) or 0)

    def reseed() -> int:
        # Seeded by the study's trial count (with no failure: its finished trials, as a
        # single-process study seeds), apart per worker. TPE's start-up draws depend on the
        # seed alone, so no two draws of the study may share one: counting every trial (a
        # killed worker's RUNNING one included) keeps a new worker 0 from drawing the killed
        # worker's settings again while that trial waits to be found stale and retried.
        trials = study.get_trials(deepcopy=False)
        study.sampler = optuna.samplers.TPESampler(
            seed=settings.seed + len(trials) + WORKER_SEED_STRIDE * worker,
            n_startup_trials=settings.n_startup_trials,
        )
        return n_counted(trials)

    def objective(trial):
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        original = frozen.system_attrs.get("failed_trial")  # Optuna's retry of a stale trial
        if original is not None:
            trial.set_user_attr("retry_of", original)
            trial.set_user_attr("folder", trial_folder(frozen) if "folder" in frozen.user_attrs
                                else f"{original:03d}")  # fmt: skip
        try:
            state, value = run_trial(trial, settings, base, directory)
        except (Interrupted, KeyboardInterrupt):
            # stopped here (not killed): retried as a stale trial would be, in its folder
            log.info("Trial %d stopped in this worker: it is retried", trial.number)
            frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)(study, frozen)
            raise
        if state == TrialState.PRUNED:
            raise optuna.TrialPruned()
        if state == TrialState.FAIL:
            raise _TrialFailed(trial.user_attrs.get("error", "failed"))
        return value

    def after(study, trial) -> None:
        nonlocal ran
        ran += 1
        done = reseed()
        shown = f"{trial.value:.4f}" if trial.state == TrialState.COMPLETE else trial.state.name
        values = " ".join(as_override(k, v) for k, v in trial.user_attrs.get("values", {}).items())
        print(f"trial {trial.number} ({done} of {settings.n_trials} done): {shown.lower()}  "
              f"{values}", flush=True)  # fmt: skip
        write_best(study, directory, study.user_attrs.get("identity"), settings.n_trials, storage)
        if done >= settings.n_trials:
            study.stop()

    previous = threading.excepthook

    def quiet(args) -> None:  # a heartbeat that cannot reach the database: said by the worker
        if not isinstance(args.exc_value, storage_errors()):
            previous(args)

    threading.excepthook = quiet
    try:
        if reseed() < settings.n_trials:
            study.optimize(objective, callbacks=[after], catch=(_TrialFailed,))
    finally:
        threading.excepthook = previous
    return ran
