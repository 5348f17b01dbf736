"""Pieces of the tuning tests: a tiny study's overrides, its stored study, a stand-in for
train_and_test that records, fails or stops, a whole-space override and a hand-made best.json."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import optuna

from selfcross.training import experiment
from selfcross.training import study as stored
from selfcross.training import tuned as tuned_settings


def tune_overrides(tmp: Path, data_dir: Path, *extra: str) -> list[str]:
    return [
        "model=cross",
        "modality=TA",
        f"paths.data_dir={data_dir}",
        "data.preset=tiny",
        "trainer.max_epochs=1",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu",
        "tune.folds=[1]",
        f"hydra.sweep.dir={tmp / 'study'}",
        *extra,
    ]


def load(tmp: Path) -> optuna.Study:
    storage = f"sqlite:///{tmp / 'study' / stored.STUDY_DB}"
    return optuna.load_study(study_name="study", storage=storage)


class Calls:
    """A stand-in for train_and_test that records its calls and can fail or stop on one."""

    def __init__(self, fail_on: int | None = None, stop_after: int | None = None):
        self.fail_on, self.stop_after = fail_on, stop_after
        self.outcomes: list[experiment.RunOutcome] = []

    def __call__(self, cfg):
        if len(self.outcomes) == self.fail_on:
            self.outcomes.append(None)
            raise RuntimeError("loss is nan (a planted failure)")
        outcome = experiment.train_and_test(cfg)
        self.outcomes.append(outcome)
        if len(self.outcomes) - 1 == self.stop_after:
            raise KeyboardInterrupt  # the process is stopped right after this run
        return outcome


def fake_run(score):
    """A stand-in for train_and_test: a record with ``score(cfg)`` as its validation UWA."""

    def run(cfg):
        record = SimpleNamespace(val_uwa=score(cfg), data=SimpleNamespace(fingerprint="f-1"))
        return experiment.RunOutcome("done", record, Path(cfg.paths.output_dir) / "result.json")

    return run


def only_space(space: str) -> list[str]:
    """Overrides replacing the whole search space (``tune.space={..}`` alone would merge)."""
    return ["~tune.space", f"+tune.space={space}"]


def write_best(folder: Path, **fields) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    best = {
        "model": "cross", "modality": "TA", "trial": 7, "value": 0.61, "n_trials": 40,
        "n_finished": 40, "settings": {"model.optimizer.lr": 0.0042, "model.network.hidden": 90,
                                       "model.network.num_heads": 5, "data.batch_size": 16},
    }  # fmt: skip
    best.update(fields)
    (folder / tuned_settings.BEST_FILE).write_text(json.dumps(best))
