"""Process settings of a run: CPU threads, TF32 and the optional compiled network.

None of them changes the maths of a model (the model-level fast paths, fused attention and the
CPU kernels, are network arguments). :func:`apply_run_settings` applies all three for a run, in
one place, from the module's run settings (``model.tf32``, ``model.compile``) and the top-level
``threads`` (:func:`apply_group_settings` the same for a seed group, without compile):

- threads: ``threads`` (default null: PyTorch's choice, or the ``local_gpus`` launcher's share
  when it runs several jobs on one machine, see :func:`threads_per_job`), set once.
- ``model.tf32`` (default true): TF32 tensor-core matmuls and cuDNN convolutions/RNNs on CUDA
  (float32 storage, 10-bit mantissa products); no effect on CPU.
- ``model.compile`` (default false): ``torch.compile`` the network in place.

A seed group also trains inside :func:`freed_memory_kept` (glibc keeps freed memory for reuse).

cuDNN is switched on explicitly: its GRU kernel is the CUDA fast path of the encoders.
:func:`apply_backend_settings` and :func:`compile_network` are also used by the benchmark.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from selfcross.errors import ConfigError

log = logging.getLogger("selfcross")

COMPILE_DEFAULTS = {"backend": "inductor", "mode": None}

ENV_THREADS = "SELFCROSS_THREADS"
"""CPU threads per job when the launcher runs several jobs on one machine."""


def threads_per_job(n_jobs: int, cores: int | None = None) -> int:
    """An even share of the cores: PyTorch's default of one thread per core in every job
    oversubscribes the CPU, and its OpenMP threads then spin-wait for each other (a GRU step
    was measured 45x slower on 2 cores with a second busy process)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, n_jobs))


def run_threads(threads: int | None) -> int | None:
    """The intra-op thread count of a run: ``threads``, else the launcher's share, else None
    (PyTorch's default)."""
    return threads or int(os.environ.get(ENV_THREADS, "0") or 0) or None


def apply_backend_settings(tf32: bool = True, cpu_threads: int | None = None) -> dict:
    """Set TF32, cuDNN and thread settings for this process; returns what is now in force."""
    if cpu_threads is not None:
        if not isinstance(cpu_threads, int) or cpu_threads < 1:
            raise ConfigError(f"model.cpu_threads={cpu_threads}: expected a positive integer")
        torch.set_num_threads(cpu_threads)
    torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
    torch.backends.cudnn.allow_tf32 = bool(tf32)
    torch.backends.cudnn.enabled = True
    return {
        "tf32": bool(tf32),
        "cpu_threads": torch.get_num_threads(),
        "cudnn": torch.backends.cudnn.enabled,
    }


ENV_KEEP_FREED = "SELFCROSS_KEEP_FREED_MEMORY"
"""``0``: a seed group leaves the C allocator's defaults alone (see :func:`freed_memory_kept`)."""

# glibc's mallopt parameters (malloc.h) and their defaults
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536


@contextmanager
def freed_memory_kept() -> Iterator[bool]:
    """Within the block, glibc's allocator keeps freed memory for reuse; yields True if it does.

    glibc serves every block above its mmap threshold (32 MiB at most) with a fresh ``mmap`` and
    unmaps it when freed, so each new tensor that size faults all its pages in again, zeroed by
    the kernel. A single run makes few such tensors; a seed group of 10 makes them in every
    layer of every step: on the idle 2-core development machine a group of 10 Self networks
    then trained at 0.67x the speed of their 10 single runs, and at 0.99x with this setting
    (docs/performance.md). Inside the
    block ``malloc`` never maps and the heap is never trimmed, so a step reuses what the last
    one freed; on leaving, the defaults come back and the free heap is returned to the kernel
    (``malloc_trim``), so a sweep that trains group after group in one process does not keep
    each one's peak. Nothing happens with ``SELFCROSS_KEEP_FREED_MEMORY=0`` or a C library
    without ``mallopt`` (musl, macOS).
    """
    libc = ctypes.CDLL(None)
    mallopt, trim = getattr(libc, "mallopt", None), getattr(libc, "malloc_trim", None)
    if os.environ.get(ENV_KEEP_FREED, "1").strip() == "0" or mallopt is None or trim is None:
        yield False
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    kept = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    try:
        yield kept
    finally:
        gc.collect()  # tensors held only by reference cycles, freed before the trim
        mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        trim(0)


def compile_options(setting) -> dict | None:
    """``model.compile`` as keyword arguments for ``nn.Module.compile``, or None when off.

    Accepts false/true or a mapping with ``backend`` and ``mode`` (e.g. ``aot_eager`` for a
    quick check of graph capture, ``max-autotune`` on a GPU).
    """
    if setting is None or setting is False:
        return None
    if setting is True:
        return dict(COMPILE_DEFAULTS)
    if isinstance(setting, Mapping):
        unknown = set(setting) - {"enabled", *COMPILE_DEFAULTS}
        if unknown:
            raise ConfigError(
                f"model.compile: unknown key(s) {', '.join(sorted(unknown))}; "
                f"expected enabled, {', '.join(COMPILE_DEFAULTS)}"
            )
        if not setting.get("enabled", True):
            return None
        return {k: setting.get(k, v) for k, v in COMPILE_DEFAULTS.items()}
    raise ConfigError(f"model.compile={setting!r}: expected true, false or a mapping")


def compile_network(network: nn.Module, setting) -> bool:
    """Compile ``network`` in place (its state dict keys are unchanged); True if compiled."""
    options = compile_options(setting)
    if options is None:
        return False
    network.compile(**options)
    return True


def apply_run_settings(module, threads: int | None = None) -> dict:
    """Threads, TF32 and compile for one run; returns the settings in force.

    ``module`` is the run's :class:`~selfcross.models.EmotionRecognizer`: its ``tf32`` and
    ``compile_setting`` are the ``model`` config's, and its ``network`` is compiled in place.
    """
    settings = apply_backend_settings(tf32=module.tf32, cpu_threads=run_threads(threads))
    settings["compile"] = compile_network(module.network, module.compile_setting)
    return _logged(settings)


def apply_group_settings(model_cfg, threads: int | None = None) -> dict:
    """A single run's threads (``threads``, or the launcher's share) and TF32 for a seed group,
    from its ``model`` config; ``model.compile`` is not applied (the stacked network trains
    eagerly), and a warning says so. Returns the settings in force."""
    settings = apply_backend_settings(
        tf32=bool(model_cfg.get("tf32", True)), cpu_threads=run_threads(threads)
    )
    if compile_options(model_cfg.get("compile")) is not None:
        log.warning("model.compile: not applied to a seed group; its stacked network trains "
                    "eagerly")  # fmt: skip
    return _logged(settings)


def _logged(settings: dict) -> dict:
    """``settings``, after the run's log line that names them."""
    log.info("Backend: %s", ", ".join(f"{k}={v}" for k, v in settings.items()))
    return settings
