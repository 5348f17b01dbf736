"""Time training steps and evaluation batches at paper shapes against the reference's way.

    python -m selfcross.bench                          # self and cross on TVA and TV, CPU
    python -m selfcross.bench --models self --modalities TVA --device cuda --precision bf16-mixed
    python -m selfcross.bench --layers                 # where the time goes, layer by layer
    python -m selfcross.bench --sweep --epochs 30 --parallel 4   # Table 1's wall time

Needs no dataset: random tensors of the configured shapes (``--preset paper``: text [128, 300],
vision [32, 2048], audio [1000, 120]). For each model and modality subset it builds the network
from the real config twice on the same weights: *ours* (float32 or bf16 autocast, fused
attention, the CPU kernels, optionally compiled) and the *baseline* written the way the paper's
reference code works (eager, float64, every attention module asked for its weights, PyTorch's
own GRU). A training step is forward, cross-entropy, backward and an Adam step; an evaluation
batch is a forward pass in eval mode without gradients. Baseline and ours alternate step by step
in one process, so machine load hits both alike; medians are reported. One JSON line per
configuration on stdout; a readable table on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from selfcross.config import compose, user_errors
from selfcross.errors import ConfigError
from selfcross.fastpath import apply_backend_settings, compile_network
from selfcross.models import EmotionNet
from selfcross.models.networks import check_fusion

TABLE1 = {"self": ["T", "V", "A", "TV", "TA", "VA", "TVA"], "cross": ["TV", "TA", "VA", "TVA"]}
"""Table 1's cells: 11 (model, modality) configurations."""
RUNS_PER_CELL = 50  # 5 folds x 10 seeds
IEMOCAP_TRAIN = 5990  # training utterances of one fold (8 : 0.5 : 1.5 of 7,487)
IEMOCAP_VAL = 374  # validation utterances of one fold
REFERENCE = {"attention_weights": True, "fused_gru": False, "blocked_attention": False}
"""Network switches that make the baseline compute as the reference code does."""
PRECISIONS = ("32-true", "bf16-mixed")


# -- building -------------------------------------------------------------------------------
def network_config(model: str, modality: str, preset: str, overrides: Sequence[str] = ()):
    """The composed ``model.network`` config of a run of ``model`` on ``modality``."""
    cfg = compose([f"model={model}", f"modality={modality}", f"data.preset={preset}", *overrides])
    check_fusion(cfg.model.network.fusion, list(cfg.modality.modalities))
    return cfg.model.network, dict(cfg.data.shapes)


def build_pair(model: str, modality: str, preset: str, overrides: Sequence[str] = ()):
    """(ours, baseline): the same EmotionNet config and weights; the baseline in reference mode."""
    net_cfg, shapes = network_config(model, modality, preset, overrides)
    torch.manual_seed(0)
    ours: EmotionNet = instantiate(net_cfg)
    baseline: EmotionNet = instantiate(net_cfg, **REFERENCE)
    baseline.load_state_dict(ours.state_dict())
    return ours, baseline.double(), shapes


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
        self.network.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.network(self.batch)
        loss = F.cross_entropy(logits.float(), self.batch["label"])
        loss.backward()
        self.optimizer.step()

    @torch.no_grad()
    def eval_logits(self) -> torch.Tensor:
        self.network.eval()
        with self.autocast():
            return self.network(self.eval_batch)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[..., object], *args) -> float:
    """Milliseconds one call of ``fn(*args)`` takes, device work included."""
    _sync(device)
    start = time.perf_counter()
    fn(*args)
    _sync(device)
    return (time.perf_counter() - start) * 1e3


def measure(variants: Sequence[Variant], warmup: int, steps: int) -> None:
    """Alternate the variants step by step: warm-up calls, then ``steps`` timed calls each."""
    for i in range(warmup + steps):
        for v in variants:
            ms = timed(v.device, v.train_step)
            if i >= warmup:
                v.train_ms.append(ms)
    for i in range(warmup + steps):
        for v in variants:
            ms = timed(v.device, v.eval_logits)
            if i >= warmup:
                v.eval_ms.append(ms)


