"""A dataset's facts (class names, published class counts, number of folds, shapes).

They live only in ``conf/data/<name>.yaml``; code that has no composed configuration at hand
(library defaults, the preparation) reads them here. Within a run, use ``cfg.data`` instead.
"""

from __future__ import annotations

from functools import lru_cache

from omegaconf import DictConfig, OmegaConf

from selfcross.errors import ConfigError


@lru_cache(maxsize=8)
def dataset(name: str = "iemocap") -> DictConfig:
    """``conf/data/<name>.yaml`` as composed for a run (``cfg.data``), without overrides.

    Composes a Hydra configuration: do not call it inside a running Hydra job.
    """
    from selfcross.config import compose

    data = compose([f"data={name}"]).data
    OmegaConf.set_readonly(data, True)  # shared by every caller
    return data


def published_counts(name: str = "iemocap") -> dict[str, int]:
    """Class name -> utterances over the whole corpus, as published in ``conf/data/<name>.yaml``
    (``class_counts``, one per name of ``class_names``); empty when there is no such file.

    Read from the file, not from a run's ``cfg.data``: a ``data.class_names=[...]`` override
    that reorders the names must not move the counts with them.
    """
    from selfcross.config import CONFIG_DIR

    if not (CONFIG_DIR / "data" / f"{name}.yaml").is_file():
        return {}
    data = dataset(name)
    counts = data.get("class_counts") or []
    return dict(zip(data.class_names, counts, strict=bool(counts)))


def default_metrics(name: str = "iemocap") -> tuple[str, ...]:
    """The metrics a table shows by default for runs on ``name`` (``metrics`` of
    ``conf/data/<name>.yaml``: IEMOCAP the paper's WA and UWA, MELD weighted F1 and accuracy);
    the paper's two for a dataset without a file there."""
    from selfcross.config import CONFIG_DIR

    if not (CONFIG_DIR / "data" / f"{name}.yaml").is_file():
        return ("wa", "uwa")
    return tuple(dataset(name).get("metrics") or ("wa", "uwa"))


def class_set_map(name: str, class_sets, full_names=None) -> tuple[int, ...]:
    """The class id in class set ``name`` of each class id of folds holding ``full_names``
    (their manifest's class names; None: the set's ``of``), -1 for a class the set leaves out.

    ``class_sets`` is ``data.class_sets`` of conf/data/<name>.yaml: per set, ``of`` (the full
    set's class names), ``class_names`` and ``merge`` (each class of the set: the full set's
    classes it takes). ConfigError names what does not fit.
    """
    sets = dict(class_sets or {})
    if name not in sets:
        known = ", ".join(map(str, sets)) or "none"
        raise ConfigError(f"data.class_set={name}: no such class set (the dataset has {known})")
    spec = sets[name]
    full = list(full_names or spec["of"])
    merge = dict(spec["merge"])
    if list(merge) != list(spec["class_names"]):
        raise ConfigError(
            f"data.class_sets.{name}.merge must list the classes of its class_names in order"
        )
    mapping = [-1] * len(full)
    for target, sources in enumerate(merge.values()):
        for source in sources:
            if source not in full:
                raise ConfigError(
                    f"data.class_set={name}: the set takes class {source!r}, which the folds "
                    f"do not have (their classes: {', '.join(full)})"
                )
            if mapping[full.index(source)] != -1:
                raise ConfigError(f"data.class_set={name}: class {source!r} is merged twice")
            mapping[full.index(source)] = target
    return tuple(mapping)
