"""``hydra/launcher=local_gpus``: Hydra's joblib launcher, sized and spread over local GPUs.

Runs ``gpus x jobs_per_gpu`` jobs at once (``gpus: auto`` counts the visible CUDA devices) and
exports the slot settings that :mod:`selfcross.training.gpus` uses inside each job to pick its
GPU, and each job's share of the CPU cores (:mod:`selfcross.training.runtime`). Without a GPU it
runs ``jobs_per_gpu`` jobs in parallel on the CPU. Builds on the public classes of the
hydra-joblib-launcher plugin (``JoblibLauncher`` and its config), not on Hydra internals.
"""

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher

log = logging.getLogger(__name__)


@dataclass
class LocalGpusLauncherConf(JobLibLauncherConf):
    _target_: str = "hydra_plugins.selfcross_plugins.launcher.LocalGpusLauncher"
    gpus: Any = "auto"
    """Number of GPUs to use, or ``auto`` for every visible one."""
    jobs_per_gpu: int = 2
    """Concurrent jobs per GPU (the models are small: several fit on one GPU)."""
    n_jobs: int = 0
    """0: gpus x jobs_per_gpu."""


ConfigStore.instance().store(
    group="hydra/launcher", name="local_gpus", node=LocalGpusLauncherConf, provider="selfcross"
)


def plan_slots(gpus: Any, jobs_per_gpu: int, visible: int) -> tuple[int, int]:
    """(GPUs to use, concurrent jobs) for the requested settings and ``visible`` GPUs."""
    if jobs_per_gpu < 1:
        raise ValueError(f"hydra.launcher.jobs_per_gpu={jobs_per_gpu}: must be at least 1")
    n_gpus = visible if gpus in ("auto", None) else int(gpus)
    if n_gpus < 0:
        raise ValueError(f"hydra.launcher.gpus={gpus}: must be auto or a count >= 0")
    return n_gpus, max(n_gpus, 1) * jobs_per_gpu


class LocalGpusLauncher(JoblibLauncher):
    def __init__(self, gpus: Any = "auto", jobs_per_gpu: int = 2, **joblib: Any) -> None:
        from selfcross.training.gpus import visible_gpu_count

        self.gpus, n_jobs = plan_slots(gpus, jobs_per_gpu, visible_gpu_count())
        self.jobs_per_gpu = jobs_per_gpu
        if not joblib.get("n_jobs"):
            joblib["n_jobs"] = n_jobs
        super().__init__(**joblib)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from selfcross.training.gpus import ENV_GPUS, ENV_JOBS_PER_GPU, ENV_SLOT_DIR
        from selfcross.training.runtime import ENV_THREADS, threads_per_job

        slot_dir = Path(self.config.hydra.sweep.dir) / ".gpu_slots"
        if self.gpus:
            log.info(
                "Running %d jobs at a time on %d GPUs (%d per GPU)",
                self.joblib["n_jobs"],
                self.gpus,
                self.jobs_per_gpu,
            )
        else:
            log.warning(
                "No GPU visible: running %d jobs at a time on the CPU", self.joblib["n_jobs"]
            )
        env = {
            ENV_GPUS: str(self.gpus),
            ENV_JOBS_PER_GPU: str(self.jobs_per_gpu),
            ENV_SLOT_DIR: str(slot_dir.resolve()),
            ENV_THREADS: str(threads_per_job(self.joblib["n_jobs"])),
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            return super().launch(job_overrides, initial_job_idx)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
