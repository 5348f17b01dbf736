"""A seed group's run folders: each member writes the folder its single run would write.

:func:`run_group` takes the composed configurations of K runs that differ only by their seed
and output folder (one model, modality and fold), holds the lock of every folder, skips the
members whose ``result.json`` already holds their configuration (as a single run skips), trains
the others as one group (:func:`selfcross.training.group.train_group`) and writes each member's
``result.json``: the record a single run writes, with the same ``config_hash`` (a group is not
part of a run's configuration), and ``seed_group`` naming the seeds trained together.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from selfcross.config import check_output_folder, validate
from selfcross.data.inputs import inputs_of, write_inputs
from selfcross.errors import ConfigError
from selfcross.models import count_parameters
from selfcross.training import grouplog, groupstate, resume, rundir
from selfcross.training.experiment import RunOutcome, Timing, _record, quiet_library_noise
from selfcross.training.gpus import job_gpu, run_device
from selfcross.training.group import precision_context, train_group
from selfcross.training.record import RESULT_FILE, write_record
from selfcross.training.runtime import apply_group_settings, freed_memory_kept
from selfcross.training.tuned import apply_tuned

log = logging.getLogger("selfcross")

MEMBER_KEYS = ("seed", "paths")
"""What may differ between the members of a group."""


def check_one_cell(cfgs: Sequence[DictConfig]) -> None:
    """Raise :class:`ConfigError` unless the configurations differ by seed and paths only."""

    def cell(cfg: DictConfig) -> dict:
        plain = OmegaConf.to_container(cfg, resolve=False)
        return {k: v for k, v in plain.items() if k not in (*MEMBER_KEYS, "hydra")}

    first = cell(cfgs[0])
    for cfg in cfgs[1:]:
        other = cell(cfg)
        differ = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
        if differ:
            raise ConfigError(
                f"seed_group: seeds {cfgs[0].seed} and {cfg.seed} differ in {differ[0]}; a "
                "group's runs may differ by seed only"
            )
    seeds = [int(c.seed) for c in cfgs]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seed_group: a seed appears twice in {seeds}")


def run_group(cfgs: Sequence[DictConfig]) -> list[RunOutcome]:
    """The runs of ``cfgs`` (one cell, several seeds), trained as one group; one outcome each."""
    cfgs = [apply_tuned(c) for c in cfgs]
    for cfg in cfgs:
        validate(cfg)
    check_one_cell(cfgs)
    precision_context(cfgs[0], run_device(cfgs[0].trainer))  # refused before any work
    quiet_library_noise()
    dirs = [Path(c.paths.output_dir) for c in cfgs]
    for cfg, out_dir in zip(cfgs, dirs, strict=True):
        check_output_folder("paths.output_dir", out_dir)
        rundir.check_owned(out_dir, bool(cfg.resume.get("allow_foreign_dir", False)))
    outcomes: dict[int, RunOutcome] = {}
    with ExitStack() as locks:
        todo = []
        for i, (cfg, out_dir) in enumerate(zip(cfgs, dirs, strict=True)):
            if not locks.enter_context(rundir.job_lock(out_dir)):
                print(f"running in another process, skipped: {out_dir}", flush=True)
                outcomes[i] = RunOutcome("busy", None, out_dir / RESULT_FILE)
                continue
            digest = resume.config_hash(cfg)
            done = resume.finished_run(cfg, out_dir, digest) if cfg.resume.skip_complete else None
            if done is not None:
                print(f"already complete, skipped: {out_dir / RESULT_FILE}", flush=True)
                outcomes[i] = RunOutcome("skipped", done, out_dir / RESULT_FILE)
                continue
            rundir.supersede(out_dir, digest)
            resume.mark_checkpoints(out_dir, digest)
            todo.append(i)
        if todo:
            outcomes.update(_train(cfgs, dirs, todo))
    return [outcomes[i] for i in range(len(cfgs))]


def _train(cfgs, dirs, todo: list[int]) -> dict[int, RunOutcome]:
    """Train the members ``todo`` as one group and write their records."""
    first = cfgs[todo[0]]
    datamodule = instantiate(first.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    seeds = [int(cfgs[i].seed) for i in todo]
    inputs = inputs_of(datamodule)  # read before training: a bad vocab.json stops it early
    steps = math.ceil(len(datamodule.datasets["train"]) / datamodule.batch_size)
    fingerprint = str(datamodule.fold_data.fingerprint)
    saved = {}
    for i in todo:
        digest = resume.config_hash(cfgs[i])
        state = None
        if cfgs[i].resume.from_checkpoint:
            state = groupstate.load_member(dirs[i], digest, fingerprint)
        if state is not None:
            saved[int(cfgs[i].seed)] = state
            print(f"resuming seed {cfgs[i].seed} after epoch {state['epoch']}: "
                  f"{groupstate.last_path(dirs[i])}", flush=True)  # fmt: skip
        resume.mark_checkpoints(dirs[i], digest, fingerprint)
    folders = [dirs[i] for i in todo]
    apply_group_settings(first.model, first.get("threads"))
    with ExitStack() as stack:
        gpu = stack.enter_context(job_gpu())  # the group holds one GPU slot (local_gpus)
        device = run_device(first.trainer, gpu)
        logs: dict[int, grouplog.MemberLog] = {}

        def member_log(k: int, member) -> grouplog.MemberLog:
            """Member ``k``'s loggers, started when it first needs them."""
            if k not in logs:
                i, module = todo[k], member.module
                logs[k] = grouplog.MemberLog(cfgs[i], count_parameters(module.network),
                                             resume.config_hash(cfgs[i]), steps,
                                             module.best_metric, member.done_epochs)  # fmt: skip
                stack.callback(logs[k].close)  # a failure closes the open W&B runs
            return logs[k]

        def save_epoch(members, net, optimizer, epoch: int) -> None:
            """The epoch's rows, then the checkpoints (a rerun keeps the rows they hold)."""
            for k, (member, folder) in enumerate(zip(members, folders, strict=True)):
                if not member.idle:
                    member_log(k, member).epoch(member.history, member.train_values)
                    groupstate.save_member(folder, member, k, net, optimizer, epoch)
            log.info(grouplog.progress_line(epoch, members, first.monitor.metric))

        stack.enter_context(freed_memory_kept())  # its large tensors reuse the heap
        started = time.perf_counter()
        members = train_group(first, seeds, datamodule, saved, save_epoch, device)
        seconds = time.perf_counter() - started
        trainer = SimpleNamespace(  # what the record reads of a single run's trainer
            strategy=SimpleNamespace(root_device=device), precision=str(first.trainer.precision)
        )
        return _write_members(cfgs, dirs, todo, members, (seconds, saved, trainer, gpu),
                              datamodule, inputs, member_log)  # fmt: skip


