"""A run's random draws as one explicit per-seed stream, which a group member replays exactly.

A single run (:func:`selfcross.training.experiment.train_and_test`) seeds torch's default CPU
generator with its seed (``seed_everything``) and then draws everything from it, in one fixed
order:

1. **initialisation**: the network's constructors, in module order (encoders, attention,
   classifier), right after seeding (loading the fold draws nothing from torch);
2. **the epoch's shuffling**: the train loader's iterator draws its base seed, then its
   ``RandomSampler`` draws one int64 that seeds a generator of its own, whose ``randperm`` is the
   epoch's order of the train split;
3. **dropout**: every training step, each dropout in the order the forward pass meets it (text
   input dropout, then every attention module's dropout on its weights, and in transformer layers
   the residual and feed-forward dropouts), an i.i.d. Bernoulli mask over the layer's input;
4. **the epoch's validation**: the loader's iterator draws one int64 (its workers' base seed)
   when it is created. Lightning's sanity check draws nothing: it runs with every generator's
   state saved and restored.

Steps 2-4 repeat every epoch.

:class:`SeedStream` is that stream held by a generator of its own, so that the K members of a
group each own the stream of their seed. Replaying it changes nothing in a single run: the
single run keeps drawing from the default generator (its code is unchanged), and a member draws
the same values in the same order from its own generator. ``tests/training/test_seed_streams.py``
trains a tiny run both ways and compares the histories bit for bit.

Dropout is replayed exactly on CPU: PyTorch's CPU dropout is ``x * bernoulli(1 - p) / (1 - p)``
drawn from the default generator, which :meth:`SeedStream.dropout` draws from the member's. The
project's blocked attention kernel draws its mask block by block from a generator it is given
(the default one in a single run): a member passes its own (:attr:`SeedStream.generator`).

On CUDA a single run draws its dropout masks from the device's generator (``seed_everything``
seeds it with the seed), not from the CPU one: its CPU stream holds only the initialisation, the
shuffling and the validation draws. A member on CUDA therefore draws its masks from a CUDA
generator of its own seeded with its seed (:meth:`SeedStream.generator_for`), and its CPU stream
replays the single run's initialisation and shuffling exactly. Its masks are not the single
run's bit for bit: PyTorch's CUDA dropout and attention kernels draw their masks with fused
kernels of their own (Philox offsets per launch and shape), which a member cannot replay from
``bernoulli_`` on its slice of a stacked batch; they are i.i.d. with the same rate and
deterministic per seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import Tensor

T = TypeVar("T")


class SeedStream:
    """The random stream of the run with ``seed``, on a generator of its own (CPU)."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        """The stream; ``torch.manual_seed(seed)`` puts the default generator in this state."""
        self.device_generator: torch.Generator | None = None
        """The dropout masks' generator on an accelerator (created by :meth:`generator_for`)."""
        self._device_state: Tensor | None = None

    def generator_for(self, device: torch.device | str) -> torch.Generator:
        """The generator of the dropout masks of tensors on ``device``: :attr:`generator` on
        the CPU; on another device one of its own, seeded with the seed as ``seed_everything``
        seeds a single run's (made on first use, in the state :meth:`set_device_state` gave)."""
        device = torch.device(device)
        if device.type == "cpu":
            return self.generator
        if self.device_generator is None or self.device_generator.device != device:
            self.device_generator = torch.Generator(device=device).manual_seed(self.seed)
            if self._device_state is not None:
                self.device_generator.set_state(self._device_state)
        return self.device_generator

    def device_state(self) -> Tensor | None:
        """The accelerator generator's state (a CPU tensor; None if it never drew)."""
        if self.device_generator is None:
            return self._device_state
        return self.device_generator.get_state()

    def set_device_state(self, state: Tensor | None) -> None:
        """Put back a saved :meth:`device_state` (applied when the generator is made)."""
        self._device_state = state
        if self.device_generator is not None and state is not None:
            self.device_generator.set_state(state)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Within the block, torch's default CPU generator draws this stream (code written for
        a single run replays its draws); outside it, the default generator is as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.set_state(self.generator.get_state())
            try:
                yield
            finally:
                self.generator.set_state(torch.default_generator.get_state())

    def build(self, factory: Callable[[], T]) -> T:
        """``factory()`` (a network's constructor) with this stream as the default generator:
        the initialisation of the run with this seed."""
        with self.active():
            return factory()

    def int64(self) -> int:
        """One full-range int64, drawn as a data loader draws its seeds."""
        return int(torch.empty((), dtype=torch.int64).random_(generator=self.generator).item())

    def validation_pass(self) -> None:
        """The draw of a validation loader's iterator."""
        self.int64()

    def epoch_order(self, n: int) -> Tensor:
        """The epoch's order of the ``n`` train utterances, as a shuffling loader draws it."""
        self.int64()  # the iterator's base seed
        sampler = torch.Generator().manual_seed(self.int64())
        return torch.randperm(n, generator=sampler)

    def epoch_batches(self, n: int, batch_size: int) -> list[Tensor]:
        """The epoch's batches of train indices (the last one may be short)."""
        return list(self.epoch_order(n).split(batch_size))

    def dropout(self, x: Tensor, p: float, training: bool = True) -> Tensor:
        """``F.dropout(x, p, training)`` with this stream's mask (CPU's exact computation; on
        another device from :meth:`generator_for`)."""
        if not training or p == 0:
            return x
        if p == 1:
            return x * 0.0
        noise = torch.empty_like(x).bernoulli_(1 - p, generator=self.generator_for(x.device))
        return x * noise.div_(1 - p)
