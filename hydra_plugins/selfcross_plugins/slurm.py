"""``hydra/launcher=slurm``: Hydra's submitit SLURM launcher, with a driver that cannot hang.

Submitit's driver learns that a job ended from the job's result file or from ``sacct``. A job
that SLURM ends before it writes its result (``scancel``, a lost node, preemption without
requeue) leaves no result file, and without SLURM accounting ``sacct`` fails on every poll:
the driver then waits forever. This launcher submits the same job array, but waits for it
itself, asking ``squeue`` (which needs no accounting) which jobs SLURM still runs or queues. A
job that SLURM no longer lists and that left no result within ``vanished_grace_s`` (time for a
slow shared file system to show the file) counts as failed, with its state and log, so the
sweep ends with its summary and a non-zero exit. A requeued job (time limit, preemption) stays
listed, so it is waited for; between its step's end and SLURM listing it ``PENDING`` again it
can show a terminal state (``FAILED``) for a while, so a job whose log has a new "Requeued job"
line since it was last seen queued gets ``requeue_grace_s`` instead.

A driver stopped by SIGTERM or Ctrl-C cancels the jobs of its array that have not finished
(``cancel_on_interrupt``, the default): each gets SLURM's SIGTERM, keeps its last epoch's
checkpoint and writes no result, so the sweep's summary and the rerun that resumes them are the
same as for a sweep on this machine, and no job is left running that the rerun would find
locked. With ``cancel_on_interrupt=false`` the jobs go on and the driver says which.
"""

import dataclasses
import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from time import monotonic, sleep
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

from selfcross.errors import ConfigError, Interrupted, SelfcrossError

log = logging.getLogger(__name__)

ACTIVE_STATES = {
    "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
    "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "SPECIAL_EXIT", "STAGE_OUT",
    "RESV_DEL_HOLD", "POWER_UP_NODE",
}  # fmt: skip
"""``squeue`` states of a job that may still write its result."""


@dataclass
class SelfcrossSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.selfcross_plugins.slurm.SelfcrossSlurmLauncher"
    vanished_grace_s: float = 60.0
    """How long a job SLURM no longer lists may take to show its result file before it counts
    as failed (covers shared file systems that show new files late)."""
    requeue_grace_s: float = 300.0
    """How long a job whose log says it was just requeued may show a terminal state before it
    counts as failed (a busy controller lists it ``PENDING`` again late)."""
    poll_s: float = 5.0
    """Seconds between two looks at the jobs (result files and one ``squeue`` call)."""
    cancel_on_interrupt: bool = True
    """Whether a driver stopped by SIGTERM or Ctrl-C cancels its unfinished jobs (``scancel``)."""


ConfigStore.instance().store(
    group="hydra/launcher", name="selfcross_slurm", node=SelfcrossSlurmConf, provider="selfcross"
)


class JobVanished(Exception):
    """SLURM ended a job that wrote no result (cancelled, node lost, out of requeues)."""


class SubmitFailed(SelfcrossError):
    """SLURM did not accept the jobs; nothing was submitted."""


class JobCrashed(Exception):
    """The job's process failed outside the experiment (submitit's error result, e.g. out of
    requeues: "timed-out too many times")."""


def squeue_states(job_ids: Sequence[str]) -> dict[str, str] | None:
    """``{job id: state}`` of the given jobs (array ids expand to their tasks) that SLURM still
    knows; None when ``squeue`` cannot answer (controller unreachable)."""
    cmd = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T",
           f"--jobs={','.join(job_ids)}"]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        log.debug("squeue failed: %s", err)
        return None
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:  # every job has left SLURM's memory
            return {}
        log.debug("squeue failed: %s", proc.stderr.strip())
        return None
    states = {}
    for line in proc.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id:
            states[job_id] = state.strip()
    return states


def sacct_state(job_id: str) -> str | None:
    """The job's final state from accounting, or None (accounting off or unreachable)."""
    cmd = ["sacct", "--noheader", "--parsable2", "--allocations", "--format=State",
           f"--jobs={job_id}"]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    # one line per allocation, the last is the latest run: "COMPLETED", "CANCELLED by 0", ...
    lines = [ln.split()[0] for ln in proc.stdout.splitlines() if ln.strip()]
    return lines[-1] if proc.returncode == 0 and lines and lines[-1].isupper() else None


