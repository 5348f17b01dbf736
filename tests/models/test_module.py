"""EmotionRecognizer's epoch values and test report on hand-made logits (docs/mutation.md).

Behaviours mutation testing found unchecked: the epoch loss over batches of unequal size, and
the per-class recall of a class absent from the test split.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from selfcross.models import EmotionRecognizer


class GivenLogits(torch.nn.Module):
    """Returns ``batch["logits"]``: the test decides every prediction and loss."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.classifier = torch.nn.Sequential(torch.nn.Linear(1, num_classes))

    def forward(self, batch):
        return batch["logits"]


def _recognizer(monkeypatch) -> tuple[EmotionRecognizer, dict]:
    module = EmotionRecognizer(GivenLogits(3), torch.optim.SGD, class_names=["a", "b", "c"])
    logged: dict = {}
    monkeypatch.setattr(module, "log_dict", lambda values, **kw: logged.update(values))
    return module, logged


def test_the_epoch_loss_weights_each_utterance_not_each_batch(monkeypatch):
    """A batch of 4 and a last batch of 1: the test loss is the mean over the 5 utterances,
    as with one batch, not the mean of the two batch means."""
    module, _ = _recognizer(monkeypatch)
    torch.manual_seed(0)
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    for rows in (slice(0, 4), slice(4, 5)):
        module.test_step({"logits": logits[rows], "label": labels[rows]}, 0)
    module.on_test_epoch_end()
    per_batch = (
        F.cross_entropy(logits[:4], labels[:4]) + F.cross_entropy(logits[4:], labels[4:])
    ) / 2
    assert module.test_report["loss"] == pytest.approx(float(F.cross_entropy(logits, labels)))
    assert module.test_report["loss"] != pytest.approx(float(per_batch))


def test_a_class_absent_from_the_test_split_has_no_recall_and_logs_none(monkeypatch):
    """Class c never occurs: its recall is None in the report (JSON has no NaN) and no
    ``test/recall_c`` is logged; the others are logged under their class names."""
    module, logged = _recognizer(monkeypatch)
    labels, preds = torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 2, 1, 1, 0])
    module.test_step({"logits": 10.0 * F.one_hot(preds, 3).float(), "label": labels}, 0)
    module.on_test_epoch_end()
    assert module.test_report["recall"] == [0.5, pytest.approx(2 / 3), None]
    recalls = {k: v for k, v in logged.items() if k.startswith("test/recall_")}
    assert recalls == {"test/recall_a": 0.5, "test/recall_b": pytest.approx(2 / 3)}


def test_a_checkpoint_carries_the_learning_curve_to_a_resumed_fit(tmp_path):
    """A resumed fit's history starts with the epochs its checkpoint holds (result.json's
    history and best epoch); a module that already has its curve (testing after the fit in the
    same process) keeps it; a checkpoint written without one gives an empty curve."""
    curve = [{"epoch": 1, "lr": 0.001, "val/uwa": 0.4}, {"epoch": 2, "lr": 0.001, "val/uwa": 0.5}]
    trained = EmotionRecognizer(GivenLogits(3), torch.optim.SGD)
    trained.history = list(curve)
    checkpoint: dict = {}
    trained.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "c.ckpt")
    checkpoint = torch.load(tmp_path / "c.ckpt", weights_only=True)
    resumed = EmotionRecognizer(GivenLogits(3), torch.optim.SGD)
    resumed.on_load_checkpoint(checkpoint)
    assert resumed.history == curve
    resumed.history.append({"epoch": 3})
    assert trained.history == curve  # a copy, not the same list
    longer = EmotionRecognizer(GivenLogits(3), torch.optim.SGD)
    longer.history = [*curve, {"epoch": 3, "val/uwa": 0.6}]
    longer.on_load_checkpoint(checkpoint)
    assert len(longer.history) == 3
    old = EmotionRecognizer(GivenLogits(3), torch.optim.SGD)
    old.on_load_checkpoint({})
    assert old.history == []


def test_the_scheduler_watches_its_metric_once_per_epoch():
    """ReduceLROnPlateau is handed to Lightning with its monitor, stepped every epoch."""
    from functools import partial

    scheduler = partial(torch.optim.lr_scheduler.ReduceLROnPlateau, mode="min", patience=0)
    module = EmotionRecognizer(GivenLogits(3), partial(torch.optim.SGD, lr=0.5),
                               scheduler=scheduler, scheduler_monitor="val/loss")  # fmt: skip
    config = module.configure_optimizers()
    assert set(config) == {"optimizer", "lr_scheduler"}
    optimizer, plan = config["optimizer"], config["lr_scheduler"]
    assert isinstance(optimizer, torch.optim.SGD)
    assert isinstance(plan["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert plan["scheduler"].optimizer is optimizer
    assert {k: v for k, v in plan.items() if k != "scheduler"} == {
        "monitor": "val/loss", "interval": "epoch", "frequency": 1,
    }  # fmt: skip
    plan["scheduler"].step(1.0)
    plan["scheduler"].step(1.0)  # no improvement, patience 0: the rate drops tenfold
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)

    plain = EmotionRecognizer(GivenLogits(3), partial(torch.optim.SGD, lr=0.5))
    alone = plain.configure_optimizers()
    assert isinstance(alone, torch.optim.SGD)
    assert {id(p) for p in alone.param_groups[0]["params"]} == {id(p) for p in plain.parameters()}


def test_each_validation_epoch_logs_the_best_so_far_and_adds_one_history_entry(monkeypatch):
    """The configured best metric's running maximum is logged as ``<metric>_best`` (early
    stopping and checkpoints monitor its base metric); each finished validation epoch appends
    its number, learning rate and values to the history; the sanity check adds nothing."""
    from types import SimpleNamespace

    module = EmotionRecognizer(GivenLogits(3), torch.optim.SGD, best_metric="val/uwa")
    logged: dict = {}
    monkeypatch.setattr(module, "log_dict", lambda values, **kw: logged.update(values))
    monkeypatch.setattr(module, "log", lambda name, value, **kw: logged.update({name: value}))
    optimizer = SimpleNamespace(param_groups=[{"lr": 0.25}])
    trainer = SimpleNamespace(sanity_checking=True, optimizers=[optimizer], current_epoch=0)
    module.trainer = trainer
    labels = torch.tensor([0, 1, 2, 2])

    def epoch(preds):
        module.validation_step({"logits": 10.0 * F.one_hot(preds, 3).float(), "label": labels}, 0)
        module.on_validation_epoch_end()

    epoch(torch.tensor([0, 1, 2, 2]))  # sanity check: perfect, but not counted
    assert module.history == [] and logged == {}
    trainer.sanity_checking = False
    epoch(torch.tensor([0, 0, 2, 2]))  # UWA (overall accuracy, DESIGN.md) 3 / 4
    assert float(logged["val/uwa_best"]) == pytest.approx(0.75)
    trainer.current_epoch, optimizer.param_groups[0]["lr"] = 1, 0.025
    epoch(torch.tensor([1, 0, 0, 0]))  # UWA 0: the best stays
    assert float(logged["val/uwa"]) == 0.0
    assert float(logged["val/uwa_best"]) == pytest.approx(0.75)
    assert [(h["epoch"], h["lr"]) for h in module.history] == [(1, 0.25), (2, 0.025)]
    assert module.history[0]["val/uwa"] == pytest.approx(0.75)


def test_an_unknown_dropout_fill_names_the_setting():
    from selfcross.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        EmotionRecognizer(GivenLogits(3), torch.optim.SGD, modality_dropout_fill="mean")
    assert str(caught.value).startswith("model.modality_dropout_fill='mean': expected one of")
