"""A seed group against its single runs: ``python -m selfcross.bench --seed-group K``.

For each (model, modality): K networks of the configuration, each initialised by its seed's
stream, trained two ways on the same random batches (K batches of ``--batch``), alternating step
by step in one process: *singles*, each network's own training step one after the other (what K
single runs do), and the *group*, one step of the stacked network
(:func:`selfcross.models.stacked.stack_networks`) with per-member Adam. A step is forward,
cross-entropy, backward and the optimiser step.

Reported per row: samples per second both ways and their ratio; the FLOPs of a step
(``torch.utils.flop_counter``, forward and backward, counted on one network and multiplied by
K) as a share of the device's float32 matmul peak, measured here by :func:`gemm_peak`; and the
group's memory: the bytes a step holds (parameters, gradients, Adam's moments, the batch and the
tensors autograd saves, :func:`selfcross.training.groupplan.group_bytes`) and the process's peak
resident memory; on CUDA (``--device cuda``) also the peak GPU memory of one group step and of
the K single steps (``torch.cuda.max_memory_allocated``). Every timing on CUDA waits for the
device (``torch.cuda.synchronize``, :func:`selfcross.benchmark.timing.timed`).
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from selfcross.benchmark.timing import machine, timed
from selfcross.benchmark.variants import Settings, network_config, random_batch
from selfcross.models.stacked import stack_networks
from selfcross.models.streams import SeedStream
from selfcross.training.group import StackedAdam
from selfcross.training.runtime import freed_memory_kept

OnRow = Callable[[dict], None]


def gemm_peak(size: int = 2048, repeats: int = 5, device="cpu") -> float:
    """The device's float32 matmul rate in GFLOP/s: the best of ``repeats`` square products."""
    device = torch.device(device)
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    torch.mm(a, b)
    best = min(timed(device, torch.mm, a, b) for _ in range(repeats)) / 1e3
    return 2 * size**3 / best / 1e9


def step_flops(net, batch: dict) -> int:
    """FLOPs of one training step's forward and backward pass of ``net`` on ``batch``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(net(batch), batch["label"]).backward()
    net.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


class Singles:
    """K networks trained one after the other, each with its own Adam; ``precision()``: the
    forward pass's context (bf16 autocast under ``bf16-mixed``)."""

    def __init__(self, nets, batches, precision=nullcontext):
        self.nets, self.batches, self.precision = nets, batches, precision
        self.optimizers = [torch.optim.Adam(n.parameters(), lr=1e-3) for n in nets]

    def step(self) -> None:
        for net, optimizer, batch in zip(self.nets, self.optimizers, self.batches, strict=True):
            net.train()
            optimizer.zero_grad(set_to_none=True)
            with self.precision():
                logits = net(batch).float()
            F.cross_entropy(logits, batch["label"]).backward()
            optimizer.step()


class Group:
    """The same K networks stacked, one step for all with per-member Adam."""

    def __init__(self, nets, streams, batches, precision=nullcontext):
        self.precision = precision
        self.net = stack_networks(nets, streams)
        self.k = len(nets)
        self.batch = {key: torch.cat([b[key] for b in batches]) for key in batches[0]}
        self.optimizer = StackedAdam(self.net.parameters(), self.k)

    def step(self) -> None:
        self.net.train()
        self.optimizer.zero_grad()
        with self.precision():
            logits = self.net(self.batch).float()
        logits = logits.view(self.k, -1, logits.shape[-1])
        labels = self.batch["label"].view(self.k, -1)
        sum(F.cross_entropy(lg, t) for lg, t in zip(logits, labels, strict=True)).backward()
        self.optimizer.step([1e-3] * self.k, [True] * self.k)


