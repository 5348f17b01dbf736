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
from omegaconf import DictConfig

from selfcross.config import CONFIG_DIR, check_output_folder, check_overrides, user_errors
from selfcross.training.experiment import train_and_test
from selfcross.training.resume import config_hash
from selfcross.training.rundir import check_owned


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> dict:
    with user_errors():
        outcome = train_and_test(cfg)
    record = outcome.record
    if record is None:  # run by another process
        return {"status": outcome.status}
    return {"status": outcome.status, "test_wa": record.test_wa, "test_uwa": record.test_uwa}


def single_run_dir(first: DictConfig, argv: list[str]) -> Path | None:
    """The folder of a single run that names none (``hydra.run.dir``): ``conf/``'s
    ``outputs/<model>-<modality>-fold<k>-seed<s>`` with the configuration hash below it, the
    same for the same command, so that a rerun resumes (or skips) the run there."""
    if any(a.lstrip("+~").startswith("hydra.run.dir=") for a in argv):
        return None
    return Path(str(first.hydra.run.dir)) / config_hash(first)


if __name__ == "__main__":
    with user_errors():
        first = check_overrides(sys.argv[1:])
        if {"-m", "--multirun"} & set(sys.argv[1:]):  # (the sweeper checks each job folder)
            check_output_folder("hydra.sweep.dir", first.hydra.sweep.dir)
        else:  # before Hydra writes .hydra/ there
            run_dir = single_run_dir(first, sys.argv[1:]) or Path(first.hydra.run.dir)
            check_output_folder("hydra.run.dir", run_dir)
            check_owned(run_dir, first.resume.allow_foreign_dir)
            if str(run_dir) != str(first.hydra.run.dir):
                sys.argv.append(f"hydra.run.dir={run_dir}")
                print(f"run folder: {run_dir} (the same command resumes or skips it)", flush=True)
    main()
