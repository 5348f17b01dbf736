"""Training on synthetic data: the loss falls and accuracy beats chance."""

from __future__ import annotations

import json

import pytest

from selfcross.training.experiment import train_and_test
from selfcross.training.record import RESULT_FILE


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    from selfcross.config import compose
    from tests.conftest import base_overrides

    tmp = tmp_path_factory.mktemp("train")
    cfg = compose(
        [
            *base_overrides(tmp),
            f"paths.data_dir={data_dir}",
            "model=self",
            "modality=TVA",
            "trainer.max_epochs=5",
            "callbacks.early_stopping.patience=5",
            "logger=csv",
        ]
    )
    outcome = train_and_test(cfg)
    assert outcome.status == "done"
    return cfg, outcome.record


def test_loss_falls_and_accuracy_beats_chance(trained):
    cfg, result = trained
    history = result.history
    assert len(history) == 5
    assert history[-1]["train/loss"] < 0.8 * history[0]["train/loss"]
    chance = result.majority_rate
    assert 0.2 < chance < 0.3
    assert max(h["val/uwa"] for h in history) > chance + 0.15
    assert result.test_uwa > chance + 0.15
    assert result.test_wa > 1 / 7 + 0.15  # WA's chance level is 1/7


def test_best_checkpoint_is_the_one_tested(trained):
    cfg, result = trained
    history = result.history
    best = max(range(len(history)), key=lambda i: (history[i]["val/uwa"], -i))
    assert result.best_epoch == history[best]["epoch"]
    assert result.val_uwa == history[best]["val/uwa"]
    confusion = result.confusion
    n_test = result.data.splits["test"]["n"]
    assert sum(map(sum, confusion)) == n_test
    assert result.test_uwa == pytest.approx(sum(confusion[i][i] for i in range(7)) / n_test)


def test_result_file_is_complete(trained):
    cfg, result = trained
    on_disk = json.loads((cfg_path(cfg) / RESULT_FILE).read_text())
    for key in ("model", "modality", "fold", "seed", "test_wa", "test_uwa", "val_wa", "val_uwa",
                "test_wf1", "val_wf1", "best_epoch", "n_params", "confusion", "class_names",
                "data", "train_seconds"):  # fmt: skip
        assert key in on_disk, key
    assert on_disk["model"] == "self" and on_disk["modality"] == "TVA"
    assert on_disk["fold"] == 1 and on_disk["seed"] == 1
    assert on_disk["data"]["name"] == "synthetic" and on_disk["data"]["preset"] == "small"
    assert len(on_disk["confusion"]) == 7 and all(len(r) == 7 for r in on_disk["confusion"])
    assert on_disk["config"]["model"]["network"]["fusion"] == "self"


def test_the_csv_log_holds_each_epochs_validation_scores(trained):
    """The configured logger is the trainer's: metrics.csv has one val/uwa row per epoch, and
    each epoch's learning rate under ``lr`` (the W&B workspace's learning-rate panel)."""
    import csv

    cfg, result = trained
    with (cfg_path(cfg) / "csv" / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    logged = [(int(float(r["epoch"])) + 1, float(r["val/uwa"])) for r in rows if r.get("val/uwa")]
    assert logged == [(h["epoch"], pytest.approx(h["val/uwa"])) for h in result.history]
    rates = [(int(float(r["epoch"])) + 1, float(r["lr"])) for r in rows if r.get("lr")]
    assert rates == [(h["epoch"], pytest.approx(h["lr"])) for h in result.history]
    assert result.history[0]["lr"] == cfg.model.optimizer.lr


def cfg_path(cfg):
    from pathlib import Path

    return Path(cfg.paths.output_dir)


def test_every_result_field_comes_from_its_source(trained):
    """Fields of result.json that the tables, checks and resume read, each against where it
    comes from (mutants of the record's assembly survived where only a few were checked)."""
    from datetime import datetime
    from pathlib import Path

    from hydra.utils import instantiate

    import selfcross
    from selfcross.models import count_parameters
    from selfcross.models.metrics import weighted_f1
    from selfcross.training.resume import config_hash

    cfg, result = trained
    best = next(h for h in result.history if h["epoch"] == result.best_epoch)
    assert (result.val_wa, result.val_f1, result.val_loss) == (
        best["val/wa"], best["val/f1"], best["val/loss"],
    )  # fmt: skip
    confusion = result.confusion
    recall = {n: confusion[i][i] / sum(confusion[i]) for i, n in enumerate(cfg.data.class_names)
              if sum(confusion[i])}  # fmt: skip
    assert result.test_recall == pytest.approx(recall) and result.test_f1 is not None
    assert result.val_wf1 == best["val/wf1"]
    assert result.test_wf1 == pytest.approx(float(weighted_f1(confusion)), abs=1e-6)
    assert result.class_names == list(cfg.data.class_names)
    assert result.resumed_from is None and result.gpu_slot is None
    assert result.data.root == str(Path(str(cfg.data.root)).resolve())
    assert result.data.fold_path.endswith("fold01") and len(result.data.fingerprint) >= 16
    assert result.n_params == count_parameters(instantiate(cfg.model).network)
    assert result.config_hash == config_hash(cfg)
    assert (result.device, result.version) == ("cpu", selfcross.__version__)
    assert result.precision == str(cfg.trainer.precision)
    assert datetime.fromisoformat(result.finished).tzinfo is not None
    assert isinstance(result.git_commit, str | None)
