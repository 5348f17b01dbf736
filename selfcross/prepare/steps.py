"""The steps every dataset's preparation shares: the frame encoder, the text, each utterance's
fold rows, the disk-space check, the written folds' check and the summary's common part.

A dataset's preparation (:mod:`selfcross.prepare.iemocap`, :mod:`selfcross.prepare.meld`) reads
its release and calls these in turn; this module knows no dataset.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

import selfcross
from selfcross.errors import DataError
from selfcross.manifest import FoldsManifest, write_manifest
from selfcross.prepare.audio import PROSODY_DIM
from selfcross.prepare.cache import entry_path, load_entry
from selfcross.prepare.pretrained import Encoders, load_encoders, text_features, text_folder
from selfcross.prepare.settings import PrepareSettings
from selfcross.prepare.text import (
    Embedding,
    Vocabulary,
    build_embedding,
    check_glove,
    tokenize,
)
from selfcross.prepare.writer import check_output, pad_rows
from selfcross.utils.io import git_commit, write_json_atomic

SUMMARY_FILE = "prepare.json"
UTTERANCES_FILE = "utterances.json"


def warn(message: str, sink: list[str] | None = None) -> None:
    """One warning line on stderr (and kept for prepare.json)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
    if sink is not None:
        sink.append(message)


def per_100(seconds: float, n: int) -> str:
    return f"{100 * seconds / n:.1f} s per 100 utterances" if n else "nothing computed"


def progress_bar(settings: PrepareSettings, **kwargs):
    from tqdm import tqdm

    return tqdm(disable=not settings.progress, dynamic_ncols=True, leave=False, **kwargs)


def check_out_dir(settings: PrepareSettings) -> None:
    if settings.out.exists() and not settings.out.is_dir():
        raise DataError(settings.out, "exists and is not a directory")


def load_frame_encoder(settings: PrepareSettings, warnings: list[str]):
    """The ResNet-101 (or the pretrained vision encoder) on its device, and the key naming its
    video features in the cache."""
    from selfcross.prepare.resnet import FrameEncoder, file_digest, load_resnet101, pick_device

    if "V" in settings.encoders:
        from selfcross.prepare.encoders import load_vision_encoder

        v = settings.encoders["V"]
        encoder = load_vision_encoder(v.folder, v.device, v.batch_size)
        key = {"kind": "pretrained", **encoder.identity(), "dtype": settings.dtype}
        return encoder, {**key, **settings.frames.key()}
    device = pick_device(settings.device)
    if settings.weights is None:
        warn(
            "vision.random_weights=true: ResNet-101 has RANDOM weights, the video features "
            "carry no visual content (use only for tests)",
            warnings,
        )
        model, weights_key = load_resnet101(None, settings.seed), f"random-{settings.seed}"
    else:
        model = load_resnet101(settings.weights)
        weights_key = file_digest(settings.weights)
    encoder = FrameEncoder(model, device, settings.batch_size, settings.cpu_threads)
    return encoder, {"weights": weights_key, **settings.frames.key()}


def frame_name(settings: PrepareSettings) -> str:
    """The frame encoder's name, as progress lines show it."""
    v = settings.encoders.get("V")
    return "ResNet-101" if v is None else Path(v.folder).name


def load_inputs(settings: PrepareSettings, warnings: list[str]):
    """Every encoder and file the features need, checked before the long work: the settings
    with the pretrained encoders' widths, the pretrained audio and text encoders
    (:class:`~selfcross.prepare.pretrained.Encoders`), the frame encoder and its cache key,
    and the GloVe file (None with a text encoder)."""
    settings, encoders = load_encoders(settings)
    glove = None if "T" in settings.encoders else check_glove(settings.glove, settings.text.dim)
    frame_encoder, video_key = load_frame_encoder(settings, warnings)
    if "V" in settings.encoders:
        settings = replace(settings, widths={**settings.widths, "V": frame_encoder.width})
    return settings, encoders, frame_encoder, video_key, glove


