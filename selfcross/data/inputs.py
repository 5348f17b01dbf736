"""What a trained run needs to turn a new clip into its inputs, saved with the run as
``inputs.json`` (``selfcross.predict``, ``selfcross.export``; docs/using-models.md).

The train split's audio standardisation (mode, float32 mean and std), the modalities, shapes
and class names the network reads, the fold's text vocabulary (token of each id, from its
``vocab.json``) with the SHA-256 of its word-vector rows, and the preparation's feature settings
(the root's ``dataset.json`` ``features``: MFCC, GloVe and frame-encoder settings with the
encoder weights' digest). A root without a manifest (Yoon et al.'s folds) has no feature
settings: its features cannot be reproduced from clips.

Written by training beside ``result.json`` (nothing here changes a number or the configuration
hash); for runs trained before it existed, :func:`inputs_of` recomputes the same values from the
run's fold. Plain JSON: float32 values are written as the float64 numbers that read back to the
same float32.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfcross import MODALITIES
from selfcross.data.preprocess import AUDIO_STANDARDIZE
from selfcross.errors import DataError
from selfcross.manifest import read_manifest
from selfcross.utils.io import write_json_atomic

INPUTS_FILE = "inputs.json"
VOCAB_FILE = "vocab.json"
SCHEMA_VERSION = 1


@dataclass
class RunInputs:
    modalities: tuple[str, ...]
    class_names: tuple[str, ...]
    shapes: dict[str, dict[str, int]]
    """Modality -> ``{seq_len, feat_dim}``: inputs are cut or zero-padded to ``seq_len``."""
    audio_standardize: str
    audio_mean: np.ndarray | None
    """float32 [D] (``feature``) or [T, D] (``frame_feature``); None without audio."""
    audio_std: np.ndarray | None
    drop_zero_video: bool
    vocabulary: list[str] | None
    """Token of each id of the fold's ``vocab.json`` (id 0: padding); None: the fold has none."""
    embedding_sha256: str | None
    """SHA-256 of the fold's word-vector rows (float32 bytes), None without text ids."""
    dataset: str | None
    """The dataset of the root's manifest; None: a root without one."""
    features: dict | None
    """The root manifest's feature settings; None: unknown (the features cannot be reproduced)."""

    def to_json(self) -> dict:
        def values(a):
            return None if a is None else np.asarray(a, np.float32).astype(float).tolist()

        return {
            "schema_version": SCHEMA_VERSION,
            "modalities": list(self.modalities),
            "class_names": list(self.class_names),
            "shapes": self.shapes,
            "audio": {
                "standardize": self.audio_standardize,
                "mean": values(self.audio_mean),
                "std": values(self.audio_std),
            },
            "drop_zero_video": self.drop_zero_video,
            "text": {"vocabulary": self.vocabulary, "embedding_sha256": self.embedding_sha256},
            "dataset": self.dataset,
            "features": self.features,
        }


def embedding_digest(matrix: np.ndarray) -> str:
    """SHA-256 of word-vector rows as float32 bytes, row-major."""
    data = np.ascontiguousarray(matrix, dtype=np.float32)
    return hashlib.sha256(data.tobytes()).hexdigest()


def inputs_of(datamodule) -> RunInputs:
    """The inputs of a set-up :class:`~selfcross.data.FoldDataModule`'s fold."""
    fold = datamodule.fold_data
    options = datamodule.options
    shapes = {m: {k: int(datamodule.shapes[m][k]) for k in ("seq_len", "feat_dim")}
              for m in MODALITIES} if datamodule.shapes else fold_shapes(fold)  # fmt: skip
    vocabulary = None
    vocab_path = Path(fold.path) / VOCAB_FILE
    if vocab_path.is_file():
        try:
            tokens = json.loads(vocab_path.read_text())["tokens"]
        except (OSError, ValueError, KeyError, TypeError):
            raise DataError(vocab_path, "is not a vocabulary file (tokens: [...])") from None
        vocabulary = [str(t) for t in tokens]
    manifest = read_manifest(datamodule.root)
    audio = "A" in datamodule.modalities and fold.audio_mean is not None
    return RunInputs(
        modalities=tuple(datamodule.modalities),
        class_names=tuple(datamodule.class_names),
        shapes=shapes,
        audio_standardize=options.audio_standardize if audio else "none",
        audio_mean=fold.audio_mean if audio else None,
        audio_std=fold.audio_std if audio else None,
        drop_zero_video=bool(options.drop_zero_video),
        vocabulary=vocabulary,
        embedding_sha256=None if fold.embedding is None else embedding_digest(fold.embedding),
        dataset=None if manifest is None else manifest.dataset,
        features=prepared_features(manifest),
    )


def prepared_features(manifest) -> dict | None:
    """A manifest's feature settings when they describe extracted features (a section per
    modality, as preparation writes); None for a generator's parameters or no manifest."""
    features = None if manifest is None else manifest.features
    if not features or not {"audio", "text", "vision"} & set(features):
        return None
    return dict(features)


def fold_shapes(fold) -> dict[str, dict[str, int]]:
    """Shapes of the loaded splits' arrays (a data module built without ``shapes``)."""
    out = {}
    for m, x in fold.splits["train"].features.items():
        out[m] = {"seq_len": int(x.shape[1]), "feat_dim": int(x.shape[2]) if x.ndim == 3 else 0}
    if "T" in out and fold.embedding is not None:
        out["T"]["feat_dim"] = int(fold.embedding.shape[1])
    return out


def write_inputs(run_dir: Path, inputs: RunInputs) -> Path:
    return write_json_atomic(Path(run_dir) / INPUTS_FILE, inputs.to_json())


def read_inputs(path: Path) -> RunInputs:
    """``inputs.json`` (or a model folder's ``config.json`` ``inputs`` section) read back and
    checked; one-line DataError naming the file otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(path, f"cannot be read as JSON ({str(err).splitlines()[0]})") from None
    return parse_inputs(data.get("inputs", data) if isinstance(data, dict) else data, path)


def parse_inputs(data, path: Path) -> RunInputs:
    try:
        if data["schema_version"] > SCHEMA_VERSION:
            raise DataError(path, f"schema_version {data['schema_version']}: update selfcross")
        modalities = tuple(m for m in MODALITIES if m in data["modalities"])
        audio, text = data["audio"], data["text"]
        mode = audio["standardize"]
        if mode not in AUDIO_STANDARDIZE or not modalities:
            raise ValueError(mode)
        shapes = {m: {k: int(data["shapes"][m][k]) for k in ("seq_len", "feat_dim")}
                  for m in modalities}  # fmt: skip

        def array(values):
            return None if values is None else np.asarray(values, dtype=np.float32)

        features = data["features"]
        if features is not None and not isinstance(features, dict):
            raise ValueError("features")
        return RunInputs(
            modalities=modalities,
            class_names=tuple(str(n) for n in data["class_names"]),
            shapes=shapes,
            audio_standardize=mode,
            audio_mean=array(audio["mean"]),
            audio_std=array(audio["std"]),
            drop_zero_video=bool(data["drop_zero_video"]),
            vocabulary=None
            if text["vocabulary"] is None
            else [str(t) for t in text["vocabulary"]],
            embedding_sha256=text["embedding_sha256"],
            dataset=data["dataset"],
            features=features,
        )
    except DataError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(path, f"is not a run's inputs record (bad or missing {err})") from None
