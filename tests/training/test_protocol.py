"""The protocol a result depends on: early stopping, the tested checkpoint, the seed.

A scripted validation metric (a callback logging given values, one per epoch) is monitored
instead of val/uwa, so the best epoch and the epoch early stopping fires at are known in advance;
everything else is the real run built from the composed configuration.
"""

from __future__ import annotations

import time

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from selfcross.config import compose
from selfcross.training.experiment import train_and_test
from tests.conftest import base_overrides

SCRIPT = [0.5, 0.9, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1]
"""Best at epoch 2; with patience 2 (mode max) early stopping fires after epoch 4. With mode
min it would fire after epoch 3 (0.5 is never beaten from below), never at 4."""


class ScriptedMetric(L.Callback):
    """Logs ``val/scripted`` = ``values[epoch]`` at the end of each validation epoch, and saves
    the weights training ended with to ``final_weights`` (Lightning's last.ckpt is written only
    with a new best, so it does not hold them)."""

    def __init__(self, values, final_weights: str):
        self.values = list(values)
        self.final_weights = final_weights
        self.epochs = 0

    def on_train_end(self, trainer, pl_module):
        torch.save(
            {"epoch": self.epochs - 1, "state_dict": pl_module.state_dict()},
            self.final_weights,
        )

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            value = torch.tensor(self.values[trainer.current_epoch])
            self.epochs += 1
            pl_module.log("val/scripted", value)


