"""Hand-written parameter counts of the networks' parts (written out from the layer sizes, not
read from torch) and random batches, for the model tests."""

from __future__ import annotations

import torch

from tests.conftest import PAPER_SHAPES

E = 120  # 2 x 60 GRU units


def batch_for(shapes, modalities, b=3):
    return {m: torch.randn(b, shapes[m]["seq_len"], shapes[m]["feat_dim"]) for m in modalities}


def conv(c_in, c_out):
    return c_in * c_out + c_out


def bigru(d, h=60):
    return 2 * 3 * (h * d + h * h + 2 * h)


def mha(e=E):
    return 3 * e * e + 3 * e + e * e + e  # in-projections + out-projection


def linear(i, o):
    return i * o + o


def encoders(modalities):
    total = 0
    for m in modalities:
        s = PAPER_SHAPES[m]
        total += bigru(s["feat_dim"]) + (conv(s["seq_len"], s["conv_out"]) if s["conv_out"] else 0)
    return total
