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


def trainer_devices(gpu: int | None) -> dict:
    """The trainer settings a job's GPU slot replaces (none without a slot or without CUDA)."""
    import torch

    if gpu is not None and torch.cuda.is_available():
        return {"accelerator": "gpu", "devices": [gpu]}
    return {}


def run_device(trainer_cfg, gpu: int | None = None):
    """The ``torch.device`` a run with ``trainer_cfg`` (``cfg.trainer``) and GPU slot ``gpu``
    trains on, resolved as Lightning resolves ``accelerator`` and ``devices`` for one device:
    ``cpu``; ``gpu``/``cuda`` (and ``auto`` when CUDA is available) the first device listed,
    ``cuda:0`` for a count of 1 or ``auto``. A seed group trains there
    (:mod:`selfcross.training.group`); a run on several devices or on another accelerator is
    refused (:class:`~selfcross.errors.ConfigError`)."""
    import torch

    from selfcross.errors import ConfigError

    settings = {**{k: trainer_cfg.get(k) for k in ("accelerator", "devices")},
                **trainer_devices(gpu)}  # fmt: skip
    accelerator = str(settings["accelerator"] or "auto")
    devices = settings["devices"]
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator == "cpu":
        return torch.device("cpu")
    if accelerator not in ("gpu", "cuda"):
        raise ConfigError(
            f"trainer.accelerator={accelerator}: a seed group trains on cpu or cuda only"
        )
    if isinstance(devices, str) and devices != "auto":
        devices = [int(d) for d in devices.split(",") if d.strip()]
    if devices in (None, "auto", 1):
        return torch.device("cuda", 0)
    if isinstance(devices, int) or len(devices) != 1:
        raise ConfigError(f"trainer.devices={devices}: a seed group trains on one device")
    return torch.device("cuda", int(list(devices)[0]))
