"""``features=pretrained`` in a preparation: the encoders the settings name, their cache keys,
the text features, and the feature set's identity (docs/features.md).

The encoders themselves (:mod:`selfcross.prepare.encoders`) know no settings or cache; this
module connects them to the shared steps. A modality without an encoder keeps the paper's
features, computed exactly as with ``features=paper``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from selfcross.prepare.audio import AudioSettings
from selfcross.prepare.cache import cache_folder, entry_path, load_entry, save_npz_atomic
from selfcross.prepare.extract import WaveSettings
from selfcross.prepare.resnet import FEATURE_DIM
from selfcross.prepare.settings import PrepareSettings

CACHE_NAME = "features"
"""The array name of a pretrained encoder's features in a cache entry (MFCC: ``mfcc``)."""
FORMAT = 1
"""Bumped when the same encoder and settings would give other features (names the caches)."""


@dataclass
class Encoders:
    """The loaded pretrained encoders of one preparation (absent: the paper's features)."""

    audio: object | None = None
    text: object | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def audio_input(self, settings: PrepareSettings) -> AudioSettings | WaveSettings:
        """What the workers compute: MFCCs, or the samples the speech encoder needs."""
        from selfcross.prepare.encoders import SAMPLE_RATE

        if self.audio is None:
            return settings.audio
        return WaveSettings(SAMPLE_RATE, self.audio.max_samples(settings.audio_frames))

    def audio_key(self, settings: PrepareSettings) -> dict:
        """What names the audio cache: the MFCC settings, or the encoder's identity and cap."""
        if self.audio is None:
            return settings.audio.key()
        return {"kind": "pretrained", "format": FORMAT, **self.audio.identity(),
                "max_frames": settings.audio_frames, "dtype": settings.dtype}  # fmt: skip


def load_encoders(settings: PrepareSettings) -> tuple[PrepareSettings, Encoders]:
    """The audio and text encoders the settings name (vision: ``steps.load_frame_encoder``),
    and the settings with their widths (``settings.shapes`` then gives the fold shapes)."""
    from selfcross.prepare.encoders import load_audio_encoder, load_text_encoder

    encoders = Encoders()
    widths = dict(settings.widths)
    if "A" in settings.encoders:
        a = settings.encoders["A"]
        encoders.audio = load_audio_encoder(a.folder, a.layer, a.device, a.batch_size)
        widths["A"] = encoders.audio.width
    if "T" in settings.encoders:
        t = settings.encoders["T"]
        encoders.text = load_text_encoder(t.folder, t.layer, t.device, t.batch_size)
        widths["T"] = encoders.text.width
    return dataclasses.replace(settings, widths=widths), encoders


def text_folder(settings: PrepareSettings, encoders: Encoders) -> Path:
    key = {"kind": "pretrained", "format": FORMAT, **encoders.text.identity(),
           "max_tokens": settings.text_tokens, "dtype": settings.dtype}  # fmt: skip
    return cache_folder(settings.cache, "text", key)


def text_features(corpus, settings: PrepareSettings, encoders: Encoders, folder: Path,
                  progress=None) -> tuple[int, int]:  # fmt: skip
    """Encode every utterance's transcript not cached yet under ``folder``, batch by batch;
    returns (computed, reused)."""
    todo = [u for u in corpus.utterances if load_entry(entry_path(folder, u.id), CACHE_NAME)
            is None]  # fmt: skip
    size = encoders.text.batch_size
    started = time.perf_counter()
    for start in range(0, len(todo), size):
        batch = todo[start : start + size]
        features = encoders.text([u.text for u in batch], settings.text_tokens)
        for utt, array in zip(batch, features, strict=True):
            array = array.astype(settings.dtype)
            save_npz_atomic(entry_path(folder, utt.id), **{CACHE_NAME: array})
        if progress is not None:
            progress(len(batch))
    encoders.seconds["text"] = time.perf_counter() - started
    return len(todo), len(corpus.utterances) - len(todo)


def paper_identity(settings: PrepareSettings, video_key: dict) -> dict:
    """The paper's feature set of each modality, in the form of :func:`identity`."""
    audio = settings.audio
    return {
        "A": {"encoder": f"mfcc{audio.n_mfcc}", "weights": None, "layer": None,
              "width": audio.feat_dim, "rate": 1000 / audio.hop_ms},
        "T": {"encoder": "glove", "weights": None, "layer": None, "width": settings.text.dim,
              "rate": None},
        "V": {"encoder": "resnet101", "weights": video_key.get("weights"), "layer": None,
              "width": FEATURE_DIM, "rate": None},
    }  # fmt: skip


def identity(settings: PrepareSettings, encoders: Encoders, frame_encoder, video_key: dict):
    """Per modality letter: encoder name, weights digest, layer, width and frame rate (the
    feature set; dataset choices such as the speaker region are not part of it)."""
    out = paper_identity(settings, video_key)
    for letter, encoder in (("A", encoders.audio), ("T", encoders.text)):
        if encoder is not None:
            out[letter] = encoder.identity()
    if "V" in settings.encoders:
        out["V"] = frame_encoder.identity()
    return out
