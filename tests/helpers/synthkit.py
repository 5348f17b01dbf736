"""The synthetic generator's small test spec, shared by the generator's and its presets' tests."""

from __future__ import annotations

from selfcross.data import SyntheticSpec
from selfcross.data.datasets import dataset

IEMOCAP_CLASS_COUNTS = tuple(dataset("iemocap").class_counts)

SHAPES = {
    "T": {"seq_len": 8, "feat_dim": 16},
    "V": {"seq_len": 5, "feat_dim": 24},
    "A": {"seq_len": 12, "feat_dim": 20},
}
SPEC = SyntheticSpec(IEMOCAP_CLASS_COUNTS, n_utterances=400, shapes=SHAPES, vocab_size=60)
