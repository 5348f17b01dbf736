"""Time training steps and evaluation batches at paper shapes against the reference's way.

    python -m selfcross.bench                          # self and cross on TVA and TV, CPU
    python -m selfcross.bench --models self --modalities TVA --device cuda --precision bf16-mixed
    python -m selfcross.bench --layers                 # where the time goes, layer by layer
    python -m selfcross.bench --sweep --epochs 30 --parallel 4   # Table 1's wall time
    python -m selfcross.bench --seed-group 10 --modalities TVA   # a group of 10 vs 10 runs
    python -m selfcross.bench --seed-group 10 --device cuda      # the same on a GPU

Needs no dataset: random tensors of the configured shapes (``--preset paper``: text [128, 300],
vision [32, 2048], audio [1000, 120]). For each model and modality subset it builds the network
from the real config twice on the same weights: *ours* (float32 or bf16 autocast, fused
attention, the CPU kernels, optionally compiled) and the *baseline* written the way the paper's
reference code works (eager, float64, every attention module asked for its weights, PyTorch's
own GRU). A training step is forward, cross-entropy, backward and an Adam step; an evaluation
batch is a forward pass in eval mode without gradients. Baseline and ours alternate step by step
in one process, so machine load hits both alike; medians are reported. One JSON line per
configuration on stdout; a readable table on stderr. See docs/performance.md.

The library is :mod:`selfcross.benchmark`; this module parses and checks the arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import torch

from selfcross import fusion_problem, modality_problem
from selfcross.benchmark.group import bench_group_layers, bench_seed_group
from selfcross.benchmark.layers import bench_layers
from selfcross.benchmark.network import bench_models, bench_table1
from selfcross.benchmark.projection import TABLE1, projection
from selfcross.benchmark.report import print_table
from selfcross.benchmark.variants import PRECISIONS, Settings
from selfcross.config import CONFIG_DIR, model_fusion, user_errors
from selfcross.errors import ConfigError
from selfcross.training.runtime import apply_backend_settings


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
    p.add_argument("--seed-group", type=int, default=None, metavar="K",
                   help="a seed group of K against K single runs")  # fmt: skip
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
    """Reject arguments that cannot run, with one-line messages."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    if args.steps < 1 or args.warmup < 0 or args.batch < 1 or args.eval_batch < 1:
        raise ConfigError("--steps and --batch must be at least 1, --warmup at least 0")
    if args.seed_group is not None and args.seed_group < 1:
        raise ConfigError("--seed-group: a count of at least 1")
    if args.seed_group is not None and args.layers and args.device != "cpu":
        raise ConfigError("--seed-group --layers: on --device cpu")
    if args.epochs < 1 or args.parallel < 1:
        raise ConfigError("--epochs and --parallel must be at least 1")
    if args.precision == "bf16-mixed" and args.device == "cpu":
        raise ConfigError("--precision bf16-mixed is a CUDA fast path; use --device cuda")
    known = sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))
    for model in args.models:
        if model not in known:
            raise ConfigError(f"--models: unknown model {model!r}; expected {', '.join(known)}")
    for modality in args.modalities:
        if modality_problem(modality) is not None:
            raise ConfigError(f"--modalities: {modality!r} is not a subset of T, V, A")
        for model in args.models:
            problem = fusion_problem(model_fusion(model), modality)
            if problem:
                raise ConfigError(f"--models {model} --modalities {modality}: {problem}")


def settings_from(args: argparse.Namespace) -> Settings:
    """The library's settings for the checked arguments."""
    return Settings(
        models=args.models,
        modalities=args.modalities,
        device=args.device,
        precision=args.precision,
        batch=args.batch,
        eval_batch=args.eval_batch,
        steps=args.steps,
        warmup=args.warmup,
        compile=args.compile,
        compile_mode=args.compile_mode,
        baseline=args.baseline,
        preset=args.preset,
        overrides=args.overrides,
    )


def print_row(row: dict) -> None:
    """One JSON line on stdout, as soon as it is measured."""
    print(json.dumps(row), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    with user_errors():
        args = parse_args(argv)
        check_args(args)
        apply_backend_settings(tf32=args.tf32, cpu_threads=args.threads)
        settings = settings_from(args)
        if args.seed_group is not None and args.layers:
            rows = bench_group_layers(settings, args.seed_group, print_row)
        elif args.seed_group is not None:
            rows = bench_seed_group(settings, args.seed_group, print_row)
        elif args.layers:
            rows = bench_layers(settings, print_row)
        elif args.sweep:
            rows = bench_table1(settings, print_row)
        else:
            rows = bench_models(settings, print_row)
        print_table(rows)
        if args.sweep:
            print_row(projection(rows, args.epochs, args.parallel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
