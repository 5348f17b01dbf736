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