def _sbatch_error(err: Exception) -> str:
    """sbatch's own message out of submitit's error (its last ``sbatch: error:`` line)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    errors = [ln.split(":", 2)[-1].strip() for ln in lines if ln.startswith("sbatch: ")]
    return (errors or lines or [type(err).__name__])[-1]


def _requeues(job: Any) -> int:
    """How many times submitit's log of the job says it requeued it (time limit, preemption)."""
    try:
        return Path(job.paths.stdout).read_text(errors="replace").count("Requeued job ")
    except OSError:
        return 0


def _last_line(err: Exception) -> str:
    """The line of a submitit error that names what went wrong: the last line of the job's
    traceback (between submitit's dashed lines), else the first line."""
    text = str(err)
    parts = text.split("-" * 22)
    trace = parts[1] if len(parts) >= 3 else text
    lines = [ln.strip() for ln in trace.splitlines() if ln.strip()]
    return (lines[-1] if len(parts) >= 3 else lines[0]) if lines else type(err).__name__


class SelfcrossSlurmLauncher(SlurmLauncher):
    def __init__(
        self,
        vanished_grace_s: float = 60.0,
        requeue_grace_s: float = 300.0,
        poll_s: float = 5.0,
        cancel_on_interrupt: bool = True,
        **params: Any,
    ):
        super().__init__(**params)
        self.vanished_grace_s = vanished_grace_s
        self.requeue_grace_s = requeue_grace_s
        self.poll_s = poll_s
        self.cancel_on_interrupt = cancel_on_interrupt

    def _executor(self) -> Any:
        import submitit

        params = dict(self.params)
        executor = submitit.AutoExecutor(
            folder=params.pop("submitit_folder"),
            cluster="slurm",
            slurm_max_num_timeout=params.pop("max_num_timeout"),
        )
        generic = {f.name for f in dataclasses.fields(BaseQueueConf)}
        executor.update_parameters(
            **{(k if k in generic else f"slurm_{k}"): v for k, v in params.items()}
        )
        return executor

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        assert self.config is not None
        if min(self.vanished_grace_s, self.requeue_grace_s) < 0 or self.poll_s <= 0:
            raise ConfigError(
                f"hydra.launcher.vanished_grace_s={self.vanished_grace_s}, "
                f"requeue_grace_s={self.requeue_grace_s}, poll_s={self.poll_s}: "
                "the graces must be >= 0 and the poll interval > 0"
            )
        try:
            executor = self._executor()
        except RuntimeError as err:  # submitit finds no SLURM commands
            raise SubmitFailed(f"cannot submit to SLURM: {err}") from None
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        state = Singleton.get_state()
        args = []  # one tuple of the parent's __call__ arguments per job
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            args.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", state))
        try:
            jobs = executor.map_array(self, *zip(*args, strict=True))
        except Exception as err:  # sbatch refused: a bad partition, account, qos, limit...
            from submitit.core.utils import FailedJobError

            if not isinstance(err, FailedJobError | OSError):
                raise
            raise SubmitFailed(f"sbatch refused the sweep's jobs: {_sbatch_error(err)}") from None
        if jobs:
            log.info(
                "Submitted SLURM job array %s (%d jobs); logs in %s",
                jobs[0].job_id.split("_")[0],
                len(jobs),
                jobs[0].paths.folder.parent,
            )
        try:
            return self.wait(jobs, [list(o) for o in job_overrides])
        except (KeyboardInterrupt, Interrupted):  # the sweeper prints the summary
            self._stop(jobs)
            raise

    def _stop(self, jobs: Sequence[Any]) -> None:
        """Cancel (or name) the jobs of a stopped driver that have not written their result."""
        unfinished = [job.job_id for job in jobs if not job.paths.result_pickle.exists()]
        if not unfinished:
            return
        arrays = ",".join(sorted({job_id.split("_")[0] for job_id in unfinished}))
        if not self.cancel_on_interrupt:
            log.warning(
                "%d SLURM jobs of array %s go on (cancel_on_interrupt=false): they write their "
                "results into the sweep folder; rerun the same command once they have ended "
                "(squeue -j %s)", len(unfinished), arrays, arrays,
            )  # fmt: skip
            return
        try:
            proc = subprocess.run(["scancel", *unfinished], capture_output=True, text=True,
                                  timeout=60)  # fmt: skip
            failed = proc.stderr.strip() if proc.returncode != 0 else ""
        except (OSError, subprocess.TimeoutExpired) as err:
            failed = str(err)
        if failed:
            log.error("could not cancel the unfinished SLURM jobs (%s): scancel %s by hand",
                      failed, " ".join(unfinished))  # fmt: skip
        else:
            log.warning(
                "Cancelled %d unfinished SLURM jobs (%s): each keeps its last epoch's "
                "checkpoint", len(unfinished), " ".join(unfinished),
            )  # fmt: skip

    def wait(self, jobs: Sequence[Any], overrides: Sequence[list[str]]) -> list[JobReturn]:
        """Every job's return, once each has written its result or left SLURM without one."""
        returns: list[JobReturn | None] = [None] * len(jobs)
        gone_since: dict[int, float] = {}
        last_state: dict[int, str] = {}
        requeues_when_queued: dict[int, int] = {}  # "Requeued job" lines when last seen queued
        array_ids = sorted({job.job_id.split("_")[0] for job in jobs})
        squeue_down = False
        while True:
            for i, job in enumerate(jobs):
                if returns[i] is None and job.paths.result_pickle.exists():
                    returns[i] = self._read_return(job, overrides[i])
            waiting = [i for i, r in enumerate(returns) if r is None]
            if not waiting:
                return returns  # type: ignore[return-value]
            states = squeue_states(array_ids)
            now = monotonic()
            if (states is None) != squeue_down:  # say when squeue stops and starts answering
                squeue_down = states is None
                log.warning(
                    "squeue does not answer; waiting for SLURM"
                    if squeue_down
                    else "squeue answers again"
                )
            if states is not None:
                for i in waiting:
                    state = states.get(jobs[i].job_id)
                    if state in ACTIVE_STATES:
                        gone_since.pop(i, None)
                        requeues_when_queued[i] = _requeues(jobs[i])
                        continue
                    last_state[i] = state or last_state.get(i, "")
                    requeued = _requeues(jobs[i]) > requeues_when_queued.get(i, 0)
                    grace = self.requeue_grace_s if requeued else self.vanished_grace_s
                    if now - gone_since.setdefault(i, now) >= grace:
                        if jobs[i].paths.result_pickle.exists():
                            returns[i] = self._read_return(jobs[i], overrides[i])
                        else:
                            returns[i] = self._vanished(jobs[i], overrides[i], last_state[i])
                if all(r is not None for r in returns):
                    continue  # read the last results at the top
            sleep(self.poll_s)

    @staticmethod
    def _log_path(job: Any, stdout: bool = False) -> str:
        """submitit's log of the job: stdout holds the run's own log (and its one-line error),
        stderr tracebacks and SLURM's messages (``CANCELLED``, time limit)."""
        return str(job.paths.stdout if stdout else job.paths.stderr)

    def _read_return(self, job: Any, overrides: list[str]) -> JobReturn:
        from submitit.core.utils import FailedJobError, UncompletedJobError

        try:
            ret = job.results()[0]
            ret.log_path = self._log_path(job, stdout=True)  # read by the sweeper's summary
        except (FailedJobError, UncompletedJobError) as err:
            ret = self._failed(
                overrides, JobCrashed(f"SLURM job {job.job_id} failed: {_last_line(err)}"), job
            )
        return ret

    def _vanished(self, job: Any, overrides: list[str], state: str) -> JobReturn:
        state = sacct_state(job.job_id) or state
        why = f"state {state}" if state else "SLURM no longer knows it: cancelled or node lost?"
        err = JobVanished(f"SLURM job {job.job_id} ended without a result ({why})")
        return self._failed(overrides, err, job)

    def _failed(self, overrides: list[str], err: Exception, job: Any) -> JobReturn:
        ret = JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=err)
        ret.log_path = self._log_path(job)
        log.warning("%s; log: %s", err, ret.log_path)
        return ret
