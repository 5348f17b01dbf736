"""A run interrupted after a checkpoint and resumed gives the uninterrupted run's numbers: the
checkpoints carry the random streams (training/rng.py), so shuffling and dropout continue."""

from __future__ import annotations

import lightning as L
import pytest

from selfcross.config import compose
from selfcross.training import experiment
from selfcross.training.experiment import train_and_test
from tests.conftest import base_overrides

SETTINGS = ("debug=fast", "trainer.max_epochs=3", "callbacks.early_stopping.patience=100",
            "logger=none", "trainer.enable_progress_bar=false")  # fmt: skip


class StopAtEpoch(L.Callback):
    """Stops the run as a kill would, once epoch ``epoch - 1``'s checkpoints are written."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch + 1 == self.epoch:
            raise RuntimeError("killed")


def test_a_resumed_run_equals_the_uninterrupted_one(tmp_path, data_dir, monkeypatch):
    def cfg(folder):
        return compose([*base_overrides(tmp_path / folder), f"paths.data_dir={data_dir}",
                        *SETTINGS])  # fmt: skip

    whole = train_and_test(cfg("whole")).record
    build = experiment.build_trainer

    def stopped_at_2(*args, **kwargs):
        trainer = build(*args, **kwargs)
        trainer.callbacks.insert(0, StopAtEpoch(2))
        return trainer

    monkeypatch.setattr(experiment, "build_trainer", stopped_at_2)
    with pytest.raises(BaseException, match="killed"):
        train_and_test(cfg("split"))
    monkeypatch.setattr(experiment, "build_trainer", build)
    again = train_and_test(cfg("split")).record
    assert again.resumed_from is not None and again.resumed_from.endswith("last.ckpt")
    strip = [{k: v for k, v in e.items() if "time" not in k and "second" not in k}
             for e in whole.history]  # fmt: skip
    assert [{k: v for k, v in e.items() if "time" not in k and "second" not in k}
            for e in again.history] == strip  # fmt: skip
    assert (again.test_uwa, again.test_wa, again.confusion) == (
        whole.test_uwa, whole.test_wa, whole.confusion)  # fmt: skip
