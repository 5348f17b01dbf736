"""Which preparation reads which release: ``dataset=<name>`` picks one here, and only here.

Each dataset's preparation (:mod:`selfcross.prepare.iemocap`, :mod:`selfcross.prepare.meld`)
reads its release and runs the shared steps of :mod:`selfcross.prepare.steps`; a new release
needs its module, its entry below and ``conf/dataset/<name>.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable

from selfcross.errors import ConfigError
from selfcross.prepare.iemocap import prepare_iemocap
from selfcross.prepare.meld import prepare_meld
from selfcross.prepare.settings import PrepareSettings

PREPARATIONS: dict[str, Callable[[PrepareSettings], dict]] = {
    "iemocap": prepare_iemocap,
    "meld": prepare_meld,
}
"""Release name (``dataset=<name>``, conf/dataset/<name>.yaml) -> its preparation."""


def prepare(settings: PrepareSettings) -> dict:
    """Build the folds of ``settings.dataset``; returns the summary written to prepare.json."""
    preparation = PREPARATIONS.get(settings.dataset)
    if preparation is None:
        raise ConfigError(
            f"dataset={settings.dataset}: no preparation; expected one of "
            f"{', '.join(PREPARATIONS)}"
        )
    return preparation(settings)
