"""A finished run as a self-contained model folder (``selfcross.export``): ``model.onnx``,
``model.safetensors``, ``config.json`` and a ``README.md`` model card, ready for the Hugging
Face CLI's upload command (nothing is uploaded).

The ONNX graph is traced from the network's plain path: the bi-GRUs as ``nn.GRU`` instead of
the fused CPU kernel, attention without returning its weights (the same functions, numbers
within float32 rounding). Its batch axis is dynamic, and so is the text's token axis (no
convolution reads it); the audio and video lengths are the training lengths, since the
convolutions read time as channels, so new inputs are cut or padded to them as preparation does.
Before anything is written the export is checked: ONNX Runtime's logits on the run's test split,
at several batch sizes and text lengths, must match PyTorch's (the network as trained, fast
kernels included) within :data:`TOLERANCE`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from selfcross.analysis.inputs import (
    EXPORT_CONFIG,
    EXPORT_FORMAT,
    ONNX_FILE,
    WEIGHTS_FILE,
    OpenedModel,
    open_model,
)
from selfcross.analysis.modelcard import model_card
from selfcross.analysis.predict import fold_arrays
from selfcross.errors import DataError
from selfcross.models.pooling import StatisticalPooling
from selfcross.utils import atomic
from selfcross.utils.io import write_json_atomic

OPSET = 17
TOLERANCE = 1e-5
"""Largest accepted |ONNX Runtime - PyTorch| per logit (absolute, plus the same relative)."""
BATCH_SIZES = (1, 3, 8)
SCHEMA_VERSION = 1


@dataclass
class ExportCheck:
    max_abs_diff: float
    cases: list[dict]
    """Per case: batch size, text length, largest difference."""

    def to_json(self) -> dict:
        return {"tolerance": TOLERANCE, "max_abs_diff": self.max_abs_diff, "cases": self.cases}


def input_names(network) -> list[str]:
    names = list(network.modalities)
    if network.mask_padding:
        names += [f"{m}_len" for m in network.modalities]
    return names


def plain_network(network):
    """A copy of ``network`` on its traceable path (same weights, same numbers)."""
    plain = copy.deepcopy(network).eval()
    plain.attention_weights = False
    for encoder in plain.encoders.values():
        encoder.fused_gru = False
    if type(plain.pool) is StatisticalPooling:
        plain.pool = TracedStatisticalPooling()
    return plain


class TracedStatisticalPooling(StatisticalPooling):
    """Statistical pooling whose one-stream case (a uni-modal self model) traces: the tracer
    records ``zeros_like`` as a constant of the example's batch size, so the zero half is
    ``mean * 0`` here (the same zeros for the finite values a network computes)."""

    def forward(self, streams: torch.Tensor) -> torch.Tensor:
        if streams.shape[1] == 1:
            mean = streams[:, 0]
            return torch.cat([mean, mean * 0.0], dim=-1)
        return super().forward(streams)


def write_onnx(network, example: dict, lengths: dict, path: Path) -> None:
    names = input_names(network)

    class Traced(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, *tensors):
            batch = dict(zip(names, tensors, strict=True))
            valid = {m: batch.pop(f"{m}_len") for m in self.net.modalities if f"{m}_len" in batch}
            return self.net({**batch, "lengths": valid})

    args = [torch.from_numpy(example[m]) for m in network.modalities]
    args += [torch.from_numpy(lengths[m]) for m in network.modalities if network.mask_padding]
    axes = {name: {0: "batch"} for name in names}
    if "T" in network.modalities and not network.mask_padding:
        axes["T"][1] = "tokens"  # masks are as long as the training text: fixed with them
    axes["logits"] = {0: "batch"}
    torch.onnx.export(Traced(network).eval(), tuple(args), str(path), input_names=names,
                      output_names=["logits"], dynamic_axes=axes, opset_version=OPSET,
                      dynamo=False)  # fmt: skip


def check_export(model: OpenedModel, path: Path, arrays: dict, lengths: dict) -> ExportCheck:
    """ONNX Runtime against the trained network on the run's test split: the whole split and
    its first rows at several batch sizes, with the text at its full length and shortened."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    n = len(next(iter(arrays.values())))
    token_lengths = [None]
    if "T" in arrays and arrays["T"].shape[1] > 2 and not model.network.mask_padding:
        token_lengths.append(arrays["T"].shape[1] // 2)
    cases, worst = [], 0.0
    for size in sorted({min(b, n) for b in BATCH_SIZES} | {n}):
        for tokens in token_lengths:
            part = {m: np.ascontiguousarray(x[:size]) for m, x in arrays.items()}
            valid = {m: np.asarray(x[:size], np.int64) for m, x in lengths.items()}
            if tokens is not None:
                part["T"] = np.ascontiguousarray(part["T"][:, :tokens])
                valid["T"] = np.minimum(valid["T"], tokens)
            feed = {m: part[m] for m in model.inputs.modalities}
            feed.update({f"{m}_len": valid[m] for m in valid if f"{m}_len" in names})
            got = session.run(["logits"], feed)[0]
            batch = {m: torch.from_numpy(part[m]) for m in model.inputs.modalities}
            batch["lengths"] = {m: torch.from_numpy(v) for m, v in valid.items()}
            with torch.inference_mode():
                expected = model.network(batch).numpy()
            diff = float(np.abs(got - expected).max())
            if not np.allclose(got, expected, rtol=TOLERANCE, atol=TOLERANCE):
                raise DataError(path, f"ONNX Runtime's logits differ from PyTorch's by {diff:.2e}"
                                f" (batch {size}, text length {tokens or 'full'})")  # fmt: skip
            worst = max(worst, diff)
            text = part["T"].shape[1] if "T" in part else None
            cases.append({"batch": size, "tokens": text, "max_abs_diff": diff})
    return ExportCheck(worst, cases)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_config(model: OpenedModel, check: ExportCheck, weights: Path) -> dict:
    from selfcross.models import count_parameters

    record, inputs = model.record, model.inputs
    features = inputs.features or {}
    vision = features.get("vision") or {}
    return {
        "format": EXPORT_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "model": model.name,
        "modalities": list(inputs.modalities),
        "class_names": list(inputs.class_names),
        "n_params": count_parameters(model.network),
        "network": model.network_config,
        "inputs": inputs.to_json(),
        "onnx": {
            "file": ONNX_FILE,
            "opset": OPSET,
            "inputs": {
                m: [
                    "batch",
                    "tokens"
                    if m == "T" and not model.network.mask_padding
                    else inputs.shapes[m]["seq_len"],
                    inputs.shapes[m]["feat_dim"],
                ]
                for m in inputs.modalities
            },  # fmt: skip
            "lengths_inputs": bool(model.network.mask_padding),
            "output": "logits",
            "checked": check.to_json(),
        },
        "weights": {"file": WEIGHTS_FILE, "sha256": sha256_file(weights)},
        "word_vectors": None
        if "T" not in inputs.modalities
        else {
            "kind": (features.get("text") or {}).get("kind", "glove"),
            "vocabulary_size": len(inputs.vocabulary or []),
            "vocabulary_rows_sha256": inputs.embedding_sha256,
        },  # fmt: skip
        "frame_encoder": None
        if "V" not in inputs.modalities
        else {
            "kind": vision.get("kind", "resnet101"),
            "weights_sha256_prefix": vision.get("weights"),
        },  # fmt: skip
        "source": {
            "run": str(model.path),
            "dataset": record.data.name,
            "fold": record.fold,
            "seed": record.seed,
            "config_hash": record.config_hash,
            "version": record.version,
            "git_commit": record.git_commit,
        },
    }


def export_run(run_dir: Path, out: Path) -> tuple[Path, dict]:
    """Write the model folder ``out`` (replaced only once complete); returns it and its
    config."""
    from safetensors.torch import save_file

    model = open_model(run_dir)
    if model.fold_path is None or not model.fold_path.is_dir():
        raise DataError(run_dir, f"its fold {model.fold_path} is not at hand: the export is "
                        "checked on the run's test split")  # fmt: skip
    out = Path(out)
    if out.exists() and not (out / EXPORT_CONFIG).is_file():
        raise DataError(out, "exists and is not an exported model folder: choose another --out")
    arrays, lengths, _ = fold_arrays(model, model.fold_path, "test")
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    plain = plain_network(model.network)
    write_onnx(plain, {m: x[:2] for m, x in arrays.items()},
               {m: np.asarray(x[:2], np.int64) for m, x in lengths.items()},
               staging / ONNX_FILE)  # fmt: skip
    check = check_export(model, staging / ONNX_FILE, arrays, lengths)
    state = {k: v.detach().contiguous() for k, v in model.network.state_dict().items()}
    save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
    config = export_config(model, check, staging / WEIGHTS_FILE)
    write_json_atomic(staging / EXPORT_CONFIG, config)
    atomic.write_text(staging / "README.md", model_card(model, config))
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return out, json.loads((out / EXPORT_CONFIG).read_text())