# -- reporting ------------------------------------------------------------------------------
def machine() -> dict:
    """The machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    if hasattr(os, "getloadavg"):
        info["load_avg_1min"] = round(os.getloadavg()[0], 2)
    return info


def _median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 2)


def summarise(v: Variant) -> dict:
    train, evaluate = _median(v.train_ms), _median(v.eval_ms)
    return {
        "train_step_ms": train,
        "eval_batch_ms": evaluate,
        "samples_per_s": round(len(v.batch["label"]) / train * 1e3, 2),
        "eval_samples_per_s": round(len(v.eval_batch["label"]) / evaluate * 1e3, 2),
        "train_step_ms_range": [round(min(v.train_ms), 2), round(max(v.train_ms), 2)],
    }


def epoch_seconds(row: dict, prefix: str = "") -> float:
    """One IEMOCAP epoch: ceil(5990 / batch) training steps plus the validation batches."""
    steps = math.ceil(IEMOCAP_TRAIN / row["batch"])
    val_batches = math.ceil(IEMOCAP_VAL / row["eval_batch"])
    return (
        steps * row[f"{prefix}train_step_ms"] + val_batches * row[f"{prefix}eval_batch_ms"]
    ) / 1e3


def projection(rows: Sequence[dict], epochs: int, parallel: int) -> dict:
    """Wall time of Table 1: 50 runs per cell, ``epochs`` epochs each, ``parallel`` at a time."""
    cells = {(r["model"], r["modality"]) for r in rows}
    missing = [f"{m} {s}" for m, subsets in TABLE1.items() for s in subsets if (m, s) not in cells]
    result = {
        "projection": "table1",
        "runs": RUNS_PER_CELL * sum(len(s) for s in TABLE1.values()),
        "epochs_per_run": epochs,
        "parallel_runs_per_device": parallel,
        "train_utterances": IEMOCAP_TRAIN,
        "val_utterances": IEMOCAP_VAL,
        "missing_cells": missing,
        "epoch_s": {f"{r['model']} {r['modality']}": round(epoch_seconds(r), 2) for r in rows},
    }
    for prefix, key in (("", "hours"), ("baseline_", "baseline_hours")):
        if all(f"{prefix}train_step_ms" in r for r in rows) and not missing:
            total = sum(RUNS_PER_CELL * epochs * epoch_seconds(r, prefix) for r in rows)
            result[key] = round(total / parallel / 3600, 2)
    return result


# -- modes ----------------------------------------------------------------------------------
def bench_models(args, autocast_dtype) -> list[dict]:
    rows = []
    for model in args.models:
        for modality in args.modalities:
            ours_net, base_net, shapes = build_pair(model, modality, args.preset, args.overrides)
            compiled = compile_network(
                ours_net, {"mode": args.compile_mode} if args.compile else False
            )
            sizes = (args.batch, args.eval_batch)
            ours = Variant(
                "ours", ours_net, shapes, sizes, args.device, torch.float32, autocast_dtype
            )
            variants = [ours]
            if args.baseline:
                base = Variant("baseline", base_net, shapes, sizes, args.device, torch.float64)
                # Same weights and inputs: the logits must agree before anything is timed.
                diff = (ours.eval_logits().double() - base.eval_logits()).abs().max().item()
                variants.append(base)
            measure(variants, args.warmup, args.steps)
            row = {
                "model": model,
                "modality": modality,
                "device": args.device,
                "dtype": "bfloat16-autocast" if autocast_dtype else "float32",
                "precision": args.precision,
                "batch": args.batch,
                "eval_batch": args.eval_batch,
                **summarise(ours),
                "compiled": compiled,
                "fast_paths": {
                    "attention_weights": ours_net.attention_weights,
                    **_kernel_flags(ours_net),
                },
                "steps": args.steps,
                "warmup": args.warmup,
            }
            if args.baseline:
                base_summary = summarise(base)
                row.update({f"baseline_{k}": v for k, v in base_summary.items()})
                row["baseline_dtype"] = "float64"
                row["train_speedup"] = round(
                    base_summary["train_step_ms"] / row["train_step_ms"], 2
                )
                row["eval_speedup"] = round(
                    base_summary["eval_batch_ms"] / row["eval_batch_ms"], 2
                )
                row["max_logit_diff"] = float(f"{diff:.3g}")
            row["machine"] = machine()
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def _kernel_flags(net: EmotionNet) -> dict:
    encoder = next(iter(net.encoders.values()))
    attention = next(m for m in net.modules() if hasattr(m, "blocked"))
    return {"fused_gru": encoder.fused_gru, "blocked_attention": attention.blocked}


def bench_layers(args, autocast_dtype) -> list[dict]:
    """Forward + backward and eval time of each layer of a tri-modal Cross+Self network."""
    ours_net, base_net, shapes = build_pair("cross_self", "TVA", args.preset, args.overrides)
    device = torch.device(args.device)
    ours_net.to(device)
    base_net.to(device)
    b = args.batch
    rows = []

    def layer_cases(net: EmotionNet, dtype):
        gen = torch.Generator().manual_seed(2)

        def rand(*shape, grad=True):
            x = torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)
            return x.requires_grad_(grad)

        cases = {}
        for m, enc in net.encoders.items():
            s = shapes[m]
            if enc.conv is not None:
                x = rand(b, s["seq_len"], s["feat_dim"], grad=False)
                cases[f"{m} conv {s['seq_len']}->{s['conv_out']}"] = (enc.conv, enc.conv, (x,))
            # Text enters its GRU straight from the data; audio and vision from the conv.
            x = rand(b, enc.out_len, s["feat_dim"], grad=enc.conv is not None)
            cases[f"{m} bi-GRU {enc.out_len}x{s['feat_dim']}"] = (enc, enc.recurrent, (x,))
        encoded = {m: rand(b, enc.out_len, enc.out_dim) for m, enc in net.encoders.items()}
        for m, attn in net.self_attention.items():
            t = encoded[m].shape[1]
            call = _attention_call(net, attn)
            cases[f"{m} self-attention {t}x{t}"] = (attn, call, (encoded[m],))
        for pair, attn in net.cross_attention.items():
            src, tgt = pair.split("2")
            lt, ls = encoded[tgt].shape[1], encoded[src].shape[1]
            call = _attention_call(net, attn)
            cases[f"{src}->{tgt} cross-attention {lt}x{ls}"] = (
                attn,
                call,
                (encoded[tgt], encoded[src]),
            )
        return cases

    ours_cases = layer_cases(ours_net, torch.float32)
    base_cases = layer_cases(base_net, torch.float64) if args.baseline else {}
    for name, case in ours_cases.items():
        pairs = [("ours", *case, autocast_dtype)]
        if args.baseline:
            pairs.append(("baseline", *base_cases[name], None))
        times = {k: {"train": [], "eval": []} for k, *_ in pairs}
        for i in range(args.warmup + args.steps):
            for key, module, f, xs, ac in pairs:
                train_ms = timed(device, _layer_train, module, f, xs, device, ac)
                eval_ms = timed(device, _layer_eval, module, f, xs, device, ac)
                if i >= args.warmup:
                    times[key]["train"].append(train_ms)
                    times[key]["eval"].append(eval_ms)
        row = {
            "layer": name,
            "device": args.device,
            "batch": b,
            "train_ms": _median(times["ours"]["train"]),
            "eval_ms": _median(times["ours"]["eval"]),
        }
        if args.baseline:
            row["baseline_train_ms"] = _median(times["baseline"]["train"])
            row["baseline_eval_ms"] = _median(times["baseline"]["eval"])
            row["train_speedup"] = round(row["baseline_train_ms"] / row["train_ms"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _attention_call(net: EmotionNet, attention: nn.Module):
    return lambda *streams: net._attention_output(attention, *streams)


def _layer_train(module: nn.Module, fn, inputs, device, autocast_dtype) -> None:
    module.train()
    ctx = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with ctx:
        out = fn(*inputs)
    out.float().sum().backward()


@torch.no_grad()
def _layer_eval(module: nn.Module, fn, inputs, device, autocast_dtype) -> None:
    module.eval()
    ctx = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with ctx:
        fn(*inputs)


def print_table(rows: Sequence[dict], file=None) -> None:
    """The JSON lines' main figures, readable (on stderr by default)."""
    file = file or sys.stderr
    if not rows:
        return
    if "layer" in rows[0]:
        print(
            f"{'layer':34s} {'train ms':>9s} {'base ms':>9s} {'x':>6s} {'eval ms':>8s}", file=file
        )
        for r in rows:
            print(
                f"{r['layer']:34s} {r['train_ms']:9.1f} {r.get('baseline_train_ms', 0):9.1f} "
                f"{r.get('train_speedup', 0):6.2f} {r['eval_ms']:8.1f}",
                file=file,
            )
        return
    print(
        f"{'model':6s} {'mod':4s} {'train ms':>9s} {'base ms':>9s} {'x':>6s} "
        f"{'eval ms':>8s} {'base ms':>9s} {'x':>6s}",
        file=file,
    )
    for r in rows:
        print(
            f"{r['model']:6s} {r['modality']:4s} {r['train_step_ms']:9.1f} "
            f"{r.get('baseline_train_step_ms', 0):9.1f} {r.get('train_speedup', 0):6.2f} "
            f"{r['eval_batch_ms']:8.1f} {r.get('baseline_eval_batch_ms', 0):9.1f} "
            f"{r.get('eval_speedup', 0):6.2f}",
            file=file,
        )


