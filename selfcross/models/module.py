"""The one LightningModule: loss, metrics, optimiser, scheduler and logging for every network.

Self and cross models are trained and measured by literally this code; only the injected
``network`` differs. ``conf/model/*.yaml`` build it with ``hydra.utils.instantiate(cfg.model)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric

from selfcross import MODALITIES
from selfcross.models.blanking import blank, check_fill, dropout_masks, train_means
from selfcross.models.metrics import per_class_recall, report_metric, scalar_metrics

STAGES = ("train", "val", "test")


class EmotionRecognizer(L.LightningModule):
    """Trains a network with categorical cross-entropy and logs the paper's metrics.

    Args:
        network: maps a batch ``{modality: tensor}`` to logits [B, classes].
        optimizer: partial optimiser, called with the parameters.
        scheduler: partial LR scheduler, called with the optimiser (or None).
        scheduler_monitor: the metric a ReduceLROnPlateau scheduler watches.
        best_metric: the validation metric whose best-so-far value is logged as ``<name>_best``.
        class_names: names of the class ids, for reports.
        name: the model's name (``self``, ``cross``, ...: its config's ``model.name``).
        compile, tf32: the run settings ``model.compile`` and ``model.tf32``. The module only
            carries them (as ``compile_setting`` and ``tf32``: ``compile`` is a method of every
            ``nn.Module``); :func:`selfcross.training.runtime.apply_run_settings` applies them.
        modality_dropout: in training only, the probability that each modality of each sample
            is blanked (never all of a sample's modalities: :func:`blanking.dropout_masks`);
            0 is the paper's training.
        modality_dropout_fill: how a dropped modality is filled, ``zeros`` or ``train_mean``
            (:mod:`selfcross.models.blanking`).
    """

    def __init__(
        self,
        network: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        scheduler_monitor: str = "val/loss",
        best_metric: str = "val/uwa",
        class_names: Sequence[str] = (),
        name: str | None = None,
        compile: bool | Mapping = False,
        tf32: bool = True,
        modality_dropout: float = 0.0,
        modality_dropout_fill: str = "zeros",
    ):
        super().__init__()
        self.modality_dropout = float(modality_dropout)
        self.modality_dropout_fill = check_fill(
            modality_dropout_fill, "model.modality_dropout_fill"
        )
        dropout_masks(0, (), self.modality_dropout)  # checks the probability
        self.fill_means: dict[str, torch.Tensor] | None = None
        self.model_name = name
        self.compile_setting = compile
        self.tf32 = tf32
        self.network = network
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_monitor = scheduler_monitor
        self.best_metric = best_metric
        self.class_names = tuple(class_names)
        n = len(self.class_names) or network.classifier[-1].out_features
        # Keyed "<stage>_": ModuleDict keys must not shadow nn.Module attributes like .train.
        self.metrics = nn.ModuleDict(
            {f"{s}_": scalar_metrics(n).clone(prefix=f"{s}/") for s in STAGES}
        )
        self.losses = nn.ModuleDict({f"{s}_": MeanMetric() for s in STAGES})
        self.test_confusion = report_metric(n)
        self.val_best = MaxMetric()
        self.history: list[dict[str, float]] = []
        """One entry per finished validation epoch: epoch, lr, train and val loss/metrics."""
        self.test_report: dict = {}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.network(batch)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch)
        target = batch["label"]
        loss = F.cross_entropy(logits.float(), target)
        preds = logits.argmax(dim=-1)
        self.metrics[f"{stage}_"].update(preds, target)
        self.losses[f"{stage}_"].update(loss.detach(), weight=len(target))
        if stage == "test":
            self.test_confusion.update(preds, target)
        return loss

    def _epoch_values(self, stage: str) -> dict[str, torch.Tensor]:
        values = {
            f"{stage}/loss": self.losses[f"{stage}_"].compute(),
            **self.metrics[f"{stage}_"].compute(),
        }
        self.losses[f"{stage}_"].reset()
        self.metrics[f"{stage}_"].reset()
        return values

    def training_step(self, batch, batch_idx):
        if self.modality_dropout > 0:
            present = [m for m in MODALITIES if m in batch]
            masks = dropout_masks(
                len(batch["label"]), present, self.modality_dropout, batch["label"].device
            )
            if self.modality_dropout_fill == "train_mean" and self.fill_means is None:
                self.fill_means = train_means(self.trainer.datamodule, present)
            batch = blank(batch, masks, self.modality_dropout_fill, self.fill_means)
        loss = self._step(batch, "train")
        self.log("loss", loss, prog_bar=True, logger=False, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_train_start(self) -> None:
        # The sanity check must not count as an epoch.
        for metric in (self.metrics["val_"], self.losses["val_"], self.val_best):
            metric.reset()

    def on_train_epoch_start(self) -> None:
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_epoch=True)

    def on_train_epoch_end(self) -> None:
        self.log_dict(self._epoch_values("train"))

    def on_validation_epoch_end(self) -> None:
        values = self._epoch_values("val")
        if self.trainer.sanity_checking:
            return
        self.log_dict(values, prog_bar=True)
        if self.best_metric in values:
            self.val_best.update(values[self.best_metric])
            self.log(f"{self.best_metric}_best", self.val_best.compute())
        entry = {
            "epoch": self.current_epoch + 1,
            "lr": self.trainer.optimizers[0].param_groups[0]["lr"],
        }
        if self.losses["train_"].update_called:
            entry["train/loss"] = float(self.losses["train_"].compute())
        entry.update({k: float(v) for k, v in values.items()})
        self.history.append(entry)

    def on_test_epoch_end(self) -> None:
        values = self._epoch_values("test")
        confusion = self.test_confusion.compute()
        self.test_confusion.reset()
        self.log_dict(values)
        recall = [None if r != r else r for r in per_class_recall(confusion).tolist()]
        self.test_report = {
            **{k.split("/", 1)[1]: float(v) for k, v in values.items()},
            "recall": recall,
            "confusion": confusion.long().tolist(),
        }
        names = self.class_names or [str(i) for i in range(len(recall))]
        self.log_dict(
            {f"test/recall_{n}": r for n, r in zip(names, recall, strict=True) if r is not None}
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["selfcross_history"] = list(self.history)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Resuming a fit restores the learning curve; testing a checkpoint after a fit in the
        # same process keeps the complete one.
        if not self.history:
            self.history = list(checkpoint.get("selfcross_history", []))

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": self.scheduler_factory(optimizer=optimizer),
                "monitor": self.scheduler_monitor,
                "interval": "epoch",
                "frequency": 1,
            },
        }
