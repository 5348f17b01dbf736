"""The random streams in a run's checkpoints, so that a resumed run continues exactly where the
interrupted one stopped.

A run draws its shuffling and dropout masks from torch's global generator (and may touch
NumPy's and Python's). Lightning's checkpoints hold the weights, the optimiser, the scheduler
and the callbacks' states, but not these streams: a run resumed after epoch k reseeds at start
and so shuffles and drops out differently from epoch k+1 on, and its numbers differ from the
uninterrupted run's. :class:`RandomStreams` saves every stream with each checkpoint and puts
them back when a run resumes from it (Lightning restores callback states before the first
resumed epoch; its sanity check runs in an isolated stream). Values only, loadable with
``weights_only=True``: tensors, lists and numbers.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


class RandomStreams(L.Callback):
    """Saves and restores torch's (CPU and CUDA), NumPy's and Python's global random states."""

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        version, state, next_gauss = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
            "python": [version, list(state), next_gauss],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        if state_dict["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
        kind, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        version, state, next_gauss = state_dict["python"]
        random.setstate((version, tuple(state), next_gauss))
