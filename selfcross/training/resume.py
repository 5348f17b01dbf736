"""Resumable runs: skip finished work, resume interrupted training, keep the disk small.

A run is identified by the hash of its resolved configuration, leaving out what cannot change
its numbers (output paths, logger, progress bar, sweep name, launcher). A run directory holding
a ``result.json`` with the same hash is complete and is skipped; one holding
``checkpoints/last.ckpt`` written under the same hash resumes from it; what was written under
another hash is kept aside (:mod:`selfcross.training.rundir`), never deleted. A checkpoint that
cannot be read is renamed ``<name>.corrupt-<UTC time>`` and the run goes on from the best
checkpoint it wrote, or starts over.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from selfcross.training.record import RESULT_FILE, RunRecord, read_record, same_data
from selfcross.training.rundir import HASH_FILE, set_aside, stored_marks
from selfcross.utils import atomic

log = logging.getLogger("selfcross")

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"
NOT_HASHED = ("hydra", "logger", "sweep_name", "resume", "threads", "cell", "seed_group")
"""Top-level keys that do not change a run's results."""
NOT_HASHED_TRAINER = ("enable_progress_bar", "log_every_n_steps", "enable_model_summary")
NOT_HASHED_DATA = (
    "cache_dir", "on_device", "num_workers", "n_folds", "class_counts", "split_counts",
    "paper_results", "labels", "metrics", "selection_metric", "class_sets",
)  # fmt: skip
"""Where and how data are held: the same numbers either way; and the corpus's facts (number of
folds, published class counts per corpus and per split, whether the paper reports numbers on
it, the release's labels of each class, the metrics its tables show by default, the class sets
it declares: ``data.class_set``, the one chosen, is hashed), which describe
the dataset rather than set up a run. Left out so that the hashes of runs written before these
keys existed still match. ``selection_metric`` is hashed where it acts: as the resolved
``monitor.metric`` (the hash resolves interpolations before leaving keys out)."""
HASHED_AS: dict[str, dict[str, str]] = {
    "data._target_": {"selfcross.data.FoldDataModule": "selfcross.data.IemocapDataModule"},
}
"""Renamed classes, hashed under the name earlier runs recorded (the old name stays importable):
a rename is code, which the hash never covers."""
NOT_HASHED_MODEL = ("_target_", "best_metric", "class_names")
"""The module's class (code, which the hash never covers) and two keys that repeat hashed
ones (``monitor.metric``, ``data.class_names``): hashes stay those of earlier runs."""
NOT_HASHED_PATHS = ("callbacks.last_checkpoint", "callbacks.model_checkpoint.save_last")
"""Where an interrupted run's state is saved (every epoch, by its own callback, since Lightning
2.6 writes ``save_last`` only when the best checkpoint changes): not what the run computes."""

HASHED_UNLESS_DEFAULT: dict[str, object] = {
    "run_test": True,  # false: tuning runs, which never evaluate the test split
    "model.modality_dropout": 0.0,
    "model.modality_dropout_fill": "zeros",
    "model.network.mask_padding": False,
    "tuned.accept_other_data": False,
    "tune.storage": "sqlite",  # where a study lives and how many processes run it: the study's
    "tune.workers": 1,  # settings, popped from its runs' configurations
    "tune.launcher": "local",
    "tune.heartbeat_s": 60,
    "tune.grace_s": 180,
}
"""Keys added after runs were first written, each with the value that reproduces the earlier
behaviour (``"model.modality_dropout": 0.0``): a key at that value is left out of the hash, so
finished runs are still recognised; any other value is hashed as usual. Extend it whenever a
new setting is introduced with a backward-compatible default."""


_ANY = object()


