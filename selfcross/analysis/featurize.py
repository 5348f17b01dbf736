"""New clips turned into a trained model's inputs by the code that prepared its data.

Each modality's features come from the extractor registered for the feature kind the run's
data were prepared with (the root manifest's ``features.<section>.kind``; ``mfcc``, ``glove`` and
``resnet101`` when absent, the kinds every preparation so far wrote), built from the recorded
settings: :mod:`selfcross.prepare.audio` (MFCCs), :mod:`selfcross.prepare.text` (tokens, GloVe
rows, out-of-vocabulary vectors), :mod:`selfcross.prepare.video` and
:mod:`selfcross.prepare.resnet` (frames, ResNet-101). A feature kind or a setting this code does
not know is refused, never guessed: a new feature set plugs in as one more entry of
:data:`EXTRACTORS`. Rows are then cut or zero-padded to the training lengths as preparation
does (:func:`selfcross.prepare.writer.pad_rows`), and audio is standardised with the run's train
statistics (:func:`selfcross.data.preprocess.standardize_rows`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from selfcross.data.inputs import embedding_digest
from selfcross.data.npy import EMBEDDING_FILE
from selfcross.data.preprocess import standardize_rows
from selfcross.errors import DataError

SECTIONS = {"T": "text", "V": "vision", "A": "audio"}
NAMES = {"T": "text", "V": "video", "A": "audio"}
DEFAULT_KIND = {"text": "glove", "vision": "resnet101", "audio": "mfcc"}
SETTINGS_FILE = "dataset.json"


@dataclass
class Clip:
    id: str
    path: Path | None = None
    text: str | None = None
    start: float | None = None
    end: float | None = None
    side: str | None = None
    """``left`` or ``right``: the speaker's half of the picture (``vision.region=speaker``)."""


def warn(message: str, notes: list[str]) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
    notes.append(message)


