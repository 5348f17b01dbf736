"""The selfcross sweeper: Hydra's basic grid, checked before anything is launched.

What Hydra's ``basic`` sweeper lacks, and this one adds:

* it composes every job's configuration first and refuses the whole sweep if any job is invalid
  (e.g. a cross model on one modality), or, with ``skip_invalid: true`` (the paper presets),
  drops those jobs and says which;
* it does not launch jobs whose ``result.json`` already exists for the same configuration;
* it keeps going when a job fails, and ends with a summary and a non-zero exit if any failed
  (the basic sweeper stops at the first failed batch).

Hydra internals, and why: the grid (sweep parameters, ``range()``/lists, the cartesian product,
batching by ``max_batch_size``) is the basic sweeper's, reused by subclassing
``hydra._internal.core_plugins.basic_sweeper.BasicSweeper`` (its ``_parse_config``,
``split_arguments`` and ``split_overrides_to_chunks``) rather than copied; Hydra has no public
base class for it. A failed job's exception is read from ``JobReturn._return_value``, because
the public ``return_value`` raises it (and stops the sweep). Tested with hydra-core 1.3.8
(``TESTED_HYDRA``, the version constraints.txt pins); under another version it logs a warning.
"""

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from hydra.errors import HydraException

log = logging.getLogger(__name__)

TESTED_HYDRA = "1.3.8"
"""The hydra-core version this sweeper's use of Hydra internals was tested with."""


@dataclass
class SelfcrossSweeperConf:
    _target_: str = "hydra_plugins.selfcross_plugins.sweeper.SelfcrossSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None
    skip_invalid: bool = False


ConfigStore.instance().store(
    group="hydra/sweeper", name="selfcross", node=SelfcrossSweeperConf, provider="selfcross"
)


class SweepFailed(HydraException):
    """Some jobs of the sweep failed; the others completed."""

    exit_code = 1


