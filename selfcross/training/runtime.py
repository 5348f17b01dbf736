"""Process settings of a run: CPU threads, TF32 and the optional compiled network.

None of them changes the maths of a model (the model-level fast paths, fused attention and the
CPU kernels, are network arguments). :func:`apply_run_settings` applies all three for a run, in
one place, from the module's run settings (``model.tf32``, ``model.compile``) and the top-level
``threads``:

- threads: ``threads`` (default null: PyTorch's choice, or the ``local_gpus`` launcher's share
  when it runs several jobs on one machine, see :func:`threads_per_job`), set once.
- ``model.tf32`` (default true): TF32 tensor-core matmuls and cuDNN convolutions/RNNs on CUDA
  (float32 storage, 10-bit mantissa products); no effect on CPU.
- ``model.compile`` (default false): ``torch.compile`` the network in place.

cuDNN is switched on explicitly: its GRU kernel is the CUDA fast path of the encoders.
:func:`apply_backend_settings` and :func:`compile_network` are also used by the benchmark.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

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
    log.info("Backend: %s", ", ".join(f"{k}={v}" for k, v in settings.items()))
    return settings
