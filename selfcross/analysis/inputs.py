"""A trained model opened for prediction: a run folder (``result.json`` and its best checkpoint)
or a folder written by ``selfcross.export`` (``config.json``, ``model.safetensors``,
``model.onnx``), with what its inputs need (:class:`~selfcross.data.inputs.RunInputs`).

A run's inputs are its ``inputs.json``, written when it trained; a run trained before that file
existed has them recomputed from its fold (:func:`~selfcross.analysis.reload.reload_run`, the
fold checked against the run's fingerprint). An exported folder carries them in ``config.json``
with the network's keyword arguments: values only, the network is always selfcross's
:class:`~selfcross.models.EmotionNet`.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path

from selfcross.analysis.reload import checkpoint_of, load_module, read_run, reload_run, run_config
from selfcross.data.inputs import INPUTS_FILE, RunInputs, inputs_of, parse_inputs, read_inputs
from selfcross.errors import DataError
from selfcross.training.record import RESULT_FILE

EXPORT_CONFIG = "config.json"
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "model.safetensors"
EXPORT_FORMAT = "selfcross-model"
BACKENDS = ("torch", "onnx")


@dataclass
class OpenedModel:
    path: Path
    kind: str
    """``run`` or ``export``."""
    name: str
    """The model's name (``cross``, ...)."""
    inputs: RunInputs
    network_config: dict
    """EmotionNet's keyword arguments."""
    network: object | None = None
    """The EmotionNet in eval mode (backend ``torch``)."""
    session: object | None = None
    """The ONNX Runtime session (backend ``onnx``)."""
    record: object | None = None
    """The run's RunRecord (a run folder) or None."""
    fold_path: Path | None = None
    """The fold the run trained on (a run folder), for its word vectors."""
    config: dict | None = None
    """An exported folder's ``config.json``."""


def network_kwargs(cfg) -> dict:
    """EmotionNet's keyword arguments from a run's configuration (values only)."""
    from omegaconf import OmegaConf

    network = OmegaConf.to_container(cfg.model.network, resolve=True)
    return {k: v for k, v in network.items() if not k.startswith("_")}


def build_network(kwargs: dict, path: Path):
    """An EmotionNet from recorded keyword arguments; unknown ones are refused (``path``)."""
    from selfcross.models import EmotionNet

    known = set(inspect.signature(EmotionNet.__init__).parameters) - {"self"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise DataError(path, f"network: unknown settings {', '.join(unknown)}")
    return EmotionNet(**kwargs).eval()


def run_inputs(run_dir: Path) -> RunInputs:
    """The run's ``inputs.json``, or the same values recomputed from its fold (older runs)."""
    path = Path(run_dir) / INPUTS_FILE
    if path.is_file():
        return read_inputs(path)
    return inputs_of(reload_run(run_dir).datamodule)


def open_model(path: Path, backend: str = "torch") -> OpenedModel:
    """A run folder or an exported folder, ready to predict with ``backend``."""
    path = Path(path)
    if backend not in BACKENDS:
        raise DataError(path, f"backend={backend!r}: expected one of {', '.join(BACKENDS)}")
    if (path / EXPORT_CONFIG).is_file() and not (path / RESULT_FILE).is_file():
        return _open_export(path, backend)
    record = read_run(path)
    if backend != "torch":
        raise DataError(path, f"backend={backend}: only an exported folder (selfcross.export) "
                              "has an ONNX model")  # fmt: skip
    cfg = run_config(path / RESULT_FILE, record)
    module = load_module(cfg, checkpoint_of(path))
    return OpenedModel(
        path=path,
        kind="run",
        name=str(record.model),
        inputs=run_inputs(path),
        network_config=network_kwargs(cfg),
        network=module.network.eval(),
        record=record,
        fold_path=Path(record.data.fold_path) if record.data.fold_path else None,
    )


def read_export_config(path: Path) -> dict:
    config_path = path / EXPORT_CONFIG
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(
            config_path, f"cannot be read as JSON ({str(err).splitlines()[0]})"
        ) from None
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        raise DataError(config_path, f"is not a selfcross model folder (format {EXPORT_FORMAT})")
    for key in ("network", "inputs", "model"):
        if key not in config:
            raise DataError(config_path, f"has no {key}")
    return config


def _open_export(path: Path, backend: str) -> OpenedModel:
    config = read_export_config(path)
    inputs = parse_inputs(config["inputs"], path / EXPORT_CONFIG)
    opened = OpenedModel(path=path, kind="export", name=str(config["model"]), inputs=inputs,
                         network_config=dict(config["network"]), config=config)  # fmt: skip
    if backend == "onnx":
        import onnxruntime

        onnx_path = path / ONNX_FILE
        if not onnx_path.is_file():
            raise DataError(onnx_path, "missing: export the run again (selfcross.export)")
        try:
            opened.session = onnxruntime.InferenceSession(
                str(onnx_path), providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own exception types
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
            raise DataError(onnx_path, f"cannot be loaded by ONNX Runtime ({reason})") from None
        return opened
    from safetensors.torch import load_file

    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise DataError(weights, "missing: export the run again (selfcross.export)")
    network = build_network(opened.network_config, path / EXPORT_CONFIG)
    try:
        network.load_state_dict(load_file(str(weights)))
    except Exception as err:  # a cut-off file, or weights of another network
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        raise DataError(weights, f"cannot be loaded into the network ({reason})") from None
    opened.network = network.eval()
    return opened
