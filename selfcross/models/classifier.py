"""The classifier head (paper Eq. 7)."""

from __future__ import annotations

from torch import nn


class Classifier(nn.Sequential):
    """Two fully connected layers, f_theta2(f_theta1(x)): [B, in] -> [B, classes] logits.

    The paper and its reference put no activation between them; the softmax lives in the loss.
    """

    def __init__(self, in_features: int, hidden: int = 60, num_classes: int = 7):
        super().__init__(nn.Linear(in_features, hidden), nn.Linear(hidden, num_classes))