def scripted_config(tmp, data_dir, *extra: str):
    """The real configuration of a short cross T+V run monitoring the scripted metric."""
    return compose(
        [
            *base_overrides(tmp),
            f"paths.data_dir={data_dir}",
            "debug=fast",
            "model=cross",
            "modality=TV",
            "trainer.max_epochs=8",
            "callbacks.early_stopping.patience=2",
            "monitor.metric=val/scripted",
            f"+callbacks.scripted._target_={__name__}.ScriptedMetric",
            f"+callbacks.scripted.values={SCRIPT}",
            f"+callbacks.scripted.final_weights={tmp / 'final.pt'}",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory, data_dir):
    cfg = scripted_config(tmp_path_factory.mktemp("protocol"), data_dir)
    outcome = train_and_test(cfg)
    assert outcome.status == "done"
    return cfg, outcome.record


def test_early_stopping_fires_patience_epochs_after_the_best(scripted_run):
    cfg, record = scripted_run
    assert cfg.monitor.mode == "max" and cfg.callbacks.early_stopping.patience == 2
    assert record.best_epoch == 2
    assert record.epochs == 4 and [h["epoch"] for h in record.history] == [1, 2, 3, 4]
    assert record.val_uwa == record.history[1]["val/uwa"]


def test_the_best_checkpoint_is_tested_not_the_last_epoch(scripted_run, tmp_path):
    """Test metrics recomputed from best.ckpt are those in the record; the last epoch's
    weights give others."""
    cfg, record = scripted_run

    def test_report(path: str) -> tuple[int, dict]:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module = instantiate(cfg.model)
        module.load_state_dict(state["state_dict"])
        datamodule = instantiate(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("test")
        trainer = L.Trainer(
            accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path
        )
        trainer.test(module, datamodule=datamodule, verbose=False)
        return int(state["epoch"]) + 1, module.test_report

    best_epoch, best = test_report(f"{cfg.paths.output_dir}/checkpoints/best.ckpt")
    last_epoch, last = test_report(cfg.callbacks.scripted.final_weights)
    assert (best_epoch, last_epoch) == (2, 4)
    assert best["confusion"] == record.confusion
    assert best["loss"] == pytest.approx(record.test_loss, rel=1e-6)
    assert best["uwa"] == pytest.approx(record.test_uwa) and best["wa"] == pytest.approx(
        record.test_wa
    )
    assert last["loss"] != pytest.approx(record.test_loss, rel=1e-6)


def test_a_run_without_test_takes_the_best_epoch_from_its_checkpoint(tmp_path, data_dir, capsys):
    """run_test=false (tuning trials): the same best epoch as a tested run, no test field, no
    test time, the test split left out of the data summary, and a closing line that says so."""
    started = time.perf_counter()
    outcome = train_and_test(scripted_config(tmp_path, data_dir, "run_test=false"))
    elapsed = time.perf_counter() - started
    record = outcome.record
    closing = capsys.readouterr().out.splitlines()[-1]
    assert closing.startswith(
        f"best validation UWA {record.val_uwa:.3f} (test split not evaluated: run_test=false)"
        "  (cross TV, fold 1, seed 1; best epoch 2 of 4, "
    )
    assert outcome.status == "done"
    assert (record.best_epoch, record.epochs) == (2, 4)
    assert record.val_uwa == record.history[1]["val/uwa"]
    assert record.test_wa is record.test_uwa is record.confusion is record.test_recall is None
    assert record.test_seconds == 0.0 and 0 < record.train_seconds < elapsed
    assert set(record.data.splits) == {"train", "dev"}


def test_without_a_checkpoint_callback_the_last_weights_are_tested(tmp_path, data_dir, caplog):
    cfg = scripted_config(tmp_path, data_dir, "callbacks.model_checkpoint=null")
    started = time.perf_counter()
    with caplog.at_level("WARNING", logger="selfcross"):
        record = train_and_test(cfg).record
    elapsed = time.perf_counter() - started
    assert "No checkpoint callback: testing the weights of the last epoch" in caplog.text
    assert (record.best_epoch, record.epochs) == (4, 4)  # the last epoch, not the best (2)
    assert record.test_wa is not None and record.confusion is not None
    assert 0 < record.test_seconds < elapsed - record.train_seconds


def test_without_checkpoint_or_test_the_best_epoch_comes_from_the_history(tmp_path, data_dir):
    cfg = compose([*base_overrides(tmp_path), f"paths.data_dir={data_dir}", "debug=fast",
                   "model=cross", "modality=TV", "trainer.max_epochs=3", "run_test=false",
                   "callbacks.model_checkpoint=null"])  # fmt: skip
    record = train_and_test(cfg).record
    scores = [h["val/uwa"] for h in record.history]
    assert record.epochs == 3 and record.best_epoch == 1 + scores.index(max(scores))
    assert record.test_wa is None


def test_the_dataset_names_the_selection_metric_and_monitor_follows_it():
    """``data.selection_metric`` (conf/data/<name>.yaml) is what ``monitor.metric`` and with it
    checkpointing, early stopping and the module's best metric follow; IEMOCAP's is the paper's
    val/uwa, MELD's the field's val/wf1; an explicit ``monitor.metric`` still wins; the hash
    follows the resolved monitor."""
    from selfcross.training.resume import config_hash

    def composed(*extra):
        return compose(["data=iemocap", "data.root=/iemocap", *extra])

    paper = composed()
    assert paper.data.selection_metric == paper.monitor.metric == "val/uwa"
    wf1 = composed("data.selection_metric=val/wf1")
    assert wf1.monitor.metric == wf1.model.best_metric == "val/wf1"
    assert wf1.callbacks.model_checkpoint.monitor == wf1.callbacks.early_stopping.monitor
    assert wf1.callbacks.model_checkpoint.monitor == "val/wf1"
    assert config_hash(wf1) != config_hash(paper)
    assert config_hash(wf1) == config_hash(composed("monitor.metric=val/wf1"))
    assert composed("data.selection_metric=val/wf1", "monitor.metric=val/wa").monitor.metric == (
        "val/wa"
    )
    assert compose(["data=meld", "data.root=/meld"]).monitor.metric == "val/wf1"  # the field's


def test_a_run_selecting_on_weighted_f1_tests_its_best_validation_wf1_epoch(tmp_path, data_dir):
    cfg = compose([*base_overrides(tmp_path), f"paths.data_dir={data_dir}", "debug=fast",
                   "model=self", "modality=TV", "trainer.max_epochs=3",
                   "data.selection_metric=val/wf1"])  # fmt: skip
    record = train_and_test(cfg).record
    scores = [h["val/wf1"] for h in record.history]
    assert record.best_epoch == 1 + scores.index(max(scores))
    assert record.val_wf1 == max(scores)
    assert 0.0 <= record.test_wf1 <= 1.0
    # the fold's evaluation scheme: the synthetic folds are random, with the generator's seed
    assert record.data.scheme == {"split": "random", "seed": 0, "class_set": None}
