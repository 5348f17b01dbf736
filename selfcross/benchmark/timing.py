"""Device-synchronised timing, the alternating measurement, medians and the machine's identity.

Variants alternate step by step in one process, so machine load hits them alike; medians are
reported.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from selfcross.benchmark.variants import Variant


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[..., object], *args) -> float:
    """Milliseconds one call of ``fn(*args)`` takes, device work included."""
    _sync(device)
    start = time.perf_counter()
    fn(*args)
    _sync(device)
    return (time.perf_counter() - start) * 1e3


def measure(variants: Sequence[Variant], warmup: int, steps: int) -> None:
    """Alternate the variants step by step: warm-up calls, then ``steps`` timed calls each."""
    for i in range(warmup + steps):
        for v in variants:
            ms = timed(v.device, v.train_step)
            if i >= warmup:
                v.train_ms.append(ms)
    for i in range(warmup + steps):
        for v in variants:
            ms = timed(v.device, v.eval_logits)
            if i >= warmup:
                v.eval_ms.append(ms)


def machine() -> dict:
    """The machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    if hasattr(os, "getloadavg"):
        info["load_avg_1min"] = round(os.getloadavg()[0], 2)
    return info


def median(values: Sequence[float]) -> float:
    """The median, rounded to 0.01 (milliseconds)."""
    return round(statistics.median(values), 2)


def summarise(v: Variant) -> dict:
    """A measured variant's figures: median times, throughputs and the training-time range."""
    train, evaluate = median(v.train_ms), median(v.eval_ms)
    return {
        "train_step_ms": train,
        "eval_batch_ms": evaluate,
        "samples_per_s": round(len(v.batch["label"]) / train * 1e3, 2),
        "eval_samples_per_s": round(len(v.eval_batch["label"]) / evaluate * 1e3, 2),
        "train_step_ms_range": [round(min(v.train_ms), 2), round(max(v.train_ms), 2)],
    }
