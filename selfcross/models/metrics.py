"""Metrics, with the paper's names (README, "Metrics: the paper's WA and UWA": read it twice).

The paper follows its reference code, whose names are the reverse of the usual convention:

* **WA**, "weighted accuracy": the mean of per-class recalls (each utterance weighted by one
  over its class size), a.k.a. balanced accuracy or unweighted average recall;
* **UWA**, "unweighted accuracy": the plain share of correctly classified utterances.

So WA < UWA on IEMOCAP, where the rare classes (surprise) are seldom recognised. Classes absent
from the targets are left out of WA (they have no recall to average), as in scikit-learn's
``balanced_accuracy_score``; torchmetrics' macro accuracy would count such a class as recall 0
whenever it is predicted, so WA has its own small metric here.

Two F1 scores: **macro-F1** (``f1`` in the logs, ``test_f1`` in ``result.json``; torchmetrics'
macro average) and **weighted F1** (``wf1``, ``test_wf1``: each class's F1 weighted by its
support, MELD's usual metric, scikit-learn's ``f1_score(average="weighted")``), computed only by
:func:`weighted_f1` from a confusion matrix, for a run's epochs and for older records alike.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)


def per_class_recall(confusion: torch.Tensor) -> torch.Tensor:
    """[C] recall per true class from a [C, C] confusion matrix; NaN for absent classes."""
    confusion = confusion.double()
    return confusion.diagonal() / confusion.sum(dim=1)


def weighted_f1(confusion) -> torch.Tensor:
    """Support-weighted F1 from a [C, C] confusion matrix (rows true, columns predicted).

    Each class's F1 is 2 TP / (2 TP + FP + FN), 0 when the class is neither present nor
    predicted, weighted by its support (true count); NaN for an empty matrix. This is
    scikit-learn's ``f1_score(average="weighted")``: a class never predicted scores 0 and one
    absent from the targets weighs 0.
    """
    confusion = torch.as_tensor(confusion).double()
    true_positive = confusion.diagonal()
    support = confusion.sum(dim=1)
    denominator = support + confusion.sum(dim=0)  # 2 TP + FN + FP
    f1 = torch.where(denominator > 0, 2 * true_positive / denominator.clamp(min=1), 0.0)
    return (f1 * support).sum() / support.sum()


class _ConfusionMetric(Metric):
    """A metric computed from the [C, C] confusion matrix it accumulates."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("confusion", torch.zeros(num_classes, num_classes, dtype=torch.long), "sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        index = target.long() * self.num_classes + preds.long()
        counts = torch.bincount(index.flatten(), minlength=self.num_classes**2)
        self.confusion += counts.reshape(self.num_classes, self.num_classes)


class BalancedAccuracy(_ConfusionMetric):
    """The paper's WA: the mean of per-class recalls over the classes present in the targets."""

    def compute(self) -> torch.Tensor:
        recall = per_class_recall(self.confusion)
        return recall[~recall.isnan()].mean().float()


class WeightedF1(_ConfusionMetric):
    """Weighted F1 (:func:`weighted_f1`) over the accumulated predictions."""

    def compute(self) -> torch.Tensor:
        return weighted_f1(self.confusion).float()


def scalar_metrics(num_classes: int) -> MetricCollection:
    """WA, UWA, macro-F1 and weighted F1 as torchmetrics objects (one collection per stage)."""
    return MetricCollection(
        {
            "wa": BalancedAccuracy(num_classes),
            "uwa": MulticlassAccuracy(num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
            "wf1": WeightedF1(num_classes),
        }
    )


def report_metric(num_classes: int) -> MulticlassConfusionMatrix:
    """The confusion matrix (rows: true class, columns: predicted); recalls derive from it."""
    return MulticlassConfusionMatrix(num_classes)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """[C, C] counts, rows true class, columns predicted class."""
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(out, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return out


def weighted_accuracy(y_true, y_pred, num_classes: int | None = None) -> float:
    """The paper's WA: mean recall over the classes present in ``y_true``."""
    y_true = np.asarray(y_true)
    c = num_classes or int(max(y_true.max(), np.asarray(y_pred).max())) + 1
    cm = confusion_matrix(y_true, y_pred, c)
    support = cm.sum(axis=1)
    present = support > 0
    return float((np.diag(cm)[present] / support[present]).mean())


def unweighted_accuracy(y_true, y_pred) -> float:
    """The paper's UWA: plain accuracy."""
    return float((np.asarray(y_true) == np.asarray(y_pred)).mean())
