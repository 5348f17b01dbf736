"""Values read back from files (a study's ``best.json``, a finished run's ``result.json``),
checked against a configuration composed from selfcross's own ``conf/`` before they replace its
values.

The trust model (docs/checks-and-recovery.md, "Files carry values, never code"): which classes
are built is decided by ``conf/`` alone. Hydra's instantiation keys (``_target_``, ``_partial_``,
``_args_``, any ``_name_``) in a file are refused or ignored, never taken; a key the composed
configuration lacks is refused; a value must be of the kind of the one it replaces (a number
for a number, a mapping for a mapping); a string holding an interpolation (``${...}``, which
OmegaConf would evaluate) is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

ALSO_TAKES: dict[str, tuple[str, ...]] = {
    "model.compile": ("mapping",),  # false | true | {backend: ..., mode: ...}
    "trainer.devices": ("string", "list"),  # 1 | auto | [0, 1]
}
"""Keys whose default is of one kind that also take another (besides null)."""
NAMED_ENTRIES = ("data.labels", "data_presets")
"""Mappings whose keys are names a user chooses (class names, preset names): a new name takes
a value shaped as the first entry's."""
ACCEPTS = {
    "integer": ("integer",),
    "number": ("integer", "number"),
    "bool": ("bool",),
    "string": ("string", "bool", "integer", "number"),  # a word setting (auto) spelled true, 16
    "list": ("list",),
    "mapping": ("mapping",),
}
"""The kinds of value that may replace a default of each kind."""


class Refused(ValueError):
    """A value a file may not set; the message names the key and why."""


def instantiation_key(name) -> bool:
    """Whether ``name`` is one of Hydra's reserved keys (``_target_``, ``_partial_``, ...)."""
    return isinstance(name, str) and len(name) > 2 and name[0] == name[-1] == "_"


def kind(value) -> str:
    """The kind of a plain or OmegaConf value: null, bool, integer, number, string, list,
    mapping (anything else is ``other``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping | DictConfig):
        return "mapping"
    if isinstance(value, ListConfig) or (
        isinstance(value, Sequence) and not isinstance(value, bytes)
    ):
        return "list"
    return "other"


_UNKNOWN = object()
"""A default that cannot be resolved without a running Hydra job (``${hydra:...}``)."""


def composed_value(node, key):
    """``node[key]`` resolved; a marker of its own when only a Hydra job can resolve it."""
    try:
        return node[key]
    except Exception:  # an interpolation of the Hydra job (paths.output_dir)
        return _UNKNOWN


def _special(key: str, ignore: bool) -> bool:
    """True to skip an instantiation key (``ignore``); Refused otherwise."""
    if ignore:
        return True
    raise Refused(
        f"{key}: names Hydra's {key.rsplit('.', 1)[-1]} (a file sets values, never code)"
    )


def check_value(default, value, key: str, ignore_special: bool = False) -> None:
    """Refused unless ``value`` may replace ``default`` (a composed configuration's value at
    ``key``); instantiation keys inside ``value`` are skipped with ``ignore_special``."""
    found = kind(value)
    if found == "other":
        raise Refused(f"{key}={value!r}: not a configuration value")
    if found == "string" and "${" in value:
        raise Refused(f"{key}={value!r}: an interpolation, not a value")
    if found == "mapping" and kind(default) == "mapping":
        for name, item in value.items():
            inner = f"{key}.{name}" if key else str(name)
            if not isinstance(name, str):
                raise Refused(f"{inner}: not a configuration key")
            if instantiation_key(name) and _special(inner, ignore_special):
                continue
            if name in default:
                check_value(composed_value(default, name), item, inner, ignore_special)
            elif key in NAMED_ENTRIES and len(default):
                check_value(
                    composed_value(default, next(iter(default))), item, inner, ignore_special
                )
            else:
                raise Refused(f"{inner}: no such configuration key")
        return
    wanted = kind(default)
    if default is not _UNKNOWN and "null" not in (found, wanted):
        if found not in ACCEPTS.get(wanted, ()) + ALSO_TAKES.get(key, ()):
            article = "an" if wanted[0] in "aeiou" else "a"
            raise Refused(
                f"{key}={value!r}: expected {article} {wanted} (the default is {default!r})"
            )
    if found in ("list", "mapping"):  # replaced whole: what it holds is checked as plain data
        items = value.items() if found == "mapping" else enumerate(value)
        template = default[0] if found == wanted == "list" and len(default) else None
        for name, item in items:
            if found == "mapping" and instantiation_key(name):
                _special(f"{key}.{name}", ignore_special)
                continue
            check_value(template, item, f"{key}.{name}", ignore_special)


def without_instantiation_keys(value):
    """``value`` as plain data, Hydra's instantiation keys left out at every depth."""
    if isinstance(value, Mapping | DictConfig):
        return {
            k: without_instantiation_keys(v) for k, v in value.items() if not instantiation_key(k)
        }
    if kind(value) == "list":
        return [without_instantiation_keys(v) for v in value]
    return value


def take_values(cfg: DictConfig, values: Mapping, ignore_special: bool = False) -> None:
    """Check the nested ``values`` against ``cfg`` (see :func:`check_value`), then set them on
    ``cfg`` in place: a mapping key by key into a mapping of ``cfg`` (its other keys keep their
    composed values), anything else whole. Refused names the first key that may not be set."""
    check_value(cfg, dict(values), "", ignore_special)
    with open_dict(cfg):
        _set(cfg, values)


def _set(node: DictConfig, values: Mapping) -> None:
    for key, value in values.items():
        if instantiation_key(key):
            continue
        if (
            isinstance(value, Mapping)
            and key in node
            and not OmegaConf.is_interpolation(node, key)
            and isinstance(node[key], DictConfig)
        ):
            _set(node[key], value)
        else:
            node[key] = without_instantiation_keys(value)
