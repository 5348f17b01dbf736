"""The numbers of a run checked before any work (part of :func:`selfcross.config.validate`).

Each would otherwise fail late, after the data are read, with a traceback from deep inside
PyTorch (a dropout probability of 1.5), or give a meaningless ``result.json`` (a learning rate of
0 trains nothing and still writes scores). Each problem is a one-line :class:`ConfigError`
naming the setting.
"""

from __future__ import annotations

import math
import numbers

from omegaconf import DictConfig

from selfcross.errors import ConfigError

MAX_SEED = 2**32 - 1
"""NumPy's and Lightning's seeds are unsigned 32-bit integers."""


def _integer(value, key: str, low: int, high: int | None = None) -> None:
    """ConfigError unless ``value`` is an integer in low..high."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}={value}: expected an integer")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{key}={value}: must be {bound}")


def _real(value, key: str) -> float:
    """``value`` as a finite float; ConfigError for anything else (a string, a list, nan)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{key}={value}: expected a number")
    if not math.isfinite(value):
        raise ConfigError(f"{key}={value}: expected a finite number")
    return float(value)


def check_probability(value, key: str) -> None:
    """A dropout probability: a number in [0, 1) (1 would drop everything)."""
    if not 0.0 <= _real(value, key) < 1.0:
        raise ConfigError(f"{key}={value}: expected a probability in [0, 1)")


def check_run_settings(cfg: DictConfig) -> None:
    """Numbers that would fail late (after reading data) or give a meaningless result.json:
    no epochs, a seed NumPy cannot take, empty batches, an attention width the heads cannot
    split, a learning rate that is not positive, a dropout probability outside [0, 1)."""
    _integer(cfg.seed, "seed", 0, MAX_SEED)
    _integer(cfg.trainer.max_epochs, "trainer.max_epochs", 1)
    _integer(cfg.data.batch_size, "data.batch_size", 1)
    if cfg.data.get("eval_batch_size") is not None:
        _integer(cfg.data.eval_batch_size, "data.eval_batch_size", 1)
    network = cfg.model.network
    _integer(network.hidden, "model.network.hidden", 1)
    _integer(network.num_heads, "model.network.num_heads", 1)
    width = 2 * network.hidden
    if width % network.num_heads:
        raise ConfigError(
            f"model.network.num_heads={network.num_heads} does not divide the attention width "
            f"2 * model.network.hidden = {width}"
        )
    check_model_numbers(cfg.model)


def check_model_numbers(model: DictConfig) -> None:
    """The optimiser's learning rate (> 0) and every dropout probability of the model."""
    optimizer = model.get("optimizer")
    if optimizer is not None and "lr" in optimizer:
        if _real(optimizer.lr, "model.optimizer.lr") <= 0:
            raise ConfigError(f"model.optimizer.lr={optimizer.lr}: must be greater than 0")
    network = model.network
    if network.get("attn_dropout") is not None:
        check_probability(network.attn_dropout, "model.network.attn_dropout")
    for modality, p in (network.get("input_dropout") or {}).items():
        check_probability(p, f"model.network.input_dropout.{modality}")
    if model.get("modality_dropout") is not None:
        check_probability(model.modality_dropout, "model.modality_dropout")


def check_class_set(data: DictConfig) -> None:
    """``class_set=<name>`` names one of the dataset's ``class_sets`` (before its values,
    which interpolate that entry, are read)."""
    name = data.get("class_set")
    sets = data.get("class_sets") or {}
    if name is not None and name not in sets:
        known = ", ".join(map(str, sets)) or "none"
        raise ConfigError(f"class_set={name}: data={data.name} has no such class set ({known})")
    if name is not None and data.get("synthetic"):
        raise ConfigError(
            f"class_set={name}: synthetic folds are generated with the full class set; apply "
            "class sets to prepared (or Yoon's) folds"
        )