def text_inputs(corpus, settings: PrepareSettings, encoders: Encoders, glove: Path | None):
    """The text of every utterance: (tokens, vocabulary, GloVe rows, None) for the paper's
    features, (None, None, None, cache folder) for a pretrained text encoder."""
    if encoders.text is None:
        return (*prepare_text(corpus, settings, glove), None)
    folder = text_folder(settings, encoders)
    with progress_bar(settings, desc="text", total=len(corpus.utterances), unit="utt") as bar:
        computed, reused = text_features(corpus, settings, encoders, folder, bar.update)
    print(f"Text: {encoders.text.folder.name} features of {computed:,} utterances computed, "
          f"{reused:,} reused from the cache")  # fmt: skip
    return None, None, None, folder


class FoldRows:
    """Utterance i's row of every fold file, from the caches, padded or cut to the shapes.

    ``corpus`` holds ``utterances`` (each with ``id`` and ``dialog``) and ``class_id()``;
    ``no_video``: the dialogs without a video (their rows get zero video features)."""

    def __init__(self, corpus, settings, tokens, vocab, audio_folder, video_folder, no_video,
                 text_folder: Path | None = None):  # fmt: skip
        self.corpus, self.settings, self.tokens, self.vocab = corpus, settings, tokens, vocab
        self.audio_folder, self.video_folder, self.no_video = audio_folder, video_folder, no_video
        self.text_folder = text_folder
        """A pretrained text encoder's cache (``{split}_text.npy`` instead of token ids)."""
        self.labels = np.array([corpus.class_id(u) for u in corpus.utterances], dtype=np.int64)
        self.lengths: dict[int, dict[str, int]] = {}
        """Unpadded lengths of the rows read so far: audio frames, video frames, tokens."""

    def __call__(self, i: int) -> dict[str, np.ndarray]:
        utt, settings = self.corpus.utterances[i], self.settings
        name = "features" if "A" in settings.encoders else "mfcc"
        mfcc = _cached(entry_path(self.audio_folder, utt.id), name)
        video = np.zeros((0, settings.shapes["V"]["feat_dim"]), np.float32)
        if utt.dialog not in self.no_video:
            video = _cached(entry_path(self.video_folder, utt.id), "video")
        if self.text_folder is not None:
            text = _cached(entry_path(self.text_folder, utt.id), "features")
        self.lengths[i] = {
            "audio": len(mfcc),
            "video": len(video),
            "tokens": len(text) if self.text_folder is not None else len(self.tokens[i]),
        }
        audio_rows, audio_len = pad_rows(mfcc, settings.audio_frames)
        video_rows, video_len = pad_rows(video, settings.video_frames)
        row = {
            "audio_mfcc": audio_rows,
            "audio_seqN": np.int64(audio_len),
            "audio_prosody": np.zeros(PROSODY_DIM, np.float32),
            "video": video_rows,
            "video_seqN": np.int64(video_len),
            "label": self.labels[i],
        }
        if self.text_folder is not None:
            row["text"] = pad_rows(text, settings.text_tokens)[0]
        else:
            row["nlp_trans"] = self.vocab.ids(self.tokens[i], settings.text_tokens)
        return row


def _cached(path: Path, name: str) -> np.ndarray:
    array = load_entry(path, name)
    if array is None:
        raise DataError(path, "cached features are missing or unreadable: delete it and rerun")
    return array


def check_disk_space(out: Path, partitions: dict, layout: dict) -> int:
    """Bytes the folds need; stop before writing when the disk cannot hold them."""
    row = sum(int(np.prod(shape, dtype=np.int64)) * np.dtype(t).itemsize for shape, t in
              layout.values())  # fmt: skip
    needed = row * sum(len(ids) for parts in partitions.values() for ids in parts.values())
    free = shutil.disk_usage(out).free
    if needed > free:
        raise DataError(
            out, f"the folds need {needed / 1e9:.1f} GB but only {free / 1e9:.1f} GB are free"
        )
    return needed


