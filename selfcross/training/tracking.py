"""Weights & Biases tracking: offline unless credentials exist, and never fatal.

Every run logs to project ``selfcross`` with its ``cell`` as group (``<model>-<modality>``, plus
the swept key of presets such as modality dropout: one group per table cell, so W&B shows mean
and spread per cell), a name with fold and seed, and a run id derived
from the run's output folder, so a resumed job continues the same W&B run. W&B files live in the
run's output folder. If W&B cannot start online, the run logs offline instead (and the process's
later runs too); if it cannot start at all, the run goes on without it (with a warning) and still
writes ``result.json``.
"""

from __future__ import annotations

import hashlib
import logging
import netrc
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from selfcross.training.record import RunRecord

log = logging.getLogger("selfcross")

MODES = ("online", "offline", "disabled")


def has_credentials() -> bool:
    """Whether a W&B API key is configured (environment or ~/.netrc), without asking anyone."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str | None) -> str:
    """``logger.mode`` if set, else ``WANDB_MODE``, else online with credentials, else offline."""
    chosen = mode or os.environ.get("WANDB_MODE") or ("online" if has_credentials() else "offline")
    if chosen in ("dryrun", "offline"):
        return "offline"
    if chosen not in MODES:
        raise ValueError(f"logger.wandb.mode={chosen!r}: expected one of {', '.join(MODES)}")
    return chosen


def run_id(save_dir: str | Path, name: str) -> str:
    """A W&B run id stable for one output folder: the same job resumed keeps its run."""
    digest = hashlib.sha1(str(Path(save_dir).resolve()).encode()).hexdigest()[:10]
    return f"{name[:50]}-{digest}"


_online_failed = False
"""Set when an online start failed in this process: its later runs go straight to offline."""


def feature_group(group: str | None, tags: Sequence[str], feature_set: str):
    """The W&B group and tags of a run on ``feature_set`` (unchanged for the paper's)."""
    if feature_set == "paper":
        return group, list(tags)
    extra = [f"features:{part}" for part in feature_set.split()]
    return (f"{group} [{feature_set}]" if group else group), [*tags, *extra]


def make_wandb_logger(
    project: str,
    save_dir: str,
    name: str,
    group: str | None = None,
    tags: Sequence[str] = (),
    entity: str | None = None,
    mode: str | None = None,
    job_type: str = "train",
    init_timeout: float = 30.0,
    feature_set: str = "paper",
    concurrent: bool = False,
):
    """A started ``WandbLogger``, or None (with a warning) if W&B cannot start.

    ``concurrent``: the process keeps other W&B runs open at the same time (a seed group's
    members, each logged after every epoch): W&B's ``reinit="create_new"``, which starts a run
    beside the open ones and leaves W&B's global run unset, so that Lightning's logger starts
    its own run instead of reusing another member's.

    ``feature_set``: the data's feature set (``selfcross.manifest.feature_set_label``); one
    other than ``paper`` joins the group (``<cell> [<feature set>]``, so that cells
    of different feature sets never share a group) and the tags (``features:<name>`` per
    modality encoder).

    An online start that fails (no network, server down, a timeout after ``init_timeout``
    seconds) falls back to offline, so the run's W&B record is kept for ``wandb sync``."""
    global _online_failed
    try:
        chosen = resolve_mode(mode)
    except ValueError as err:
        from selfcross.errors import ConfigError

        raise ConfigError(str(err)) from None
    if chosen == "disabled":
        return None
    if chosen == "online" and _online_failed:
        log.warning("W&B: online failed earlier in this process; this run logs offline")
        chosen = "offline"
    group, tags = feature_group(group, tags, feature_set)
    args = dict(project=project, entity=entity, name=name, group=group, tags=list(tags),
                id=run_id(save_dir, name), save_dir=save_dir, job_type=job_type)  # fmt: skip
    if concurrent:
        args["reinit"] = "create_new"
    for attempt in (chosen, "offline") if chosen == "online" else (chosen,):
        try:
            logger = _start(attempt, init_timeout, **args)
            break
        except Exception as err:  # W&B must never cost a run
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            if attempt == "online":
                _online_failed = True
                log.warning(
                    "W&B online could not start (%s); logging offline instead (upload later "
                    "with `wandb sync %s/wandb/offline-run-*`)",
                    reason,
                    save_dir,
                )
                _teardown()
    else:
        log.warning("W&B could not start (%s); continuing without it", reason)
        return None
    log.info("W&B run %s (%s) in %s", logger.experiment.id, attempt, save_dir)
    return logger


def _start(mode: str, init_timeout: float, save_dir: str, **args):
    from lightning.pytorch.loggers import WandbLogger

    Path(save_dir).mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
        save_dir=save_dir, mode=mode, resume="allow", settings=_settings(init_timeout), **args
    )
    # Lightning always passes anonymous=None, which W&B now answers with a warning.
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    logger.experiment  # noqa: B018 -- start now, so a failure shows here, not mid-training
    return logger


def _teardown() -> None:
    """Shut W&B's service down after a failed start: it still holds the run id otherwise."""
    try:
        import wandb

        wandb.teardown()
    except Exception as err:
        log.debug("W&B teardown failed: %s", err)


def _settings(init_timeout: float):
    import wandb

    # No console capture (Lightning's progress bar would fill the log) and no prompts.
    return wandb.Settings(console="off", silent=True, init_timeout=init_timeout)


def is_wandb(logger) -> bool:
    from lightning.pytorch.loggers import WandbLogger

    return isinstance(logger, WandbLogger)


def log_test_report(loggers, record: RunRecord) -> None:
    """Summary values and the test confusion matrix as a W&B plot, for each W&B logger."""
    for logger in loggers:
        if not is_wandb(logger):
            continue
        try:
            import wandb

            run = logger.experiment
            for key in ("n_params", "best_epoch", "epochs", "test_wa", "test_uwa", "test_f1"):
                run.summary[key] = getattr(record, key)
            names = record.class_names
            y_true, y_pred = [], []
            for i, row in enumerate(record.confusion):
                for j, count in enumerate(row):
                    y_true += [i] * count
                    y_pred += [j] * count
            run.log(
                {
                    "test/confusion_matrix": wandb.plot.confusion_matrix(
                        y_true=y_true, preds=y_pred, class_names=names, title="Test confusion"
                    )
                }
            )
        except Exception as err:
            log.warning("W&B: could not log the test report (%s)", err)


def finish(loggers, exit_code: int = 0) -> None:
    """Close every W&B run (always called, also after a failure)."""
    for logger in loggers:
        if is_wandb(logger):
            try:
                logger.experiment.finish(exit_code=exit_code)
            except Exception as err:
                log.warning("W&B: finishing the run failed (%s)", err)