def _settings(cls, section: dict, name: str, extra: tuple[str, ...] = ()):
    """``cls`` built from a recorded settings section; a key it does not know is refused."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(section) - known - {"kind", *extra})
    if unknown:
        raise DataError(
            SETTINGS_FILE,
            f"features.{name}: unknown settings {', '.join(unknown)}: this selfcross cannot "
            "reproduce these features",
        )
    return cls(**{k: v for k, v in section.items() if k in known})


class MfccAudio:
    """40 MFCC + deltas of the clip's audio (a wav/flac file or a video's audio track)."""

    def __init__(self, section: dict, model, resources):
        from selfcross.prepare.audio import AudioSettings

        self.settings = _settings(AudioSettings, section, "audio")

    def __call__(self, clip: Clip, notes: list[str]) -> np.ndarray:
        from selfcross.prepare.audio import mfcc_features, read_clip_audio, read_wav
        from selfcross.prepare.extract import WAV_SUFFIXES, compute_audio

        if clip.start is None and clip.end is None:
            return compute_audio(clip.path, self.settings)
        rate = self.settings.sample_rate
        read = read_wav if clip.path.suffix.lower() in WAV_SUFFIXES else read_clip_audio
        samples = read(clip.path, rate)
        start = round((clip.start or 0.0) * rate)
        end = len(samples) if clip.end is None else round(clip.end * rate)
        if end <= start or start >= len(samples):
            raise DataError(clip.path, f"start={clip.start}, end={clip.end}: no audio in between")
        return mfcc_features(samples[start:end], self.settings)


class ResNetVision:
    """ResNet-101 features of frames sampled as preparation did (fps, region, crop)."""

    def __init__(self, section: dict, model, resources):
        import torch

        from selfcross.prepare.resnet import FrameEncoder, file_digest, load_resnet101
        from selfcross.prepare.video import FrameSettings

        self.settings = _settings(FrameSettings, section, "vision", ("weights",))
        key = str(section.get("weights", ""))
        if key.startswith("random-"):
            warn(f"the run's frames were encoded by a ResNet-101 with RANDOM weights ({key}): "
                 "its video features carry no visual content", resources.notes)  # fmt: skip
            network = load_resnet101(None, int(key.removeprefix("random-")))
        else:
            if resources.resnet is None:
                raise DataError(
                    "resnet", f"the run's video features come from ResNet-101 weights {key} "
                    "(SHA-256 prefix): pass them (resnet=/path/to/resnet101-*.pth)",
                )  # fmt: skip
            found = file_digest(resources.resnet)
            if found != key:
                raise DataError(resources.resnet, f"SHA-256 prefix {found}, but the run's "
                                f"frames were encoded with weights {key}")  # fmt: skip
            network = load_resnet101(resources.resnet)
        self.encoder = FrameEncoder(network, torch.device("cpu"))

    def __call__(self, clip: Clip, notes: list[str]) -> np.ndarray:
        from selfcross.prepare.video import SIDES, WHOLE, sample_times, video_frames

        side = WHOLE if self.settings.region == WHOLE else clip.side
        if side not in (WHOLE, *SIDES):
            raise DataError(clip.path, "the run's frames show the speaker's half of the picture "
                            "(vision.region=speaker): give the side (left or right)")  # fmt: skip
        start = clip.start or 0.0
        end = clip_seconds(clip.path) if clip.end is None else clip.end
        times = sample_times(start, end, self.settings.fps)
        (crops,) = video_frames(clip.path, [(times, side)], self.settings)
        if len(crops) == 0:
            raise DataError(clip.path, "no video frame could be decoded")
        return self.encoder(crops)


def clip_seconds(path: Path) -> float:
    """A video file's duration, from its container."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(path, "holds no video stream")
            if container.duration:
                return container.duration / av.time_base
            stream = container.streams.video[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise DataError(path, f"cannot be opened as video ({err})") from None
    raise DataError(path, "its duration is unknown: give end=")


class GloveText:
    """Tokens as preparation made them; each token's vector is the fold's row for a word of the
    run's vocabulary, else GloVe's (``glove=``), else preparation's out-of-vocabulary vector."""

    def __init__(self, section: dict, model, resources):
        from selfcross.prepare.text import TextSettings

        self.settings = _settings(TextSettings, section, "text")
        self.resources = resources
        self.inputs = model.inputs
        self.index = {t: i for i, t in enumerate(model.inputs.vocabulary or [])}
        self.rows = None  # the fold's word vectors, when the run's fold is at hand
        fold = model.fold_path
        if fold is not None and (fold / EMBEDDING_FILE).is_file() and self.index:
            rows = np.load(fold / EMBEDDING_FILE, allow_pickle=False)
            if embedding_digest(rows) == model.inputs.embedding_sha256:
                self.rows = rows
        self.glove_rows: dict = {}

    def tokens(self, clip: Clip) -> list[str]:
        from selfcross.prepare.text import tokenize

        tokens = tokenize(clip.text or "", self.settings.drop_markers)
        if not tokens:
            raise DataError(clip.id, "empty transcript: the run uses text (T)")
        return tokens

    def prepare(self, clips: list[Clip]) -> None:
        """One pass over the GloVe file for every new word (and the vocabulary's check)."""
        new = {
            t for c in clips for t in self.tokens(c) if t not in self.index or self.rows is None
        }
        glove = self.resources.glove
        if glove is None:
            if self.rows is None:
                raise DataError("glove", "the word vectors are needed for the transcripts: pass "
                                "glove=/path/to/glove.840B.300d.txt")  # fmt: skip
            if new:
                shown = ", ".join(sorted(new)[:8])
                warn(f"words not in the run's vocabulary get out-of-vocabulary vectors ({shown}):"
                     " pass glove= for their word vectors", self.resources.notes)  # fmt: skip
            return
        from selfcross.prepare.text import check_glove, read_glove_rows

        check_glove(glove, self.settings.dim)
        vocab = list(self.index)[1:]
        self.glove_rows = read_glove_rows(glove, set(vocab) | new, self.settings.dim)
        if self.index:
            rebuilt = np.zeros((len(self.index), self.settings.dim), np.float32)
            for i, token in enumerate(vocab, start=1):
                rebuilt[i] = self._vector(token)
            if embedding_digest(rebuilt) != self.inputs.embedding_sha256:
                raise DataError(glove, "its vectors are not those the run was trained with (the "
                                "vocabulary's rows differ from the recorded SHA-256)")  # fmt: skip

    def _vector(self, token: str) -> np.ndarray:
        from selfcross.prepare.text import oov_vector

        if token in self.glove_rows:
            return self.glove_rows[token][1]
        return oov_vector(token, self.settings)

    def __call__(self, clip: Clip, notes: list[str]) -> np.ndarray:
        out = np.zeros((len(tokens := self.tokens(clip)), self.settings.dim), np.float32)
        oov = []
        for k, token in enumerate(tokens):
            if self.rows is not None and token in self.index:
                out[k] = self.rows[self.index[token]]
            else:
                out[k] = self._vector(token)
                if token not in self.glove_rows:
                    oov.append(token)
        if oov:
            notes.append(f"{clip.id}: out of vocabulary: {' '.join(dict.fromkeys(oov))}")
        return out


EXTRACTORS = {
    ("audio", "mfcc"): MfccAudio,
    ("vision", "resnet101"): ResNetVision,
    ("text", "glove"): GloveText,
}
"""(settings section, feature kind) -> extractor: ``extractor(section, model, resources)`` is
called with the recorded settings, and then once per clip (``prepare(clips)`` first, if it has
one) to give the clip's unpadded [frames, feat_dim] float32 features."""


@dataclass
class Resources:
    glove: Path | None = None
    resnet: Path | None = None
    notes: list[str] = field(default_factory=list)


class Featurizer:
    """The extractors of a model's modalities, from its recorded feature settings."""

    def __init__(self, model, resources: Resources):
        inputs = model.inputs
        if inputs.features is None:
            raise DataError(
                model.path,
                "its data were not prepared by selfcross (no feature settings in the root's "
                "dataset.json): clips cannot be turned into its features; pass processed arrays",
            )
        self.model, self.resources = model, resources
        self.extractors = {}
        for m in inputs.modalities:
            section = inputs.features.get(SECTIONS[m])
            if not isinstance(section, dict):
                raise DataError(SETTINGS_FILE, f"features.{SECTIONS[m]}: no settings recorded")
            kind = str(section.get("kind", DEFAULT_KIND[SECTIONS[m]]))
            extractor = EXTRACTORS.get((SECTIONS[m], kind))
            if extractor is None:
                known = ", ".join(k for s, k in EXTRACTORS if s == SECTIONS[m])
                raise DataError(SETTINGS_FILE, f"features.{SECTIONS[m]}.kind={kind}: this "
                                f"selfcross computes only {known} for new clips")  # fmt: skip
            self.extractors[m] = extractor(section, model, resources)

    def __call__(self, clips: list[Clip]) -> tuple[dict, dict]:
        """({m: [N, T, D] float32}, {m: [N] int64 valid lengths}) of ``clips``."""
        from selfcross.prepare.writer import pad_rows

        inputs, notes = self.model.inputs, self.resources.notes
        for extractor in self.extractors.values():
            if hasattr(extractor, "prepare"):
                extractor.prepare(clips)
        arrays, lengths = {}, {}
        for m, extractor in self.extractors.items():
            seq_len, dim = inputs.shapes[m]["seq_len"], inputs.shapes[m]["feat_dim"]
            rows, valid = [], []
            for clip in clips:
                features = extractor(clip, notes)
                if features.ndim != 2 or features.shape[1] != dim:
                    raise DataError(clip.id, f"{NAMES[m]} features of shape {features.shape}, "
                                    f"the run reads {dim} per frame")  # fmt: skip
                if len(features) > seq_len:
                    warn(f"{clip.id}: {len(features)} {NAMES[m]} frames cut to the run's "
                         f"{seq_len}, as preparation does", notes)  # fmt: skip
                padded, n = pad_rows(features, seq_len)
                rows.append(padded)
                valid.append(n)
            arrays[m] = np.stack(rows).astype(np.float32)
            lengths[m] = np.asarray(valid, np.int64)
        if "A" in arrays and inputs.audio_mean is not None:
            standardize_rows(arrays["A"], lengths["A"], inputs.audio_mean, inputs.audio_std,
                             inputs.audio_standardize)  # fmt: skip
        return arrays, lengths
