"""Spreading the jobs of a local sweep over the GPUs of one machine.

The ``local_gpus`` launcher runs ``gpus x jobs_per_gpu`` jobs at once and tells each job, through
environment variables, how many GPUs there are and where the slot locks live. A job takes the
first free slot (a :class:`filelock.FileLock` on ``slot<i>.lock``, released when the job ends,
even if it is killed) and trains on GPU ``i % gpus``, so concurrent jobs fill the GPUs evenly
whatever their run times. The launcher also shares the CPU cores between its parallel jobs
(:mod:`selfcross.training.runtime`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

ENV_GPUS = "SELFCROSS_GPUS"
ENV_JOBS_PER_GPU = "SELFCROSS_JOBS_PER_GPU"
ENV_SLOT_DIR = "SELFCROSS_SLOT_DIR"


def visible_gpu_count() -> int:
    """CUDA devices this process can use (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@dataclass(frozen=True)
class Slot:
    index: int
    gpu: int


@contextmanager
def acquire_slot(
    slot_dir: Path, gpus: int, jobs_per_gpu: int, poll_seconds: float = 1.0
) -> Iterator[Slot]:
    """Hold one of ``gpus * jobs_per_gpu`` slots for the duration of the block.

    Slot i runs on GPU ``i % gpus``: the first ``gpus`` jobs land on different GPUs. If every slot
    is taken (more concurrent jobs than slots), wait until one is released.
    """
    slot_dir = Path(slot_dir)
    slot_dir.mkdir(parents=True, exist_ok=True)
    n_slots = gpus * jobs_per_gpu
    while True:
        for index in range(n_slots):
            lock = FileLock(slot_dir / f"slot{index}.lock")
            try:
                lock.acquire(blocking=False)
            except Timeout:
                continue
            try:
                yield Slot(index=index, gpu=index % gpus)
            finally:
                lock.release()
            return
        time.sleep(poll_seconds)


@contextmanager
def job_gpu() -> Iterator[int | None]:
    """The GPU this job should use under the ``local_gpus`` launcher, else None."""
    gpus = int(os.environ.get(ENV_GPUS, "0") or 0)
    slot_dir = os.environ.get(ENV_SLOT_DIR)
    if gpus <= 0 or not slot_dir:
        yield None
        return
    per_gpu = int(os.environ.get(ENV_JOBS_PER_GPU, "1") or 1)
    with acquire_slot(Path(slot_dir), gpus, per_gpu) as slot:
        yield slot.gpu