def _write_members(cfgs, dirs, todo, members, run, datamodule, inputs, member_log):
    """Each trained member's record, best checkpoint, inputs and final log rows; ``run``: the
    group's (seconds, saved states, trainer stand-in, GPU slot)."""
    seconds, saved, trainer, gpu = run
    seeds = [m.seed for m in members]
    outcomes = {}
    for k, (i, member) in enumerate(zip(todo, members, strict=True)):
        cfg, module = cfgs[i], member.module
        module.history, module.test_report = member.history, member.test_report
        timing = Timing(seconds, 0.0, member.best_epoch)
        resumed = groupstate.last_path(dirs[i]) if member.seed in saved else None
        record = _record(cfg, trainer, datamodule, module, timing, resumed,
                         n_params=count_parameters(module.network),
                         digest=resume.config_hash(cfg), gpu=gpu)  # fmt: skip
        record = dataclasses.replace(record, seed_group=seeds)
        best = groupstate.write_best(dirs[i], member)
        write_inputs(dirs[i], inputs)  # what selfcross.predict needs
        member_log(k, member).finish(record)
        outcomes[i] = RunOutcome("done", record, write_record(dirs[i], record))
        resume.prune_checkpoints(dirs[i], cfg.resume.keep_checkpoints, str(best))
    return outcomes