def prepare_text(corpus, settings: PrepareSettings, glove: Path):
    """Tokens per utterance (``corpus.utterances``, each with ``text``), the vocabulary and its
    GloVe rows."""
    tokens = [tokenize(u.text, settings.text.drop_markers) for u in corpus.utterances]
    vocab = Vocabulary.build(tokens)
    size = glove.stat().st_size
    with progress_bar(settings, desc="GloVe", total=size, unit="B", unit_scale=True) as bar:
        embedding, reused = build_embedding(
            vocab, glove, settings.text, settings.cache, bar.update
        )
    print(
        f"Text: vocabulary of {len(vocab) - 1:,} tokens (+ padding), {len(embedding.oov):,} not "
        f"in GloVe ({settings.text.oov} vectors){' [GloVe rows reused from the cache]' * reused}"
    )
    return tokens, vocab, embedding


def vocab_json(vocab: Vocabulary | None, embedding: Embedding | None) -> dict | None:
    """The vocabulary file of each fold (in place of the original's pickled dic.pkl); None for
    a pretrained text encoder (no token ids)."""
    if vocab is None:
        return None
    return {
        "pad_id": 0,
        "tokens": vocab.tokens,
        "counts": vocab.counts,
        "glove_token": embedding.source,
    }


def warn_no_prosody(warnings: list[str]) -> None:
    warn(
        f"prosody features are not computed: {{split}}_audio_prosody.npy holds zeros [N, "
        f"{PROSODY_DIM}] (the paper's models do not use them)",
        warnings,
    )


def write_utterances(utterances: list[dict], settings: PrepareSettings) -> None:
    """``utterances.json``, and how many utterances were cut to the shapes."""
    write_json_atomic(settings.out / UTTERANCES_FILE, utterances)
    for key, limit, option in (
        ("n_audio", settings.audio_frames, "audio.max_frames"),
        ("n_video", settings.video_frames, "vision.max_frames"),
        ("n_tokens", settings.text_tokens, "text.max_tokens"),
    ):
        cut = sum(u[key] > limit for u in utterances)
        if cut:
            print(f"{cut:,} utterances are longer than {option}={limit} and were cut")


def final_check(fold_dirs: list[Path], settings: PrepareSettings) -> list[dict]:
    """``selfcross.check`` over the written folds, as training reads them (check=false skips)."""
    if not settings.check:
        return []
    folds = [int(d.name.removeprefix("fold")) for d in fold_dirs]
    published = dict(zip(settings.class_names, settings.class_counts, strict=False))
    return check_output(settings.out, folds, settings.shapes, list(settings.class_names),
                        published)  # fmt: skip


def write_folds_manifest(settings: PrepareSettings, features: dict,
                         feature_set: dict | None = None) -> None:  # fmt: skip
    """``<out>/dataset.json``: the folds' number, class names, shapes, split and ``features``
    (the feature settings, beside the frame encoder's cache key; with ``feature_set``, the
    identity of each modality's features under ``features.set``, docs/features.md)."""
    shapes = {m: {k: v for k, v in s.items() if k in ("seq_len", "feat_dim")}
              for m, s in settings.shapes.items()}  # fmt: skip
    settings_now = settings_json(settings)
    manifest = FoldsManifest(
        dataset=settings.dataset,
        n_folds=settings.n_folds,
        class_names=tuple(settings.class_names),
        shapes=shapes,
        split=settings.split,
        features={
            "audio": settings_now["audio"],
            "text": settings_now["text"],
            "vision": {**settings_now["frames"], **features},
            **({"set": feature_set} if feature_set is not None else {}),
        },
    )
    write_manifest(settings.out, manifest)


def provenance() -> dict:
    """The summary's first keys: what wrote the folds, with which settings."""
    return {
        "version": selfcross.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
    }


def settings_json(settings: PrepareSettings) -> dict:
    return json.loads(json.dumps(asdict(settings), default=str))