def _exit_with(err: Exception) -> None:
    """One line on stderr and the error's exit status (a traceback with HYDRA_FULL_ERROR=1)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise err
    print(f"error: {err}", file=sys.stderr)
    sys.exit(getattr(err, "exit_code", 2))


def _describe(overrides: list[str]) -> str:
    return " ".join(o for o in overrides if not o.startswith("hydra."))


def _job_log(result: Any) -> str | None:
    """Where a job's log is: its launcher's (SLURM: submitit's stderr file) or Hydra's."""
    path = getattr(result, "log_path", None)
    if path is None and result.hydra_cfg is not None:
        job = result.hydra_cfg.hydra
        path = Path(job.runtime.output_dir) / f"{job.job.name}.log"
        path = path if path.is_file() else None
    return str(path) if path is not None else None


class Progress:
    """Lines saying how far the checks of a large sweep are (composing each job's configuration
    takes a few tenths of a second: thousands of jobs would be minutes of silence)."""

    FIRST_AFTER = 100
    """A sweep of at least this many jobs says that it is checking them..."""
    EVERY_S = 10.0
    """...and how far it is, every this many seconds."""

    def __init__(self, n_jobs: int):
        import time

        self.n_jobs, self.done, self.clock = n_jobs, 0, time.monotonic
        self.last = self.clock()
        if n_jobs >= self.FIRST_AFTER:
            log.info("Checking the %d jobs of the sweep before launching any", n_jobs)

    def step(self) -> None:
        """One more job checked (called before each)."""
        if self.done and self.clock() - self.last >= self.EVERY_S:
            self.last = self.clock()
            log.info("Checked %d of %d jobs", self.done, self.n_jobs)
        self.done += 1


def sweep_group_size(cfg) -> int:
    """``seed_group`` of a sweep: its count, or for ``auto`` the largest that fits (measured
    once, on the first job's configuration)."""
    from selfcross.errors import ConfigError
    from selfcross.training.groupplan import auto_size, group_value, memory_budget

    value = group_value(cfg)
    if isinstance(value, list):
        raise ConfigError(f"seed_group={value}: a sweep takes a count or auto, not a list")
    if value != "auto":
        return value
    from selfcross.training.gpus import run_device

    device = run_device(cfg.trainer)  # where the groups train: a GPU's free memory there
    size = auto_size(cfg, memory_budget(device), device=device)
    log.info("seed_group=auto: groups of %d seeds fit the memory of %s", size, device)
    return size


def _is_seed(override: str, key: str) -> bool:
    return override.lstrip("+~").split("=", 1)[0] == key


def group_jobs(jobs: list[list[str]], seeds: list[int], size: int):
    """The jobs of one cell (every override but the seed) in groups of up to ``size`` seeds,
    one job each (``seed_group=[s1,...]``, ``seed=s1``); returns the jobs and their run counts."""
    from selfcross.training.groupplan import form_groups

    cells = [tuple(o for o in job if not _is_seed(o, "seed")
                   and not _is_seed(o, "seed_group")) for job in jobs]  # fmt: skip
    grouped, members = [], []
    for group in form_groups(seeds, cells, size):
        listed = ",".join(str(seeds[i]) for i in group)
        first = [o for o in jobs[group[0]] if not _is_seed(o, "seed_group")]
        grouped.append([*first, f"seed_group=[{listed}]"])
        members.append(len(group))
    return grouped, members


class SelfcrossSweeper(BasicSweeper):
    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        skip_invalid: bool = False,
    ):
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.skip_invalid = skip_invalid
        if hydra.__version__ != TESTED_HYDRA:
            log.warning(
                "The selfcross sweeper builds on Hydra internals tested with hydra-core %s; "
                "this is %s (install with -c constraints.txt)",
                TESTED_HYDRA,
                hydra.__version__,
            )

    def plan(self, arguments: list[str]) -> tuple[list[list[str]], int, int]:
        """All valid jobs not yet complete; also how many were invalid and how many complete."""
        from selfcross.config import (
            check_output_folder,
            check_sweep_name,
            first_paragraph,
            validate,
        )
        from selfcross.errors import ConfigError
        from selfcross.training.resume import config_hash, finished_run
        from selfcross.training.rundir import check_owned
        from selfcross.training.tuned import apply_tuned

        check_sweep_name(self.config.get("sweep_name"))
        check_output_folder("hydra.sweep.dir", self.config.hydra.sweep.dir)

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        jobs = self.split_arguments(overrides, None)[0]
        todo, invalid, complete = [], [], 0
        self.todo_runs = []  # (folder, config hash) of each run to do
        self.seeds, group_size = [], None
        loader = self.hydra_context.config_loader
        progress = Progress(len(jobs))
        for job in jobs:
            progress.step()
            try:
                cfg = loader.load_sweep_config(self.config, list(job))
            except HydraException as err:
                raise ConfigError(f"[{_describe(job)}]: {first_paragraph(str(err))}") from None
            try:
                cfg = apply_tuned(cfg)  # experiment=tuned: hashed as the job will run
                validate(cfg)
            except ConfigError as err:
                invalid.append((job, str(err)))
                continue
            out_dir = Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir)
            check_output_folder("hydra.sweep.dir/hydra.sweep.subdir", out_dir)
            check_owned(out_dir, bool(cfg.resume.get("allow_foreign_dir", False)))
            if finished_run(cfg, out_dir, config_hash(cfg)) is not None:
                complete += 1
                continue
            todo.append(list(job))
            self.todo_runs.append((out_dir, config_hash(cfg)))
            self.seeds.append(int(cfg.seed))
            if group_size is None and cfg.get("seed_group") is not None:
                group_size = sweep_group_size(cfg)
        if invalid and not self.skip_invalid:
            first_job, first_error = invalid[0]
            raise ConfigError(
                f"{len(invalid)} of {len(jobs)} jobs are invalid, nothing was launched; "
                f"first: [{_describe(first_job)}]: {first_error}"
            )
        for job, error in invalid:
            log.info("Skipping an invalid combination [%s]: %s", _describe(job), error)
        todo = self._make_job_folders(todo)
        self.members = [1] * len(todo)  # runs per job
        if group_size is not None:
            todo, self.members = group_jobs(todo, self.seeds, group_size)
        return todo, len(invalid), complete

    def sweep(self, arguments: list[str]) -> Any:
        from selfcross.errors import Interrupted, SelfcrossError
        from selfcross.utils import atomic, signals

        assert self.config is not None and self.launcher is not None
        try:
            todo, n_invalid, n_complete = self.plan(arguments)
        except SelfcrossError as err:
            _exit_with(err)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        try:  # a record of the sweep only: the jobs say for themselves what they cannot write
            atomic.save_yaml(self.config, sweep_dir / "multirun.yaml")
        except SelfcrossError as err:
            log.warning("%s", err)
        n_runs = sum(self.members) + len(self.unmade)
        log.info(
            "Sweep %s: %d jobs to run, %d already complete, %d invalid skipped",
            sweep_dir,
            n_runs,
            n_complete,
            n_invalid,
        )
        if sum(self.members) != len(todo):
            log.info("Seed groups: the %d runs train as %d jobs", sum(self.members), len(todo))
        sizes = dict(zip(map(tuple, todo), self.members, strict=True))
        batches = list(self.split_overrides_to_chunks(todo, self.max_batch_size)) if todo else []
        failed = list(self.unmade)  # runs whose folder could not be created: not launched
        returns, busy, job_idx, n_failed = [], 0, 0, len(failed)
        done_elsewhere = 0  # jobs another process finished between the checks and the launch
        guard = signals.interruptible()  # SIGTERM/SIGINT between jobs as well as in them
        guard.__enter__()
        signals.phase("between the sweep's jobs")
        try:
            for batch in batches:
                try:
                    results = self.launcher.launch(batch, initial_job_idx=job_idx)
                except SelfcrossError as err:  # e.g. SLURM refused the jobs
                    _exit_with(err)
                for job, result in zip(batch, results, strict=True):
                    if result.status == JobStatus.FAILED:
                        error = result._return_value
                        first = str(error).splitlines()[0] if str(error) else repr(error)
                        log_path = _job_log(result)
                        message = f"{first}; log: {log_path}" if log_path else first
                        failed.append((job, message))
                        n_failed += sizes[tuple(job)]
                        continue
                    value = result._return_value or {}
                    statuses = value.get("members") or [value.get("status")]
                    busy += statuses.count("busy")
                    done_elsewhere += statuses.count("skipped")
                job_idx += len(batch)
                returns.append(results)
        except (KeyboardInterrupt, SystemExit, Interrupted) as stop:
            self._interrupted(stop, sweep_dir, len(self.todo_runs), n_complete)
        finally:
            guard.__exit__(None, None, None)
        for job, error in failed:
            log.error("Failed: [%s]: %s", _describe(job), error)
        log.info(
            "Sweep %s finished: %d run, %d failed, %d running in another process, "
            "%d already complete, %d invalid skipped",
            sweep_dir,
            n_runs - n_failed - busy - done_elsewhere,
            n_failed,
            busy,
            n_complete + done_elsewhere,
            n_invalid,
        )
        if failed:
            _exit_with(
                SweepFailed(
                    f"{n_failed} of {n_runs} jobs failed (first: "
                    f"[{_describe(failed[0][0])}]: {failed[0][1]}); rerun the same command to "
                    "retry them, finished jobs are kept"
                )
            )
        return returns

    def _make_job_folders(self, todo: list[list[str]]) -> list[list[str]]:
        """Create every run's folder (and so the sweep's) before launching any; returns the
        runs whose folder exists, and keeps the others in ``self.unmade`` with their one line.
        Hydra's launchers create these folders outside a job's error handling, where a full
        disk (no blocks or no inodes left) ended the whole sweep with a traceback and no
        summary; created here, a folder that cannot be made fails its own run, which is then
        not launched (nor grouped)."""
        from selfcross.errors import WriteError
        from selfcross.utils import atomic

        kept, runs, seeds, self.unmade = [], [], [], []
        for job, run, seed in zip(todo, self.todo_runs, self.seeds, strict=True):
            try:
                atomic.make_folder(run[0])
            except WriteError as err:
                self.unmade.append((job, str(err)))
                continue
            kept.append(job)
            runs.append(run)
            seeds.append(seed)
        self.todo_runs, self.seeds = runs, seeds
        return kept

    def _interrupted(self, stop: BaseException, sweep_dir: Path, n_todo: int, n_complete: int):
        """The summary of a sweep stopped by a signal (in a job or between jobs), and its exit
        status: 143 (SIGTERM) or 130 (SIGINT), or 0 when every job had finished."""
        from selfcross.training.resume import completed_result
        from selfcross.utils import signals

        signum = signals.received()
        if signum is not None:
            code = signals.exit_status(signum)
        elif isinstance(stop, KeyboardInterrupt):
            code = 130
        else:
            code = getattr(stop, "exit_code", getattr(stop, "code", 1))
        if code not in (130, 143):
            raise stop
        done = sum(completed_result(d, h) is not None for d, h in self.todo_runs)
        if done == n_todo:
            log.info(
                "Sweep %s finished: %d run, %d already complete (interrupted after its last "
                "job had finished; nothing to redo)", sweep_dir, done, n_complete,
            )  # fmt: skip
            sys.exit(0)
        log.error(
            "Sweep %s interrupted: %d of %d jobs finished (and %d complete before); rerun "
            "the same command to resume, finished jobs are kept",
            sweep_dir, done, n_todo, n_complete,
        )  # fmt: skip
        sys.exit(code)
