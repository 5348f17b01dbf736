"""training/experiment.py's pieces without a training run: trainer and logger wiring, the CSV
history kept on a resume, the best epoch and the data summary of a run that skips the test."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from selfcross.errors import Interrupted
from selfcross.training import experiment


@pytest.fixture
def recorded(monkeypatch):
    """experiment.instantiate replaced: each call is recorded and returns a named stand-in."""
    calls = []

    def fake(node, **kwargs):
        calls.append((node, kwargs))
        return f"made-{len(calls)}"

    monkeypatch.setattr(experiment, "instantiate", fake)
    return calls


def test_a_launcher_gpu_slot_becomes_the_trainers_only_device(make_cfg, recorded, monkeypatch):
    cfg = make_cfg("logger=csv")
    n_callbacks = sum(1 for c in cfg.callbacks.values() if c)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert experiment.build_trainer(cfg, ["csv-logger"], gpu=3) == f"made-{n_callbacks + 1}"
    node, kwargs = recorded[-1]
    assert node == cfg.trainer
    from selfcross.training.lightning_io import AtomicCheckpointIO  # checkpoints in their folder

    assert [type(p) for p in kwargs.pop("plugins")] == [AtomicCheckpointIO]
    from selfcross.training.rng import RandomStreams  # a resumed run continues the draws

    assert isinstance(kwargs["callbacks"].pop(), RandomStreams)
    assert kwargs == {
        "callbacks": [f"made-{i + 1}" for i in range(n_callbacks)],
        "logger": ["csv-logger"],
        "accelerator": "gpu",
        "devices": [3],
    }
    assert [n for n, _ in recorded[:-1]] == [c for c in cfg.callbacks.values() if c]

    recorded.clear()
    experiment.build_trainer(cfg, [], gpu=None)  # no slot: the configured accelerator
    assert [type(p) for p in recorded[-1][1].pop("plugins")] == [AtomicCheckpointIO]
    assert isinstance(recorded[-1][1]["callbacks"].pop(), RandomStreams)
    assert recorded[-1][1] == {"callbacks": [f"made-{i + 1}" for i in range(n_callbacks)],
                               "logger": False}  # fmt: skip
    recorded.clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    experiment.build_trainer(cfg, ["csv-logger"], gpu=3)  # a slot but no CUDA: no override
    assert set(recorded[-1][1]) == {"callbacks", "logger", "plugins"}


def test_loggers_are_the_configured_ones_and_one_that_cannot_start_is_left_out(make_cfg):
    assert experiment.build_loggers(make_cfg("logger=none")) == []
    (logger,) = experiment.build_loggers(make_cfg("logger=csv"))
    assert isinstance(logger, CSVLogger) and logger.name == "csv"
    cfg = make_cfg("logger=csv", "+logger.failed._target_=builtins.print")  # returns None
    assert [type(lg) for lg in experiment.build_loggers(cfg)] == [CSVLogger]


def _csv_logger(tmp_path, epochs):
    logger = CSVLogger(tmp_path, name="csv", version="")
    path = tmp_path / "csv" / "metrics.csv"
    path.parent.mkdir(parents=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["epoch", "step", "val/uwa"])
        for e in epochs:
            out.writerow([e, 10 * e + 9, 0.1 * e])
        out.writerow(["", 99, ""])  # a row without an epoch
    return logger, path


def test_a_resume_keeps_the_csv_rows_of_the_epochs_its_checkpoint_holds(tmp_path):
    logger, path = _csv_logger(tmp_path, [0, 1, 2, 3])
    ckpt = tmp_path / "last.ckpt"
    torch.save({"epoch": 1}, ckpt)  # epochs 0 and 1 (0-based) finished
    experiment.keep_csv_history([object(), logger], ckpt)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["epoch", "step", "val/uwa"], ["0", "9", "0.0"], ["1", "19", "0.1"]]
    assert logger.experiment.metrics_keys == ["epoch", "step", "val/uwa"]


def test_a_fresh_run_starts_its_csv_history_empty(tmp_path):
    logger, path = _csv_logger(tmp_path, [0, 1])
    experiment.keep_csv_history([logger], None)
    assert not path.exists() or path.read_text() == ""


def test_without_checkpoints_the_best_epoch_is_the_first_best_of_the_history():
    module = SimpleNamespace(best_metric="val/uwa", history=[])
    assert experiment._history_best(module) == 0
    module.history = [{"val/uwa": 0.3}, {"val/uwa": 0.5}, {"val/wa": 0.9}, {"val/uwa": 0.5}]
    assert experiment._history_best(module) == 2  # 1-based; the later tie and the gap lose
    module.best_metric = "val/wa"
    assert experiment._history_best(module) == 3


class Untouchable:
    def __getattr__(self, name):
        raise AssertionError(f"the test split was read ({name})")


class Split(SimpleNamespace):
    def __len__(self):
        return len(self.labels)


def test_a_run_without_test_summarises_train_and_dev_only():
    splits = {
        "train": Split(labels=np.array([0, 0, 0, 2, 5]), n_dropped=1),
        "dev": Split(labels=np.array([6, 6]), n_dropped=0),
        "test": Untouchable(),
    }
    datamodule = SimpleNamespace(fold_data=SimpleNamespace(splits=splits), num_classes=7)
    assert experiment._summary_without_test(datamodule) == {
        "train": {"n": 5, "dropped_no_video": 1, "class_counts": [3, 0, 1, 0, 0, 1, 0]},
        "dev": {"n": 2, "dropped_no_video": 0, "class_counts": [0, 0, 0, 0, 0, 0, 2]},
    }


def test_a_record_names_its_resume_checkpoint_and_commit_and_survives_an_empty_history(
    make_cfg, monkeypatch
):
    """A resumed run without a validation epoch in its history (validation off): the record
    names the checkpoint it resumed from and the checkout's commit, and its validation fields
    are empty rather than the run failing after training."""
    seen = []
    monkeypatch.setattr(experiment, "git_commit", lambda d: seen.append(d) or "c0ffee-dirty")
    cfg = make_cfg("run_test=false")
    splits = {"train": Split(labels=np.array([0, 1, 1]), n_dropped=0),
              "dev": Split(labels=np.array([2]), n_dropped=0), "test": Untouchable()}  # fmt: skip
    datamodule = SimpleNamespace(
        fold_data=SimpleNamespace(splits=splits, fingerprint="f" * 16),
        num_classes=cfg.data.num_classes,
        fold_path=Path("/data/fold01"),
        scheme=lambda: None,
    )
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device="cpu"), precision="32-true")
    module = SimpleNamespace(history=[])
    timing = experiment.Timing(train_seconds=1.234, test_seconds=0.0, best_epoch=0)
    record = experiment._record(cfg, trainer, datamodule, module, timing, Path("/r/last.ckpt"),
                                n_params=7, digest="abc", gpu=2)  # fmt: skip
    assert record.resumed_from == "/r/last.ckpt" and record.gpu_slot == 2
    assert record.git_commit == "c0ffee-dirty" and seen == [experiment.CONFIG_DIR.parent]
    assert (record.val_wa, record.val_uwa, record.val_f1, record.val_loss) == (None,) * 4
    assert (record.best_epoch, record.epochs, record.train_seconds) == (0, 0, 1.23)
    assert record.test_wa is None and record.test_recall is None
    fresh = experiment._record(cfg, trainer, datamodule, module, timing, None, n_params=7,
                               digest="abc", gpu=None)  # fmt: skip
    assert fresh.resumed_from is None


def test_the_tested_checkpoint_is_the_monitored_callbacks_best():
    """The best-validation checkpoint, never the every-epoch last.ckpt callback's; none when
    no checkpoint callback monitors a metric (the last weights are then tested)."""
    last = SimpleNamespace(monitor=None, best_model_path="out/last.ckpt")
    best = SimpleNamespace(monitor="val/uwa", best_model_path="out/best.ckpt")
    assert experiment._best_path(SimpleNamespace(checkpoint_callbacks=[last, best])) == (
        "out/best.ckpt"
    )
    assert experiment._best_path(SimpleNamespace(checkpoint_callbacks=[last])) == ""
    assert experiment._best_path(SimpleNamespace(checkpoint_callbacks=[])) == ""


class Pickled:
    """An object only unpickling can rebuild."""


def test_the_best_epoch_is_read_without_unpickling(tmp_path):
    torch.save({"epoch": 4}, tmp_path / "plain.ckpt")
    assert experiment._best_epoch(str(tmp_path / "plain.ckpt")) == 5  # 1-based
    torch.save({"epoch": 4, "extra": Pickled()}, tmp_path / "pickled.ckpt")
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        experiment._best_epoch(str(tmp_path / "pickled.ckpt"))


def test_runs_test_unless_told_not_to(make_cfg):
    from omegaconf import open_dict

    assert experiment.run_test(make_cfg()) is True
    assert experiment.run_test(make_cfg("run_test=false")) is False
    older = make_cfg()
    with open_dict(older):
        del older["run_test"]  # a configuration written before the setting existed
    assert experiment.run_test(older) is True


def test_the_closing_line_gives_test_scores_or_the_best_validation_uwa():
    tested = SimpleNamespace(test_wa=0.4741, test_uwa=0.6169, val_uwa=0.7)
    assert experiment._scores(tested) == "test WA 0.474  UWA 0.617"
    untested = SimpleNamespace(test_wa=None, test_uwa=None, val_uwa=0.5004)
    assert experiment._scores(untested) == (
        "best validation UWA 0.500 (test split not evaluated: run_test=false)"
    )
    untested.val_uwa = None
    assert experiment._scores(untested).startswith("best validation UWA - (")


class StoppedTrainer:
    """A trainer whose fit ends the way Lightning ends it on a signal, in epoch 3 (0-based 2)."""

    def __init__(self, raised: BaseException | None, interrupted: bool):
        self.raised, self.interrupted, self.current_epoch = raised, interrupted, 2

    def fit(self, *args, **kwargs):
        if self.raised is not None:
            raise self.raised


@pytest.mark.parametrize(
    ("raised", "interrupted", "code", "words"),
    [
        (SIGTERMException(), False, 143, "interrupted by SIGTERM in epoch 3; rerun the same"),
        (SystemExit(1), True, 130, "interrupted by Ctrl-C (SIGINT) in epoch 3; rerun the"),
        (None, True, 143, "training was interrupted; rerun to resume (out/run)"),
    ],
)
def test_a_signal_during_fit_names_the_epoch_and_the_exit_code(raised, interrupted, code, words):
    trainer = StoppedTrainer(raised, interrupted)
    with pytest.raises(Interrupted) as caught:
        experiment._fit_and_test(trainer, None, None, None, Path("out/run"))
    assert words in str(caught.value) and "out/run" in str(caught.value)
    assert caught.value.exit_code == code


def test_an_exit_that_is_not_ctrl_c_is_not_taken_for_an_interruption():
    with pytest.raises(SystemExit):
        experiment._fit_and_test(StoppedTrainer(SystemExit(3), False), None, None, None, Path("o"))


class RecordingTrainer:
    """Records what fit and test were given; its monitored checkpoint is ``best``."""

    def __init__(self, best: str):
        self.calls: list[tuple[str, tuple, dict]] = []
        self.interrupted, self.current_epoch = False, 0
        self.checkpoint_callbacks = [SimpleNamespace(monitor="val/uwa", best_model_path=best)]

    def fit(self, *args, **kwargs):
        self.calls.append(("fit", args, kwargs))

    def test(self, *args, **kwargs):
        self.calls.append(("test", args, kwargs))


def test_fit_resumes_from_the_given_checkpoint_and_test_loads_the_best(tmp_path):
    """A resumed fit starts from ``ckpt_path`` (without it the run would silently start over
    and still name the checkpoint in result.json); the test loads the best checkpoint; both
    read checkpoints as weights only."""
    best = tmp_path / "best.ckpt"
    torch.save({"epoch": 6}, best)
    trainer = RecordingTrainer(str(best))
    module, data = object(), object()
    timing = experiment._fit_and_test(trainer, data, module, "out/last.ckpt", tmp_path)
    assert trainer.calls == [
        (
            "fit",
            (module,),
            {"datamodule": data, "ckpt_path": "out/last.ckpt", "weights_only": True},
        ),
        ("test", (module,), {"datamodule": data, "ckpt_path": str(best), "weights_only": True}),
    ]
    assert timing.best_epoch == 7 and timing.train_seconds >= 0 and timing.test_seconds >= 0


def test_a_runs_settings_reach_its_fit_and_a_failed_fit_closes_the_loggers_as_failed(
    make_cfg, data_dir, monkeypatch
):
    """What train_and_test hands to training, seen from inside a stand-in fit: the seed, the
    thread count, the data set up, the hyperparameters given to the loggers (with the parameter
    count and configuration hash); and a fit that fails leaves the loggers closed with exit code
    1 (a W&B run would otherwise be marked as finished)."""
    from lightning.pytorch.loggers import CSVLogger

    from selfcross.models import count_parameters
    from selfcross.training.resume import config_hash

    threads = torch.get_num_threads()
    cfg = make_cfg(f"paths.data_dir={data_dir}", "debug=fast", "logger=csv", "seed=7",
                   f"threads={threads + 1}")  # fmt: skip
    seen = {}

    def failing_fit(trainer, datamodule, module, ckpt_path, out_dir, test):
        (logger,) = trainer.loggers
        assert isinstance(logger, CSVLogger)
        seen.update(seed=torch.initial_seed(), threads=torch.get_num_threads(), ckpt=ckpt_path,
                    test=test, out=out_dir, hparams=dict(logger.experiment.hparams),
                    n_params=count_parameters(module.network),
                    train=len(datamodule.fold_data.splits["train"]))  # fmt: skip
        raise RuntimeError("out of memory")

    closed = []
    monkeypatch.setattr(experiment, "_fit_and_test", failing_fit)
    monkeypatch.setattr(experiment.tracking, "finish", lambda loggers, code: closed.append(code))
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            experiment.train_and_test(cfg)
    finally:
        torch.set_num_threads(threads)
    assert (seen["seed"], seen["ckpt"], seen["test"]) == (7, None, True)
    assert seen["threads"] == threads + 1
    assert seen["out"] == Path(cfg.paths.output_dir) and seen["train"] > 0
    assert seen["hparams"]["n_params"] == seen["n_params"] > 0
    assert seen["hparams"]["config_hash"] == config_hash(cfg)
    assert seen["hparams"]["seed"] == 7  # the resolved configuration
    assert closed == [1]
