"""Models: encoders -> attention -> pooling -> classifier, and the one LightningModule.

``encoders`` (Conv1d over time, bi-GRU), ``attention`` (self- and cross-modal multi-head
attention), ``transformer`` (transformer-encoder layers), ``pooling`` (temporal averaging,
statistical pooling), ``classifier`` (the two-layer head), ``networks`` (``EmotionNet``, every
architecture as one network), ``kernels`` (the exact fast CPU kernels), ``metrics`` (WA, UWA,
F1, recall, confusion), ``blanking`` (modalities left out, modality dropout) and ``module``
(``EmotionRecognizer``, the LightningModule that trains them all).
"""

from selfcross import FUSIONS
from selfcross.models.attention import CrossModalAttention, SelfAttention
from selfcross.models.classifier import Classifier
from selfcross.models.encoders import ModalityEncoder
from selfcross.models.module import EmotionRecognizer
from selfcross.models.networks import EmotionNet, count_parameters, cross_pairs
from selfcross.models.pooling import ConcatPooling, StatisticalPooling, temporal_average
from selfcross.models.transformer import TransformerLayer, TransformerStack

__all__ = [
    "FUSIONS",
    "Classifier",
    "ConcatPooling",
    "CrossModalAttention",
    "EmotionNet",
    "EmotionRecognizer",
    "ModalityEncoder",
    "SelfAttention",
    "StatisticalPooling",
    "TransformerLayer",
    "TransformerStack",
    "count_parameters",
    "cross_pairs",
    "temporal_average",
]