# -- command line ---------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m selfcross.bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--models", default="self,cross", help="comma-separated (default self,cross)")
    p.add_argument("--modalities", default="TVA,TV", help="comma-separated (default TVA,TV)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="32-true", choices=PRECISIONS, help="ours only")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--eval-batch", type=int, default=None, help="default: --batch")
    p.add_argument("--steps", type=int, default=None, help="timed steps (CPU 3, CUDA 30)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (CPU 1, CUDA 10)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--no-tf32", dest="tf32", action="store_false", help="CUDA: full fp32 matmuls")
    p.add_argument("--compile", action="store_true", help="torch.compile ours")
    p.add_argument("--compile-mode", default=None, help="e.g. max-autotune, reduce-overhead")
    p.add_argument("--no-baseline", dest="baseline", action="store_false")
    p.add_argument("--preset", default="paper", help="data preset of the shapes (paper)")
    p.add_argument("--layers", action="store_true", help="time each layer instead")
    p.add_argument("--sweep", action="store_true", help="all 11 Table 1 cells + projection")
    p.add_argument("--epochs", type=int, default=30, help="projection: epochs per run")
    p.add_argument("--parallel", type=int, default=1, help="projection: runs per device")
    p.add_argument(
        "overrides", nargs="*", help="config overrides, e.g. model.network.fused_gru=false"
    )
    args = p.parse_args(argv)
    gpu = args.device == "cuda"
    args.steps = args.steps if args.steps is not None else (30 if gpu else 3)
    args.warmup = args.warmup if args.warmup is not None else (10 if gpu else 1)
    args.eval_batch = args.eval_batch or args.batch
    args.models = [m for m in args.models.split(",") if m]
    args.modalities = [m for m in args.modalities.split(",") if m]
    if args.sweep:
        args.models = list(TABLE1)
    return args


