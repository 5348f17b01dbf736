"""A dataset's facts (class names, published class counts, number of folds, shapes).

They live only in ``conf/data/<name>.yaml``; code that has no composed configuration at hand
(library defaults, the preparation) reads them here. Within a run, use ``cfg.data`` instead.
"""

from __future__ import annotations

from functools import lru_cache

from omegaconf import DictConfig, OmegaConf


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
