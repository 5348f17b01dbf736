"""Train one model on one fold and seed, test its best-validation-UWA checkpoint.

    python -m selfcross.run                                  # tri-modal self, synthetic data
    python -m selfcross.run model=cross modality=TV fold=3 seed=7
    python -m selfcross.run -m modality=TV,TA,VA,TVA model=self,cross   # a sweep

Every run writes ``result.json`` into its output directory. A run whose ``result.json`` exists
for the same configuration is skipped; one that was interrupted resumes from its last epoch.
A single run's folder is ``outputs/<model>-<modality>-fold<k>-seed<s>/<config hash>/`` (unless
``hydra.run.dir`` is given), so the same command finds it again. The work is
:func:`selfcross.training.experiment.train_and_test`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict

from selfcross.config import (
    CONFIG_DIR,
    check_output_folder,
    check_overrides,
    hydra_arguments,
    hydra_only_prints,
    user_errors,
    validate,
)
from selfcross.training.experiment import train_and_test
from selfcross.training.groupplan import member_seeds
from selfcross.training.resume import config_hash
from selfcross.training.rundir import check_owned
from selfcross.training.tuned import apply_tuned
from selfcross.utils import atomic
from selfcross.utils.hydra_files import raise_hydra_write_error


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> dict:
    with user_errors():
        raise_hydra_write_error()  # .hydra/*.yaml could not be written (a full disk)
        if member_seeds(cfg) is not None:
            return run_seed_group(cfg)
        outcome = train_and_test(cfg)
    record = outcome.record
    if record is None:  # run by another process
        return {"status": outcome.status}
    return {"status": outcome.status, "test_wa": record.test_wa, "test_uwa": record.test_uwa}


GROUP_DIRS: dict[int, Path] = {}
"""A single run's seed group: each member's folder (:func:`check_before_hydra`)."""


def run_seed_group(cfg: DictConfig) -> dict:
    """``seed_group``: the job's seeds trained as one group, each member in its own folder (a
    sweep's subfolder of its seed, or a single run's folder); one status per member."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from selfcross.training import grouplog
    from selfcross.training.groupplan import job_subdir, member_cfg, sweep_member_dir
    from selfcross.training.grouprun import run_group

    seeds, own = member_seeds(cfg), Path(str(cfg.paths.output_dir))
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        subdir = job_subdir(cfg)
        dirs = {s: sweep_member_dir(own, subdir, seeds[0], s) for s in seeds}
    else:
        dirs = {**GROUP_DIRS, seeds[0]: own}
    cfgs = [member_cfg(cfg, s, dirs[s]) for s in seeds]
    hydra = HydraConfig.get()
    with grouplog.mirrored_log(f"{hydra.job.name}.log", [dirs[s] for s in seeds[1:]]):
        statuses = [o.status for o in run_group(cfgs)]
    for seed, member, status in zip(seeds[1:], cfgs[1:], statuses[1:], strict=True):
        if status == "done":  # the job's own folder has Hydra's files already
            overrides = grouplog.member_overrides(list(hydra.overrides.task), seed)
            grouplog.write_job_files(own, member, dirs[seed], overrides)
    status = "done" if "done" in statuses else statuses[0]
    return {"status": status, "members": statuses}


def single_run_dir(first: DictConfig, argv: list[str]) -> Path | None:
    """The folder of a single run that names none (``hydra.run.dir``): ``conf/``'s
    ``outputs/<model>-<modality>-fold<k>-seed<s>`` with the configuration hash below it, the
    same for the same command, so that a rerun resumes (or skips) the run there."""
    if any(a.lstrip("+~").startswith("hydra.run.dir=") for a in argv):
        return None
    return Path(str(first.hydra.run.dir)) / config_hash(first)


def check_before_hydra(argv: list[str]) -> Path | None:
    """Everything that can refuse the command, before Hydra creates a folder: the overrides
    (one line for a typo), the output folder, and for a single run the whole configuration, so
    that a refused run leaves no folder holding only Hydra's files. Hydra's own flags that only
    print (``--cfg job``, ``--info``, ``--help``) run no job and need no folder. Returns the
    single run's own folder when the command names none (:func:`single_run_dir`)."""
    arguments = hydra_arguments(argv)
    first = check_overrides(argv)
    if hydra_only_prints(arguments):
        return None
    if arguments.multirun:  # (the sweeper checks each job and its folder)
        check_output_folder("hydra.sweep.dir", first.hydra.sweep.dir)
        return None
    named = str(first.hydra.run.dir)
    run_dir = single_run_dir(first, argv) or Path(named)
    seeds = member_seeds(first)
    if seeds is not None:
        return check_group_dirs(first, argv, seeds, run_dir)
    check_output_folder("hydra.run.dir", run_dir)
    check_owned(run_dir, first.resume.allow_foreign_dir)
    with open_dict(first):
        del first["hydra"]
    validate(apply_tuned(first))
    atomic.make_folder(run_dir)  # here, not in Hydra: a full disk is one line, not a traceback
    return run_dir if str(run_dir) != named else None


def check_group_dirs(first: DictConfig, argv: list[str], seeds: list[int], run_dir: Path):
    """A single run's seed group: each member's own folder (as its single run names it),
    checked, and every member's configuration validated; returns the first member's."""
    from omegaconf import OmegaConf

    from selfcross.errors import ConfigError

    if single_run_dir(first, argv) is None:
        raise ConfigError("hydra.run.dir: names one folder; a seed group writes one per seed")
    GROUP_DIRS.clear()
    for seed in seeds:
        member = OmegaConf.create(OmegaConf.to_container(first, resolve=False))
        with open_dict(member):
            member.seed = seed
        GROUP_DIRS[seed] = single_run_dir(member, argv).absolute()
        check_output_folder("hydra.run.dir", GROUP_DIRS[seed])
        check_owned(GROUP_DIRS[seed], first.resume.allow_foreign_dir)
        with open_dict(member):
            del member["hydra"]
        validate(apply_tuned(member))
    return run_dir


if __name__ == "__main__":
    with user_errors():
        run_dir = check_before_hydra(sys.argv[1:])
        if run_dir is not None:
            sys.argv.append(f"hydra.run.dir={run_dir}")
            print(f"run folder: {run_dir} (the same command resumes or skips it)", flush=True)
    main()