def bench_seed_group(settings: Settings, members: int, on_row: OnRow | None = None) -> list[dict]:
    """One row per (model, modality): a group of ``members`` against as many single runs, both
    with the allocator a group job trains with (:func:`freed_memory_kept`)."""
    s, rows = settings, []
    device = torch.device(s.device)
    peak = gemm_peak(device=device)
    dtype = s.autocast_dtype
    precision = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    for model in s.models:
        for modality in s.modalities:
            with freed_memory_kept() as kept:  # as a group job trains
                row = _group_row(s, model, modality, members, device, peak, precision)
            row["keep_freed_memory"] = kept
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def _group_row(s: Settings, model: str, modality: str, members: int, device, peak, precision):
    """One row of :func:`bench_seed_group`."""
    from selfcross.config import compose
    from selfcross.training.groupplan import group_bytes

    net_cfg, shapes = network_config(model, modality, s.preset, s.overrides)
    streams = [SeedStream(seed) for seed in range(1, members + 1)]
    nets = [st.build(lambda c=net_cfg: instantiate(c)).to(device) for st in streams]
    batches = [random_batch(shapes, nets[0].modalities, s.batch, device, torch.float32)
               for _ in range(members)]  # fmt: skip
    flops = step_flops(nets[0], batches[0]) * members
    group = Group(nets, streams, batches, precision)
    singles = Singles(nets, batches, precision)
    times = {"group": [], "singles": []}
    for i in range(s.warmup + s.steps):
        for name, run in (("singles", singles.step), ("group", group.step)):
            ms = timed(device, run)
            if i >= s.warmup:
                times[name].append(ms / 1e3)
    t_group, t_singles = (statistics.median(times[n]) for n in ("group", "singles"))
    samples = members * s.batch
    cfg = compose([f"model={model}", f"modality={modality}",
                   f"data.preset={s.preset}", f"data.batch_size={s.batch}",
                   *s.overrides])  # fmt: skip
    return {
        "model": model,
        "modality": modality,
        "seed_group": members,
        "batch": s.batch,
        "group_step_ms": round(t_group * 1e3, 2),
        "singles_step_ms": round(t_singles * 1e3, 2),
        "group_samples_per_s": round(samples / t_group, 2),
        "singles_samples_per_s": round(samples / t_singles, 2),
        "speedup": round(t_singles / t_group, 2),
        "step_gflop": round(flops / 1e9, 1),
        "gemm_peak_gflops": round(peak, 1),
        "group_share_of_peak": round(flops / t_group / 1e9 / peak, 3),
        "singles_share_of_peak": round(flops / t_singles / 1e9 / peak, 3),
        "device": str(device),
        "precision": s.precision,
        "group_step_mb": round(group_bytes(cfg, members, device) / 2**20),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **gpu_peaks(device, group, singles),
        "steps": s.steps,
        "warmup": s.warmup,
        "machine": machine(),
    }


def gpu_peaks(device: torch.device, group: Group, singles: Singles) -> dict:
    """On CUDA, the peak GPU memory (MiB) of one group step and of the K single steps, each
    measured from the memory held before it; nothing on the CPU."""
    if device.type != "cuda":
        return {}
    peaks = {}
    for name, run in (("group", group.step), ("singles", singles.step)):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize(device)
        peaks[f"{name}_peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    return peaks


def bench_group_layers(settings: Settings, members: int, on_row: OnRow | None = None) -> list:
    """Where the group's time goes: forward + backward of each layer of a tri-modal Cross+Self
    network (each encoder, self- and cross-attention), the stacked layer on K batches against
    K times the single layer on one (what K single runs spend); both with the allocator a group
    job trains with (:func:`freed_memory_kept`)."""
    with freed_memory_kept():
        return _group_layers(settings, members, on_row)


def _group_layers(settings: Settings, members: int, on_row: OnRow | None) -> list:
    """:func:`bench_group_layers`' measurement."""
    s, rows = settings, []
    net_cfg, shapes = network_config("cross_self", "TVA", s.preset, s.overrides)
    streams = [SeedStream(seed) for seed in range(1, members + 1)]
    nets = [st.build(lambda c=net_cfg: instantiate(c)) for st in streams]
    single, group = nets[0], stack_networks(nets, streams)
    gen = torch.Generator().manual_seed(2)

    def rand(rows_, *shape):
        return torch.randn(rows_, *shape, generator=gen).requires_grad_()

    cases = []
    for m, enc in single.encoders.items():
        x = rand(s.batch, shapes[m]["seq_len"], shapes[m]["feat_dim"])
        big = torch.cat([x.detach()] * members).requires_grad_()
        name = f"{m} encoder {shapes[m]['seq_len']}x{shapes[m]['feat_dim']}"
        cases.append((name, lambda e=enc, x=x: e(x), lambda m=m, b=big: group.encoders[m](b)))
    encoded = {m: rand(s.batch, enc.out_len, enc.out_dim) for m, enc in single.encoders.items()}
    stacked_in = {
        m: torch.cat([x.detach()] * members).requires_grad_() for m, x in encoded.items()
    }
    for kind, blocks in (("self", single.self_attention), ("cross", single.cross_attention)):
        for key, attn in blocks.items():
            src, tgt = key.split("2") if kind == "cross" else (key, key)
            args = (encoded[tgt],) if kind == "self" else (encoded[tgt], encoded[src])
            big = (stacked_in[tgt],) if kind == "self" else (stacked_in[tgt], stacked_in[src])
            other = getattr(group, f"{kind}_attention")[key]
            cases.append((
                f"{src}->{tgt} {kind}-attention",
                lambda a=attn, x=args: single._attention_output(a, *x),
                lambda a=other, x=big: group._attention_output(a, *x),
            ))  # fmt: skip
    single.train()
    group.train()
    for name, one, stacked in cases:
        times = {"single": [], "group": []}
        for i in range(s.warmup + s.steps):
            for key, fn in (("single", one), ("group", stacked)):
                start = time.perf_counter()
                fn().sum().backward()
                if i >= s.warmup:
                    times[key].append(time.perf_counter() - start)
        t_one, t_group = (statistics.median(times[k]) * 1e3 for k in ("single", "group"))
        row = {
            "layer": name,
            "seed_group": members,
            "batch": s.batch,
            "singles_ms": round(members * t_one, 1),
            "group_ms": round(t_group, 1),
            "speedup": round(members * t_one / t_group, 2),
        }
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows
