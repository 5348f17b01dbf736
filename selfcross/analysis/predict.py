"""Predictions of a trained model: on new clips (features made by preparation's code,
:mod:`selfcross.analysis.featurize`), or on a split of a processed fold, through PyTorch or, for
an exported folder, ONNX Runtime. Per utterance: the class probabilities under the run's class
names, the predicted class and the modalities used."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfcross.analysis.featurize import Clip, Featurizer, Resources
from selfcross.data.npy import SPLITS, split_file
from selfcross.errors import ConfigError, DataError
from selfcross.utils import atomic
from selfcross.utils.io import write_json_atomic

BATCH = 64
FOLD_MANIFEST = "manifest.json"
MANIFEST_COLUMNS = ("id", "path", "transcript", "start", "end", "side")
NAMES = {"T": "text", "V": "video", "A": "audio"}


@dataclass
class Predictions:
    ids: list[str]
    logits: np.ndarray
    """[N, classes] float32."""
    class_names: tuple[str, ...]
    modalities: tuple[str, ...]
    labels: np.ndarray | None = None
    """[N] true class ids (a fold's split), else None."""
    notes: tuple[str, ...] = ()

    @property
    def probabilities(self) -> np.ndarray:
        z = self.logits.astype(np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def rows(self) -> list[dict]:
        probs = self.probabilities
        out = []
        for i, utt in enumerate(self.ids):
            row = {
                "id": utt,
                "predicted": self.class_names[int(np.argmax(self.logits[i]))],
                "modalities": "".join(self.modalities),
                "probabilities": {
                    n: float(p) for n, p in zip(self.class_names, probs[i], strict=True)
                },  # fmt: skip
                "logits": [float(x) for x in self.logits[i]],
            }
            if self.labels is not None:
                row["label"] = self.class_names[int(self.labels[i])]
            out.append(row)
        return out


def network_logits(model, arrays: dict, lengths: dict, batch: int = BATCH) -> np.ndarray:
    """Logits [N, classes] of the model's network on ``arrays`` ({m: [N, T, D] float32})."""
    n = len(next(iter(arrays.values())))
    out = []
    for start in range(0, n, batch):
        part = {m: np.ascontiguousarray(x[start : start + batch]) for m, x in arrays.items()}
        valid = {m: x[start : start + batch] for m, x in lengths.items()}
        out.append(batch_logits(model, part, valid))
    return np.concatenate(out).astype(np.float32)


def batch_logits(model, arrays: dict, lengths: dict) -> np.ndarray:
    if model.session is not None:
        feed = {m: arrays[m] for m in model.inputs.modalities}
        names = {i.name for i in model.session.get_inputs()}
        feed.update({f"{m}_len": lengths[m].astype(np.int64) for m in lengths
                     if f"{m}_len" in names})  # fmt: skip
        return model.session.run(["logits"], feed)[0]
    import torch

    batch = {m: torch.from_numpy(arrays[m]) for m in model.inputs.modalities}
    batch["lengths"] = {m: torch.from_numpy(np.asarray(v, np.int64)) for m, v in lengths.items()}
    with torch.inference_mode():
        return model.network(batch).float().numpy()


def check_clip(model, clip: Clip) -> Clip:
    """The clip's inputs against the modalities the model uses: one line per problem."""
    used = model.inputs.modalities
    media = [m for m in used if m in "AV"]
    shown = "".join(used)
    if clip.path is not None and not media:
        raise ConfigError(f"{clip.id}: the model uses no audio or video (modalities {shown}): "
                          "give only the transcript")  # fmt: skip
    if clip.path is None and media:
        names = " and ".join(NAMES[m] for m in media)
        raise ConfigError(f"{clip.id}: the model uses {names} (modalities {shown}): give a clip")
    if clip.path is not None and not clip.path.is_file():
        raise DataError(clip.path, "no such file")
    if clip.text is not None and "T" not in used:
        raise ConfigError(f"{clip.id}: the model uses no text (modalities {shown}): drop the "
                          "transcript")  # fmt: skip
    if clip.text is None and "T" in used:
        raise ConfigError(f"{clip.id}: the model uses text (modalities {shown}): give the "
                          "transcript")  # fmt: skip
    return clip


def predict_clips(model, clips: list[Clip], resources: Resources) -> Predictions:
    for clip in clips:
        check_clip(model, clip)
    arrays, lengths = Featurizer(model, resources)(clips)
    logits = network_logits(model, arrays, lengths)
    return Predictions([c.id for c in clips], logits, model.inputs.class_names,
                       model.inputs.modalities, notes=tuple(resources.notes))  # fmt: skip


def read_clip_manifest(path: Path) -> list[Clip]:
    """Clips listed in a CSV file: ``path``, ``transcript`` and optional ``id``, ``start``,
    ``end`` (seconds) and ``side`` columns; paths are relative to the file's folder."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
            header = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(path, f"cannot be read as CSV ({err})") from None
    unknown = sorted(set(header) - set(MANIFEST_COLUMNS))
    if unknown or not rows or not ({"path", "transcript"} & set(header)):
        raise DataError(path, f"expected a header of {', '.join(MANIFEST_COLUMNS)} (path or "
                        f"transcript at least), one row per clip; unknown: {unknown}")  # fmt: skip
    clips = []
    for k, row in enumerate(rows, start=2):
        try:
            start, end = (float(row[c]) if row.get(c) else None for c in ("start", "end"))
        except ValueError:
            raise DataError(path, f"line {k}: start and end are seconds") from None
        media = path.parent / row["path"] if row.get("path") else None
        utt = row.get("id") or (media.stem if media else f"line{k}")
        clips.append(Clip(utt, media, row.get("transcript"), start, end, row.get("side") or None))
    return clips


def fold_predictions(model, fold: Path, split: str) -> Predictions:
    """The model on a processed fold's split: the fold read as training reads it, audio
    standardised with the model's own train statistics (not the fold's)."""
    arrays, lengths, labels = fold_arrays(model, fold, split)
    logits = network_logits(model, arrays, lengths)
    ids = fold_ids(Path(fold), split, len(labels), model.inputs.drop_zero_video)
    return Predictions(ids, logits, model.inputs.class_names, model.inputs.modalities, labels)


def fold_arrays(model, fold: Path, split: str) -> tuple[dict, dict, np.ndarray]:
    """A fold's split as the model's inputs: ({m: [N, T, D] float32}, {m: [N] lengths},
    labels)."""
    from selfcross.data import FoldDataModule

    fold = Path(fold)
    if split not in SPLITS:
        raise ConfigError(f"--split {split}: expected one of {', '.join(SPLITS)}")
    number = fold.name.removeprefix("fold")
    if not fold.is_dir() or not number.isdigit():
        raise DataError(fold, "is not a fold folder (fold01, fold02, ...)")
    inputs = model.inputs
    datamodule = FoldDataModule(
        root=str(fold.parent), fold=int(number), modalities=inputs.modalities,
        class_names=inputs.class_names, class_counts=(1,) * len(inputs.class_names),
        n_folds=int(number), shapes=inputs.shapes, drop_zero_video=inputs.drop_zero_video,
        audio_standardize="none", cache_dir=None, on_device=False,
        name=inputs.dataset or "iemocap",
    )  # fmt: skip
    datamodule.setup("test")
    return split_arrays(inputs, datamodule.fold_data, split)


def split_arrays(inputs, fold_data, split: str) -> tuple[dict, dict, np.ndarray]:
    """A split of a fold read with ``audio_standardize=none`` (``fold_data``, a
    :class:`~selfcross.data.fold.FoldData`) as the inputs of the model whose ``inputs`` (a
    :class:`~selfcross.data.inputs.RunInputs`) are given: text ids looked up in the fold's word
    vectors, audio standardised with the model's own train statistics."""
    from selfcross.data.datamodule import text_lengths
    from selfcross.data.preprocess import standardize_rows

    data = fold_data.splits[split]
    arrays, lengths = {}, {}
    for m in inputs.modalities:
        x = np.asarray(data.features[m])
        if m == "T" and x.ndim == 2:
            lengths[m] = text_lengths(x)
            x = np.take(fold_data.embedding, x, axis=0)
        elif m == "T":
            lengths[m] = text_lengths(x)
        else:
            lengths[m] = np.asarray(data.lengths[m], np.int64)
        arrays[m] = np.array(x, dtype=np.float32)
    if "A" in arrays and inputs.audio_mean is not None:
        standardize_rows(arrays["A"], lengths["A"], inputs.audio_mean, inputs.audio_std,
                         inputs.audio_standardize)  # fmt: skip
    return arrays, lengths, np.asarray(data.labels)


def fold_ids(fold: Path, split: str, n: int, drop_zero_video: bool) -> list[str]:
    """The utterance id of each kept row (a prepared fold's ``manifest.json``), else row
    numbers."""
    rows = np.arange(n)
    video = split_file(fold, split, "video_seqN")
    if drop_zero_video and video.is_file():
        rows = np.flatnonzero(np.load(video, allow_pickle=False) > 0)
    try:
        names = json.loads((fold / FOLD_MANIFEST).read_text())[split]
    except (OSError, ValueError, KeyError, TypeError):
        names = None
    if not isinstance(names, list) or len(rows) != n or (len(rows) and rows[-1] >= len(names)):
        return [f"{split}:{int(r)}" for r in rows[:n]]
    return [str(names[int(r)]) for r in rows]


def write_predictions(predictions: Predictions, out: Path) -> Path:
    """``.json``: every row with its logits; otherwise CSV: id, predicted, modalities, label
    (a fold's split) and one probability column per class."""
    out = Path(out)
    rows = predictions.rows()
    if out.suffix.lower() == ".json":
        return write_json_atomic(out, {"predictions": rows, "notes": list(predictions.notes)})
    out.parent.mkdir(parents=True, exist_ok=True)
    names = predictions.class_names
    labelled = predictions.labels is not None
    with atomic.atomic_file(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "predicted", "modalities", *(["label"] * labelled),
                         *(f"p_{n}" for n in names)])  # fmt: skip
        for row in rows:
            writer.writerow([row["id"], row["predicted"], row["modalities"],
                             *([row["label"]] * labelled),
                             *(f"{row['probabilities'][n]:.6f}" for n in names)])  # fmt: skip
    return out


def format_table(predictions: Predictions, limit: int = 20) -> str:
    """A short table: id, predicted class and its probability, the runner-up."""
    rows = predictions.rows()
    width = max([len("utterance"), *(len(r["id"]) for r in rows[:limit])])
    lines = [f"{'utterance':<{width}}  {'predicted':<12} {'p':>6}  next"]
    for row in rows[:limit]:
        ranked = sorted(row["probabilities"].items(), key=lambda kv: -kv[1])
        runner = f"{ranked[1][0]} {ranked[1][1]:.3f}" if len(ranked) > 1 else ""
        lines.append(f"{row['id']:<{width}}  {ranked[0][0]:<12} {ranked[0][1]:6.3f}  {runner}")
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more")
    if predictions.labels is not None:
        hits = np.argmax(predictions.logits, axis=1) == predictions.labels
        lines.append(f"accuracy {hits.mean():.4f} over {len(hits)} utterances")
    return "\n".join(lines)
