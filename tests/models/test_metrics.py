"""WA and UWA with the paper's names, on hand-made predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfcross.models.metrics import (
    confusion_matrix,
    per_class_recall,
    report_metric,
    scalar_metrics,
    unweighted_accuracy,
    weighted_accuracy,
    weighted_f1,
)


def torch_values(y_true, y_pred, c):
    m = scalar_metrics(c)
    m.update(torch.tensor(y_pred), torch.tensor(y_true))
    return {k: float(v) for k, v in m.compute().items()}


def test_balanced_case_wa_equals_uwa():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    assert unweighted_accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    assert weighted_accuracy(y_true, y_pred) == pytest.approx((0.5 + 1 + 0.5) / 3)
    v = torch_values(y_true, y_pred, 3)
    assert v["uwa"] == pytest.approx(4 / 6) and v["wa"] == pytest.approx(4 / 6)


def test_imbalanced_case_wa_is_mean_recall_and_below_uwa():
    # 8 of class 0 (all right), 2 of class 1 (all wrong): plain accuracy 0.8, mean recall 0.5.
    y_true = [0] * 8 + [1] * 2
    y_pred = [0] * 10
    assert unweighted_accuracy(y_true, y_pred) == pytest.approx(0.8)
    assert weighted_accuracy(y_true, y_pred) == pytest.approx(0.5)
    v = torch_values(y_true, y_pred, 2)
    assert v["uwa"] == pytest.approx(0.8)  # the paper's UWA: plain accuracy
    assert v["wa"] == pytest.approx(0.5)  # the paper's WA: balanced accuracy


def test_wa_weights_each_utterance_by_one_over_its_class_size():
    y_true = np.array([0, 0, 0, 1, 2, 2])
    y_pred = np.array([0, 1, 0, 1, 0, 2])
    weights = 1.0 / np.bincount(y_true)[y_true]
    by_weights = ((y_true == y_pred) * weights).sum() / weights.sum()
    assert weighted_accuracy(y_true, y_pred) == pytest.approx(by_weights)
    assert torch_values(y_true, y_pred, 3)["wa"] == pytest.approx(by_weights)


def test_seven_classes_torchmetrics_agree_with_numpy():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 7, 500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, 7, 500))
    v = torch_values(y_true, y_pred, 7)
    assert v["wa"] == pytest.approx(weighted_accuracy(y_true, y_pred, 7), abs=1e-6)
    assert v["uwa"] == pytest.approx(unweighted_accuracy(y_true, y_pred), abs=1e-6)


def test_class_absent_from_targets_is_left_out_of_wa():
    # Class 2 never occurs but is predicted once: WA averages the recalls of classes 0 and 1.
    y_true = [0, 0, 1, 1]
    y_pred = [0, 2, 1, 1]
    assert weighted_accuracy(y_true, y_pred, 3) == pytest.approx((0.5 + 1.0) / 2)
    assert torch_values(y_true, y_pred, 3)["wa"] == pytest.approx((0.5 + 1.0) / 2)
    assert per_class_recall(torch.tensor(confusion_matrix(y_true, y_pred, 3)))[2].isnan()


def test_wa_accumulates_over_batches():
    m = scalar_metrics(3)["wa"]
    m.update(torch.tensor([0, 0]), torch.tensor([0, 1]))
    m.update(torch.tensor([1, 2, 2]), torch.tensor([1, 1, 2]))
    # class 0: 1/1, class 1: 1/3, class 2: 1/1
    assert float(m.compute()) == pytest.approx((1 + 1 / 3 + 1) / 3)


def test_report_recall_and_confusion():
    y_true = [0, 0, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 2, 0, 2]
    m = report_metric(3)
    m.update(torch.tensor(y_pred), torch.tensor(y_true))
    confusion = m.compute()
    expected = [[1, 1, 0], [0, 1, 0], [1, 0, 2]]  # rows true, columns predicted
    assert confusion.tolist() == expected
    assert per_class_recall(confusion).tolist() == pytest.approx([0.5, 1.0, 2 / 3])
    assert confusion_matrix(y_true, y_pred, 3).tolist() == expected
    assert confusion_matrix(y_true, y_pred, 3).dtype == np.int64  # counts, written to JSON


class ScriptedNetwork(torch.nn.Module):
    """Predicts the class given in ``batch["pred"]`` (large one-hot logits)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.classifier = torch.nn.Sequential(torch.nn.Linear(1, num_classes))

    def forward(self, batch):
        return 10.0 * torch.nn.functional.one_hot(batch["pred"], 3).float()


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_module_test_step_confusion_is_true_by_predicted_and_recall_is_per_true_class():
    """An asymmetric case through EmotionRecognizer's real test step, in two batches."""
    from selfcross.models import EmotionRecognizer

    module = EmotionRecognizer(ScriptedNetwork(3), torch.optim.SGD, class_names=["a", "b", "c"])
    y_true = [0, 0, 0, 0, 1, 2, 2]
    y_pred = [0, 0, 1, 2, 1, 0, 2]
    for rows in (slice(0, 4), slice(4, 7)):
        batch = {"label": torch.tensor(y_true[rows]), "pred": torch.tensor(y_pred[rows])}
        module.test_step(batch, 0)
    module.on_test_epoch_end()
    report = module.test_report
    # rows true, columns predicted: true a -> a, a, b, c; true b -> b; true c -> a, c
    assert report["confusion"] == [[2, 1, 1], [0, 1, 0], [1, 0, 1]]
    # recall by hand: a 2/4, b 1/1, c 1/2 (precision would be 2/3, 1/2, 1/2)
    assert report["recall"] == pytest.approx([0.5, 1.0, 0.5])
    assert report["wa"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert report["uwa"] == pytest.approx(4 / 7)
    # macro-F1 by hand: a P 2/3 R 1/2 -> 4/7; b P 1/2 R 1 -> 2/3; c P 1/2 R 1/2 -> 1/2
    assert report["f1"] == pytest.approx((4 / 7 + 2 / 3 + 1 / 2) / 3)
    # weighted F1: the same per-class F1, weighted by support 4, 1, 2
    assert report["wf1"] == pytest.approx((4 * 4 / 7 + 1 * 2 / 3 + 2 * 1 / 2) / 7)


WF1_CASES = {
    "imbalanced, one class never predicted": ([0] * 8 + [1] * 2, [0] * 10, 2),
    "asymmetric three classes": ([0, 0, 0, 0, 1, 2, 2], [0, 0, 1, 2, 1, 0, 2], 3),
    "class absent from the targets but predicted": ([0, 0, 1, 1], [0, 2, 1, 1], 3),
    "class neither present nor predicted": ([0, 1, 1, 3], [0, 1, 0, 3], 4),
    "all wrong": ([0, 1, 2], [1, 2, 0], 3),
}


@pytest.mark.parametrize("case", sorted(WF1_CASES))
def test_weighted_f1_is_scikit_learns_on_hand_made_cases(case):
    """Support-weighted F1 equals scikit-learn's ``f1_score(average="weighted")``, from the
    confusion matrix and as the logged metric."""
    from sklearn.metrics import f1_score

    y_true, y_pred, c = WF1_CASES[case]
    expected = f1_score(y_true, y_pred, labels=list(range(c)), average="weighted", zero_division=0)
    assert float(weighted_f1(confusion_matrix(y_true, y_pred, c))) == pytest.approx(expected)
    assert torch_values(y_true, y_pred, c)["wf1"] == pytest.approx(expected, abs=1e-6)


def test_weighted_f1_by_hand_differs_from_macro_f1():
    # 8 of class 0 all predicted 0, 2 of class 1 predicted 0: F1 of class 0 is 2*8/(16+2) = 8/9,
    # of class 1 is 0; weighted (8 * 8/9 + 2 * 0) / 10 = 0.711..., macro 4/9.
    y_true, y_pred = [0] * 8 + [1] * 2, [0] * 10
    assert float(weighted_f1(confusion_matrix(y_true, y_pred, 2))) == pytest.approx(0.64 / 0.9)
    assert torch_values(y_true, y_pred, 2)["f1"] == pytest.approx(4 / 9)


def test_weighted_f1_accumulates_over_batches_and_takes_lists():
    m = scalar_metrics(3)["wf1"]
    m.update(torch.tensor([0, 0]), torch.tensor([0, 1]))
    m.update(torch.tensor([1, 2, 2]), torch.tensor([1, 1, 2]))
    whole = weighted_f1([[1, 0, 0], [1, 1, 1], [0, 0, 1]])
    assert float(m.compute()) == pytest.approx(float(whole))
    # class 0: F1 2/3 (support 1); class 1: 1/2 (support 3); class 2: 2/3 (support 1)
    assert float(whole) == pytest.approx((2 / 3 + 3 * 1 / 2 + 2 / 3) / 5)