def check_args(args: argparse.Namespace) -> None:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    if args.steps < 1 or args.warmup < 0 or args.batch < 1 or args.eval_batch < 1:
        raise ConfigError("--steps and --batch must be at least 1, --warmup at least 0")
    if args.epochs < 1 or args.parallel < 1:
        raise ConfigError("--epochs and --parallel must be at least 1")
    if args.precision == "bf16-mixed" and args.device == "cpu":
        raise ConfigError("--precision bf16-mixed is a CUDA fast path; use --device cuda")
    known = {"self", "cross", "self_nosp", "cross_nosp", "cross_self"}
    for model in args.models:
        if model not in known:
            raise ConfigError(
                f"--models: unknown model {model!r}; expected {', '.join(sorted(known))}"
            )
    for modality in args.modalities:
        if not modality or set(modality) - set("TVA") or len(set(modality)) != len(modality):
            raise ConfigError(f"--modalities: {modality!r} is not a subset of T, V, A")
        for model in args.models:
            if model != "self" and not model.startswith("self_") and len(modality) < 2:
                raise ConfigError(
                    f"--models {model} --modalities {modality}: a {model} model needs at "
                    "least two modalities"
                )


def main(argv: Sequence[str] | None = None) -> int:
    with user_errors():
        args = parse_args(argv)
        check_args(args)
        apply_backend_settings(tf32=args.tf32, cpu_threads=args.threads)
        autocast_dtype = torch.bfloat16 if args.precision == "bf16-mixed" else None
        if args.layers:
            rows = bench_layers(args, autocast_dtype)
        elif args.sweep:
            rows = []
            for model, subsets in TABLE1.items():
                args.models, args.modalities = [model], subsets
                rows += bench_models(args, autocast_dtype)
        else:
            rows = bench_models(args, autocast_dtype)
        print_table(rows)
        if args.sweep:
            print(json.dumps(projection(rows, args.epochs, args.parallel)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
