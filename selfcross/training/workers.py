"""``tune.workers=N``: N worker processes of one study on this machine.

``python -m selfcross.tune`` is not a Hydra multirun app: with ``tune.workers=N`` (N > 1) the
command checks the configuration and opens the study's shared storage once (a wrong URL is one
line before any work), then starts the same command N times as child processes, each with
``tune.workers=1`` (one worker of the study, :mod:`selfcross.training.shared`), and waits for
them. With GPUs, worker i sees GPU ``i % gpus`` only (``CUDA_VISIBLE_DEVICES``), as the
``local_gpus`` launcher spreads its jobs; on a CPU each worker gets an even share of the cores
(``SELFCROSS_THREADS``, :func:`selfcross.training.runtime.threads_per_job`). A signal to the
command is passed on to its workers (each retries its trial on its way out). The workers'
output goes to the command's, each line as the worker printed it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

WORKER_ENV = "SELFCROSS_TUNE_WORKER"
"""Set in a worker's environment (its index): a worker never starts workers of its own."""


@dataclass(frozen=True)
class WorkerPlan:
    """What worker ``index`` of ``n`` is given: its GPU (None on a CPU) and its CPU threads."""

    index: int
    gpu: int | None
    threads: int


def plan_workers(n: int, gpus: int, cores: int) -> list[WorkerPlan]:
    """The workers' GPUs (worker i on GPU ``i % gpus``) and CPU threads (the cores split)."""
    from selfcross.training.runtime import threads_per_job

    return [
        WorkerPlan(i, (i % gpus) if gpus > 0 else None, threads_per_job(n, cores))
        for i in range(n)
    ]


def worker_env(plan: WorkerPlan, base: dict[str, str]) -> dict[str, str]:
    """A worker's environment: the command's, with its GPU and thread share."""
    from selfcross.training.runtime import ENV_THREADS

    env = {**base, WORKER_ENV: str(plan.index), ENV_THREADS: str(plan.threads)}
    if plan.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(plan.gpu)
    return env


def run_workers(argv: list[str], n: int) -> list[int]:
    """Run ``python -m selfcross.tune argv tune.workers=1`` ``n`` times at once; the workers'
    exit statuses (a signal's number negated, as subprocess reports it)."""
    from selfcross.training.gpus import visible_gpu_count

    args = [a for a in argv if not a.lstrip("+").startswith("tune.workers=")]
    args.append("tune.workers=1")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible_gpu_count()
    names = visible.split(",") if visible else [str(i) for i in range(gpus)]
    procs = []
    for plan in plan_workers(n, gpus, os.cpu_count() or 1):
        env = worker_env(plan, {**os.environ, "PYTHONUNBUFFERED": "1"})
        if plan.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = names[plan.gpu]
        procs.append(subprocess.Popen([sys.executable, "-m", "selfcross.tune", *args], env=env))
    try:
        return [p.wait() for p in procs]
    except BaseException:  # Interrupted, KeyboardInterrupt: the workers end their trials too
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        raise


# -- workers as SLURM jobs (tune.launcher=slurm) -------------------------------------------------

SBATCH_KEYS = {
    "partition": "partition", "timeout_min": "time", "gpus_per_node": "gpus_per_node",
    "cpus_per_task": "cpus_per_task", "tasks_per_node": "ntasks_per_node", "nodes": "nodes",
    "name": "job_name", "array_parallelism": "array_parallelism", "qos": "qos",
    "comment": "comment", "constraint": "constraint", "exclude": "exclude", "gres": "gres",
    "cpus_per_gpu": "cpus_per_gpu", "gpus_per_task": "gpus_per_task", "account": "account",
    "mem_per_gpu": "mem_per_gpu", "mem_per_cpu": "mem_per_cpu", "setup": "setup",
    "signal_delay_s": "signal_delay_s", "additional_parameters": "additional_parameters",
    "srun_args": "srun_args",
}  # fmt: skip
"""The sweep launcher's settings (``conf/hydra/launcher/slurm.yaml``) as submitit's
``SlurmExecutor`` names them; ``mem_gb`` becomes ``mem``."""


def sbatch_parameters(launcher: dict) -> dict:
    """submitit's SLURM parameters from the sweep launcher's settings (unset ones left out)."""
    params = {SBATCH_KEYS[k]: v for k, v in launcher.items() if k in SBATCH_KEYS and v}
    if launcher.get("mem_gb"):
        params["mem"] = f"{launcher['mem_gb']}GB"
    return params


def slurm_workers(argv: list[str], n: int, setting, launcher: dict, folder) -> list[str]:
    """Submit ``n`` workers as SLURM jobs through submitit, with the sweep launcher's settings
    (``launcher``); returns their job ids. Each job runs ``python -m selfcross.tune argv
    tune.workers=1 tune.launcher=local`` with the storage URL without credentials; the URL
    with them travels in the job's environment (:data:`ENV_STORAGE`)."""
    import submitit

    from selfcross.errors import ConfigError
    from selfcross.training.storage import ENV_STORAGE

    ours = (
        "tune.workers=",
        "tune.launcher=",
        "tune.storage=",
        "hydra/launcher",
        "hydra.launcher.",
    )
    args = [a for a in argv if not a.lstrip("+").startswith(ours)]
    args += ["tune.workers=1", "tune.launcher=local", f"tune.storage='{setting.shown}'"]
    os.environ[ENV_STORAGE] = setting.url  # sbatch exports it to the jobs
    executor = submitit.SlurmExecutor(
        folder=str(folder), max_num_timeout=int(launcher.get("max_num_timeout") or 0)
    )
    executor.update_parameters(**sbatch_parameters(launcher))
    try:
        jobs = _submit(executor, n, [sys.executable, "-m", "selfcross.tune", *args])
    except (submitit.core.utils.FailedJobError, OSError) as err:
        lines = [line for line in str(err).splitlines() if line.strip()]
        raise ConfigError(
            f"tune.launcher=slurm: sbatch failed ({lines[-1] if lines else type(err).__name__})"
        ) from None
    return [job.job_id for job in jobs]


def _submit(executor, n: int, command: list[str]):
    from submitit.helpers import CommandFunction

    with executor.batch():
        jobs = [
            executor.submit(CommandFunction(["env", f"{WORKER_ENV}={i}", *command]))
            for i in range(n)
        ]  # fmt: skip
    return jobs


def wait_for_jobs(job_ids: list[str], poll_s: float = 5.0) -> None:
    """Until SLURM lists none of the jobs (``squeue``, which needs no accounting); on an
    interruption the jobs are cancelled."""
    import time

    try:
        while True:
            proc = subprocess.run(["squeue", "--noheader", "--array", "--format=%i",
                                   f"--jobs={','.join(job_ids)}"], capture_output=True,
                                  text=True)  # fmt: skip
            if proc.returncode == 0 and not proc.stdout.strip():
                return
            if proc.returncode != 0 and "Invalid job id" in proc.stderr:
                return
            time.sleep(poll_s)
    except BaseException:
        subprocess.run(["scancel", *job_ids], capture_output=True)
        raise
