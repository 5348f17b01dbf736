"""What the benchmark compares: our network and the reference-style baseline on the same weights.

*Ours* runs in float32 (or bf16 autocast) with fused attention and the CPU kernels; the
*baseline* is the same config computed the way the paper's reference code does (eager, float64,
every attention module asked for its weights, PyTorch's own GRU).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from selfcross import fusion_problem
from selfcross.config import compose
from selfcross.errors import ConfigError
from selfcross.models import EmotionNet

REFERENCE = {"attention_weights": True, "fused_gru": False, "blocked_attention": False}
"""Network switches that make the baseline compute as the reference code does."""
PRECISIONS = ("32-true", "bf16-mixed")


@dataclass
class Settings:
    """One benchmark invocation: what to build, where, at which sizes, how long to time it."""

    models: list[str]
    modalities: list[str]
    device: str = "cpu"
    precision: str = "32-true"
    batch: int = 32
    eval_batch: int = 32
    steps: int = 3
    warmup: int = 1
    compile: bool = False
    compile_mode: str | None = None
    baseline: bool = True
    preset: str = "paper"
    overrides: Sequence[str] = ()

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """bfloat16 under ``bf16-mixed`` (ours only), else None: plain float32."""
        return torch.bfloat16 if self.precision == "bf16-mixed" else None


def network_config(model: str, modality: str, preset: str, overrides: Sequence[str] = ()):
    """The composed ``model.network`` config of a run of ``model`` on ``modality``."""
    cfg = compose([f"model={model}", f"modality={modality}", f"data.preset={preset}", *overrides])
    problem = fusion_problem(cfg.model.network.fusion, list(cfg.modality.modalities))
    if problem:
        raise ConfigError(problem)
    return cfg.model.network, dict(cfg.data.shapes)


def build_pair(model: str, modality: str, preset: str, overrides: Sequence[str] = ()):
    """(ours, baseline): the same EmotionNet config and weights; the baseline in reference mode."""
    net_cfg, shapes = network_config(model, modality, preset, overrides)
    torch.manual_seed(0)
    ours: EmotionNet = instantiate(net_cfg)
    baseline: EmotionNet = instantiate(net_cfg, **REFERENCE)
    baseline.load_state_dict(ours.state_dict())
    return ours, baseline.double(), shapes


def kernel_flags(net: EmotionNet) -> dict:
    """Whether ``net`` uses the fused GRU and the blocked attention kernel."""
    encoder = next(iter(net.encoders.values()))
    attention = next(m for m in net.modules() if hasattr(m, "blocked"))
    return {"fused_gru": encoder.fused_gru, "blocked_attention": attention.blocked}


def random_batch(shapes: dict, modalities: Sequence[str], batch: int, device, dtype) -> dict:
    """Random inputs {m: [B, T_m, D_m]} and labels, as a data batch."""
    gen = torch.Generator().manual_seed(1)
    out = {
        m: torch.randn(batch, shapes[m]["seq_len"], shapes[m]["feat_dim"], generator=gen)
        for m in modalities
    }
    out["label"] = torch.randint(0, 7, (batch,), generator=gen)
    return {
        k: v.to(device=device, dtype=dtype if v.is_floating_point() else None)
        for k, v in out.items()
    }


class Variant:
    """One network with its optimiser, batches and numeric settings."""

    def __init__(self, name, network, shapes, sizes, device, dtype, autocast_dtype=None):
        """``sizes``: (training batch, evaluation batch) of random inputs in ``dtype``, the same
        for every variant (random_batch is seeded)."""
        self.name = name
        self.network = network.to(device)
        self.batch, self.eval_batch = (
            random_batch(shapes, network.modalities, n, device, dtype) for n in sizes
        )
        self.device = torch.device(device)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=1e-3)
        self.autocast_dtype = autocast_dtype
        self.train_ms: list[float] = []
        self.eval_ms: list[float] = []

    def autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def train_step(self) -> None:
        """Forward, cross-entropy, backward and an Adam step on the training batch."""
        self.network.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.network(self.batch)
        loss = F.cross_entropy(logits.float(), self.batch["label"])
        loss.backward()
        self.optimizer.step()

    @torch.no_grad()
    def eval_logits(self) -> torch.Tensor:
        """A forward pass of the evaluation batch in eval mode, without gradients."""
        self.network.eval()
        with self.autocast():
            return self.network(self.eval_batch)