def _drop(cfg, dotted: str, only_if=_ANY) -> None:
    """Pop the dotted key from nested mappings, where present (and equal to ``only_if``)."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for key in parents:
        if not hasattr(node, "get") or node.get(key) is None:
            return
        node = node[key]
    if hasattr(node, "get") and leaf in node and (only_if is _ANY or node.get(leaf) == only_if):
        node.pop(leaf)


def drop_unhashed(cfg) -> None:
    """Remove, in place, the keys that cannot change a run's results (a DictConfig opened for
    writing, or a plain dict)."""
    for key in NOT_HASHED:
        cfg.pop(key, None)
    for dotted in NOT_HASHED_PATHS:
        _drop(cfg, dotted)
    for dotted, default in HASHED_UNLESS_DEFAULT.items():
        _drop(cfg, dotted, default)
    for dotted, renamed in HASHED_AS.items():
        group, key = dotted.split(".")
        node = cfg.get(group) if hasattr(cfg, "get") else None
        if hasattr(node, "get") and node.get(key) in renamed:
            node[key] = renamed[node[key]]
    for group, keys in (
        ("trainer", NOT_HASHED_TRAINER),
        ("data", NOT_HASHED_DATA),
        ("model", NOT_HASHED_MODEL),
    ):
        if group in cfg:
            for key in keys:
                cfg[group].pop(key, None)


def comparable_config(config: dict) -> dict[str, str]:
    """A resolved configuration (``result.json``'s ``config``) as :func:`config_hash` sees it,
    flattened to ``{"model.optimizer.lr": "0.001", ...}``: the unhashed keys removed and the
    run's own folder shown as ``<output_dir>``, so that two runs compare by what they did."""
    config = copy.deepcopy(config)
    own = str((config.pop("paths", None) or {}).get("output_dir") or "") or None
    drop_unhashed(config)
    flat: dict[str, str] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
            return
        text = json.dumps(node, sort_keys=True, default=str)
        if own is not None:
            text = text.replace(own, "<output_dir>")
        flat[prefix[:-1]] = text

    walk(config, "")
    return flat


def config_hash(cfg: DictConfig) -> str:
    """A short hash of everything in ``cfg`` that can change a run's results."""
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(cfg):
        # Every path derived from the run's own folder resolves to the same placeholder, so the
        # hash depends on the experiment, not on where it runs.
        if "paths" in cfg:
            cfg.paths.output_dir = "<output_dir>"
            cfg.paths.cache_dir = "<cache_dir>"
        for key in NOT_HASHED:  # Hydra's own keys resolve only inside a Hydra job
            cfg.pop(key, None)
    # Resolved before keys are left out, so that a hashed key may follow an unhashed one
    # (``monitor.metric: ${data.selection_metric}``).
    cfg = OmegaConf.to_container(cfg, resolve=True)
    drop_unhashed(cfg)
    payload = json.dumps(cfg, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def completed_result(out_dir: Path, digest: str) -> RunRecord | None:
    """The record of a finished run of this configuration in ``out_dir``, if there is one."""
    record = read_record(Path(out_dir) / RESULT_FILE)
    if record is not None and record.config_hash == digest:
        return record
    return None


def finished_run(cfg: DictConfig, out_dir: Path, digest: str) -> RunRecord | None:
    """:func:`completed_result`, unless the fold has changed since: a record of other data (a
    fold edited or regenerated since the run) is not finished, and the run is redone.

    The fold's fingerprint is computed only when there is a record to check, and memoised
    under ``data.cache_dir``: unchanged data cost a few file metadata reads.
    """
    from selfcross.data.fingerprint import current_fingerprint  # the data package needs torch

    record = completed_result(out_dir, digest)
    if record is None:
        path = Path(out_dir) / RESULT_FILE
        if path.is_file() and read_record(path) is None:
            log.warning(
                "%s cannot be read as a run record (corrupt, half-written or from a "
                "newer selfcross): the run is done again",
                path,
            )
        return None
    current = current_fingerprint(cfg.data.root, cfg.fold, cfg.data.get("cache_dir"))
    if current is not None and not same_data(str(record.data.fingerprint), current):
        log.info(
            "%s was computed on other data (fingerprint %s, the fold's is now %s): redone",
            Path(out_dir) / RESULT_FILE,
            record.data.fingerprint,
            current,
        )
        return None
    return record


def start_over(out_dir: Path, digest: str) -> Path | None:
    """Move a finished run of this configuration aside (to ``superseded/<hash>/``) when it is
    not skipped (``resume.skip_complete=false``, or a record of other data): the run then
    trains from epoch 1 instead of resuming from the old run's checkpoints."""
    if completed_result(out_dir, digest) is None:
        return None
    target, moved = set_aside(out_dir, digest)
    print(f"kept the finished run of configuration {digest}: moved {', '.join(moved)} to "
          f"{target}; training from epoch 1", flush=True)  # fmt: skip
    return target


def resume_checkpoint(out_dir: Path, digest: str, fingerprint: str | None = None) -> Path | None:
    """The checkpoint an interrupted run of this configuration continues from: ``last.ckpt``,
    or ``best.ckpt`` when ``last.ckpt`` is unreadable (then set aside); None to start over.

    Checkpoints of another configuration have been moved aside already (``rundir.supersede``);
    any still here under another hash are not resumed and not touched. Checkpoints trained on
    other data than ``fingerprint`` (the fold's, recorded with them by
    :func:`mark_checkpoints`) are moved to ``superseded/`` with one warning line, and the run
    starts over."""
    ckpt_dir = Path(out_dir) / CHECKPOINT_DIR
    stored, trained_on = stored_marks(out_dir)
    if not ckpt_dir.is_dir() or stored != digest:
        return None
    if fingerprint is not None and trained_on is not None:
        if not same_data(trained_on, fingerprint):
            target, _ = set_aside(out_dir, f"{digest}-data-{trained_on.split('-')[-1][:12]}")
            print(f"warning: {ckpt_dir}: written on other data (fingerprint {trained_on}, the "
                  f"fold's is now {fingerprint}); kept in {target}, training from epoch 1",
                  flush=True)  # fmt: skip
            return None
    for name in (LAST_CHECKPOINT, BEST_CHECKPOINT):
        path = ckpt_dir / name
        if path.is_file() and _readable(path):
            return path
    return None


def _readable(path: Path) -> bool:
    """Whether ``path`` loads as a checkpoint; an unreadable one is renamed, not deleted."""
    import torch  # here: the reports import this module for its hashing and must not load torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "state_dict" not in state:
            raise ValueError("no state_dict")
        return True
    except Exception as err:  # a cut-off zip, garbage bytes, a foreign object: all unusable
        set_aside_unreadable(path, err, "resuming from the last good state")
        return False


def set_aside_unreadable(path: Path, err: Exception, then: str) -> Path:
    """Rename an unreadable checkpoint to ``<name>.corrupt-<UTC time>`` (kept, never deleted,
    and never over an earlier one) and say so in one warning line ending with ``then``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    path.rename(aside)
    reason = str(err).splitlines()[0][:80] if str(err) else type(err).__name__
    print(f"warning: {path}: unreadable checkpoint ({reason}); kept as {aside.name}, {then}",
          flush=True)  # fmt: skip
    return aside


def mark_checkpoints(out_dir: Path, digest: str, fingerprint: str | None = None) -> None:
    """Record the configuration hash that the checkpoints in ``out_dir`` are written under and,
    once the data are read, the fold's fingerprint (without one, a fingerprint already recorded
    under the same hash is kept for :func:`resume_checkpoint` to compare)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    if fingerprint is None and stored_marks(out_dir)[0] == digest:
        return
    lines = [digest] if fingerprint is None else [digest, fingerprint]
    atomic.write_text(Path(out_dir) / HASH_FILE, "\n".join(lines) + "\n")


def prune_checkpoints(out_dir: Path, keep: str, best: str | None) -> None:
    """After a finished run: ``best`` keeps only the best checkpoint, ``none`` removes all,
    ``all`` keeps everything (``last.ckpt`` too)."""
    ckpt_dir = Path(out_dir) / CHECKPOINT_DIR
    if keep == "all" or not ckpt_dir.is_dir():
        return
    for path in ckpt_dir.glob("*.ckpt"):
        if keep == "none" or best is None or path.resolve() != Path(best).resolve():
            path.unlink()
