"""Backend settings and the optional compiled network: the run-level fast paths.

The model-level ones (fused attention, the CPU kernels) are network arguments; these are process
settings, applied once per run by :func:`apply_fast_paths` from the ``model`` config block:

- ``model.tf32`` (default true): TF32 tensor-core matmuls and cuDNN convolutions/RNNs on CUDA
  (float32 storage, 10-bit mantissa products); no effect on CPU.
- intra-op threads: the top-level ``threads`` (default null: PyTorch's choice, or the
  launcher's share when it runs several jobs on one machine; see :mod:`selfcross.gpus`).
- ``model.compile`` (default false): ``torch.compile`` the network in place.

cuDNN is switched on explicitly: its GRU kernel is the CUDA fast path of the encoders.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import nn

from selfcross.errors import ConfigError

log = logging.getLogger("selfcross")

COMPILE_DEFAULTS = {"backend": "inductor", "mode": None}


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


def apply_fast_paths(cfg, module: nn.Module | None = None) -> dict:
    """Apply the ``model`` block's run-level settings; compile ``module.network`` if asked.

    Keys that a config lacks take their defaults, so older configs keep working.
    """
    model_cfg = cfg.model
    from selfcross.gpus import apply_thread_limit

    settings = apply_backend_settings(
        tf32=model_cfg.get("tf32", True), cpu_threads=apply_thread_limit(cfg.get("threads"))
    )
    network = getattr(module, "network", module)
    settings["compile"] = (
        compile_network(network, model_cfg.get("compile")) if network is not None else False
    )
    log.info("Backend: %s", ", ".join(f"{k}={v}" for k, v in settings.items()))
    return settings
