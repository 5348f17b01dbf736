"""A finished run as a self-contained model folder.

    python -m selfcross.export RUN --out exported/cross-TVA

Writes ``model.onnx`` (a dynamic batch axis), ``model.safetensors``, ``config.json`` (network,
feature settings, standardisation statistics, class names, modalities) and a ``README.md`` model
card, after checking ONNX Runtime's logits against PyTorch's on the run's test split. Nothing is
uploaded; the folder is ready for ``huggingface-cli upload``. The work is
:mod:`selfcross.analysis.export` (docs/using-models.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from selfcross.config import user_errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m selfcross.export",
        description="A finished run as an ONNX + safetensors model folder with a model card.",
    )
    parser.add_argument("run", type=Path, help="a run folder (holding result.json)")
    parser.add_argument("--out", type=Path, required=True, help="the model folder to write")
    parser.add_argument("--format", choices=("onnx",), default="onnx",
                        help="onnx (with safetensors weights beside it)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None):
    args = build_parser().parse_args(argv)
    with user_errors():
        from selfcross.analysis.export import export_run

        out, config = export_run(args.run, args.out)
        check = config["onnx"]["checked"]
        print(f"wrote {out} (model.onnx, model.safetensors, config.json, README.md); ONNX "
              f"Runtime matches PyTorch on the test split within {check['tolerance']:g} "
              f"(largest difference {check['max_abs_diff']:.1e}, {len(check['cases'])} "
              "batch/text-length cases)")  # fmt: skip
        return out


if __name__ == "__main__":
    main()
