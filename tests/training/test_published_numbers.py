"""Numbers a user would publish, checked where a planted bug used to pass the whole suite: the
test split's labels and the confusion matrix against the fold files, a study's objective over
all its folds, and ``best.json`` holding the best of several complete trials."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from selfcross.config import compose
from selfcross.training import tuned as tuned_files
from selfcross.training import tuning
from selfcross.training.experiment import train_and_test
from tests.conftest import base_overrides
from tests.helpers.tunekit import fake_run, only_space, tune_overrides


def test_the_test_split_is_the_fold_files_and_the_confusion_adds_up(tmp_path, data_dir):
    """Permuting the test labels in the data module's ``setup`` keeps every class count and so
    the confusion's row sums: what catches it is the per-utterance labels (those evaluated vs
    the fold's files) and a confusion recomputed from the predictions and the files' labels."""
    from selfcross.analysis.reload import reload_run

    cfg = compose([*base_overrides(tmp_path), f"paths.data_dir={data_dir}", "data.preset=tiny",
                   "model=self", "modality=TV", "trainer.max_epochs=2",
                   "trainer.num_sanity_val_steps=0"])  # fmt: skip
    outcome = train_and_test(cfg)
    record = outcome.record
    confusion = np.array(record.confusion)
    counts = record.data.splits["test"]["class_counts"]
    assert confusion.sum(axis=1).tolist() == list(counts)  # rows: true class
    fold = Path(record.data.fold_path)
    labels = np.load(fold / "test_label.npy", allow_pickle=False)
    video = np.load(fold / "test_video_seqN.npy", allow_pickle=False)
    expected = labels[video > 0] if cfg.data.drop_zero_video else labels
    assert len(set(expected.tolist())) > 1
    assert np.bincount(expected, minlength=len(counts)).tolist() == list(counts)

    run = reload_run(outcome.path.parent)
    test = run.datamodule.datasets["test"]
    assert test.labels.tolist() == expected.tolist()  # the labels evaluated, in file order
    with torch.no_grad():
        batch = test.__getitems__(list(range(len(test))))
        predictions = run.module(batch).argmax(dim=-1).numpy()
    mine = np.zeros_like(confusion)
    np.add.at(mine, (expected, predictions), 1)
    assert mine.tolist() == record.confusion
    assert record.test_uwa == pytest.approx(float(np.mean(predictions == expected)))


LR_SPACE = only_space("{model.optimizer.lr: {type: categorical, "
                      "choices: [0.001, 0.002, 0.003, 0.004, 0.005]}}")  # fmt: skip


def test_the_objective_is_the_mean_over_every_tuning_fold(tmp_path, data_dir):
    """With two folds whose scores differ, each trial's value is their mean (the objective
    taken from the first fold only passed every one-fold study)."""
    scores = {1: 0.40, 2: 0.70}
    overrides = tune_overrides(tmp_path, data_dir, "tune.n_trials=2", "tune.folds=[1,2]",
                               *LR_SPACE)  # fmt: skip
    outcome = tuning.run_study(
        overrides, run=fake_run(lambda cfg: scores[cfg.fold] + cfg.model.optimizer.lr)
    )
    study = optuna.load_study(
        study_name="study", storage=f"sqlite:///{outcome.directory}/study.db"
    )
    for trial in study.trials:
        lr = trial.user_attrs["values"]["model.optimizer.lr"]
        assert trial.value == pytest.approx((0.40 + 0.70) / 2 + lr)
        assert trial.user_attrs["fold_scores"] == pytest.approx({"1": 0.40 + lr, "2": 0.70 + lr})
    assert outcome.best["folds"] == [1, 2]


def test_best_json_holds_the_best_of_several_complete_trials(tmp_path, data_dir):
    overrides = tune_overrides(tmp_path, data_dir, "tune.n_trials=5", "tune.folds=[1,2]",
                               *LR_SPACE)  # fmt: skip
    outcome = tuning.run_study(overrides, run=fake_run(lambda cfg: cfg.model.optimizer.lr * 100))
    study = optuna.load_study(
        study_name="study", storage=f"sqlite:///{outcome.directory}/study.db"
    )
    values = {t.number: t.value for t in study.trials}
    assert len(values) == 5 and len(set(values.values())) > 1  # several, different
    top = max(values.values())
    winner = min(n for n, v in values.items() if v == top)  # ties: the earlier trial
    best = json.loads((outcome.directory / tuned_files.BEST_FILE).read_text())
    assert best["trial"] == winner and best["value"] == pytest.approx(top)
    assert best["settings"] == study.trials[winner].user_attrs["values"]
    assert best["settings"]["model.optimizer.lr"] == pytest.approx(top / 100)
    assert best["n_complete"] == 5 and best["fold_scores"] == {"1": top, "2": top}
    assert best["data"]["fingerprints"] == {"1": "f-1", "2": "f-1"}
    assert best["data"]["name"] == "synthetic" and best["data"]["preset"] == "tiny"
