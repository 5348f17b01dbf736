"""A tiny fake IEMOCAP release (labels, transcripts, wavs, AVI videos) and GloVe file."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfcross.data.npy import SPLITS
from tests.helpers import releasekit
from tests.helpers.releasekit import GLOVE_DIM, VIDEO_FPS, fast_options, fold_shapes

SAMPLE_RATE = 16000
VIDEO_SIZE = (64, 48)  # width, height: halves of 32 x 48
AUDIO_FRAMES = 150

# Per dialog, the label of each utterance in turn; every class in most dialogs, some dropped.
DIALOG_LABELS = (
    ("ang", "exc", "hap", "sad", "xxx", "fru", "sur", "neu"),
    ("neu", "fru", "fea", "ang", "exc", "hap", "sad"),
    ("sad", "hap", "exc", "ang", "oth", "neu", "fru", "sur"),
    ("fru", "neu", "xxx", "sur", "sad", "hap", "exc", "ang"),
)
SENTENCES = (
    "Hello, I don't know what you mean.",
    "Why are you so angry... [LAUGHTER] tell me!",
    "This is great news, I'm so happy for you.",
    "zorblax is not a word; neither is quixotl.",
    "Well -- okay. Fine.",
)
GLOVE_WORDS = (
    ",", ".", "i", "do", "n't", "know", "what", "you", "mean", "why", "are", "so", "angry",
    "...", "[", "laughter", "]", "tell", "me", "!", "this", "is", "great", "news", "'m", "happy",
    "for", "not", "a", "word", ";", "neither", "--", "okay", "fine", "well",
)  # fmt: skip
GLOVE_CASED_ONLY = ("Hello",)  # only the cased form is in the file: found case-insensitively
GLOVE_OOV = ("zorblax", "quixotl")


@dataclass
class FakeUtterance:
    id: str
    session: int
    dialog: str
    start: float
    end: float
    label: str
    text: str
    wav: Path


@dataclass
class FakeRelease:
    root: Path
    glove: Path
    utterances: list[FakeUtterance]
    dropped: Counter = field(default_factory=Counter)
    no_video: tuple[str, ...] = ()

    @property
    def kept(self) -> list[FakeUtterance]:
        return [u for u in self.utterances if u.label not in ("xxx", "fea", "oth", "dis")]

    def by_id(self, utt_id: str) -> FakeUtterance:
        return next(u for u in self.utterances if u.id == utt_id)


def dialog_names(session: int) -> tuple[str, str]:
    return f"Ses0{session}F_impro0{session}", f"Ses0{session}M_script0{session}_1"


def write_wav(path: Path, seconds: float, rng: np.random.Generator) -> None:
    import soundfile

    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * rng.uniform(120, 400) * t)
    noise = 0.05 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, (tone + noise).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def write_video(path: Path, n_frames: int, fps: int = VIDEO_FPS, size=VIDEO_SIZE, level=None):
    """An MPEG-4 AVI whose frame i is flat grey: ``level(i)`` = (left, right) halves."""
    import av

    level = level or (lambda i: ((8 * i) % 256, 255 - (8 * i) % 256))
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n_frames):
            image = np.empty((height, width, 3), np.uint8)
            left, right = level(i)
            image[:, : width // 2] = left
            image[:, width // 2 :] = right
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_glove(path: Path, dim: int = GLOVE_DIM, seed: int = 0) -> dict[str, np.ndarray]:
    """A GloVe text file; returns its vectors by token (a token with spaces included)."""
    return releasekit.write_glove(path, (*GLOVE_WORDS, *GLOVE_CASED_ONLY, ". . ."), dim, seed)


def make_release(root: Path, sessions=(1, 2), seed: int = 0) -> FakeRelease:
    """Two dialogs per session; the second dialog of the last session has no video."""
    rng = np.random.default_rng(seed)
    release = FakeRelease(root=root / "IEMOCAP_full_release", glove=root / "glove.txt",
                          utterances=[])  # fmt: skip
    write_glove(release.glove)
    no_video = []
    for s_index, session in enumerate(sessions):
        base = release.root / f"Session{session}"
        for d_index, dialog in enumerate(dialog_names(session)):
            labels = DIALOG_LABELS[(2 * s_index + d_index) % len(DIALOG_LABELS)]
            label_lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            transcript_lines = []
            t = 0.4
            for k, label in enumerate(labels):
                speaker = "FM"[k % 2]
                utt_id = f"{dialog}_{speaker}{k:03d}"
                duration = float(np.round(rng.uniform(0.6, 1.6), 4))
                start, end = t, t + duration
                text = SENTENCES[(k + d_index) % len(SENTENCES)]
                wav = base / "sentences" / "wav" / dialog / f"{utt_id}.wav"
                write_wav(wav, duration, rng)
                label_lines += [
                    f"[{start:.4f} - {end:.4f}]\t{utt_id}\t{label}\t[2.5000, 3.0000, 2.5000]",
                    "C-E1:\tNeutral;\t()",
                    "A-E1:\tval 3; act 2; dom  2;\t()",
                    "",
                ]
                transcript_lines.append(f"{utt_id} [{start:08.4f}-{end:08.4f}]: {text}")
                if label in ("xxx", "fea", "oth", "dis"):
                    release.dropped[label] += 1
                release.utterances.append(
                    FakeUtterance(utt_id, session, dialog, start, end, label, text, wav)
                )
                t = end + 0.3
            transcript_lines.insert(1, "M: sil [noise]")  # a line that is no utterance
            (base / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
            (base / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text(
                "\n".join(label_lines) + "\n"
            )
            (base / "dialog" / "EmoEvaluation" / f"._{dialog}.txt").write_bytes(b"\x00\x05")
            (base / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
            (base / "dialog" / "transcriptions" / f"{dialog}.txt").write_text(
                "\n".join(transcript_lines) + "\n"
            )
            if s_index == len(sessions) - 1 and d_index == 1:
                no_video.append(dialog)
            else:
                video = base / "dialog" / "avi" / "DivX" / f"{dialog}.avi"
                write_video(video, int((t + 0.5) * VIDEO_FPS))
    release.no_video = tuple(no_video)
    return release


def overrides(release: FakeRelease, out: Path, *extra: str) -> list[str]:
    """The options of a fast preparation of the fake release (small shapes, random ResNet)."""
    fast = fast_options(release.root, release.glove, out, AUDIO_FRAMES)
    return [*fast, "sessions=[1,2]", *extra]


SHAPES = fold_shapes(AUDIO_FRAMES)


CLASS_WORDS = {"ang": "angry", "exc": "excited", "hap": "happy", "sad": "sad",
               "fru": "frustrated", "sur": "surprise", "neu": "neutral"}  # fmt: skip
"""The word a class-carrying transcript repeats (each in the tiny text encoders' vocabulary)."""


def carry_the_class(release: FakeRelease, seed: int = 0) -> FakeRelease:
    """Rewrite a fake release so that its audio and transcripts carry the class: each kept
    utterance's wav is a tone at its class's pitch (with noise) and its transcript names the
    class (the generated release mostly carries none)."""
    import soundfile

    rng = np.random.default_rng(seed)
    pitch = {label: 140.0 * 1.4**k for k, label in enumerate(CLASS_WORDS)}
    transcripts: dict[Path, list[str]] = {}
    for utt in release.utterances:
        word = CLASS_WORDS.get(utt.label, "well")
        utt.text = f"oh {word} , {word} {word} ."
        t = np.arange(int((utt.end - utt.start) * SAMPLE_RATE)) / SAMPLE_RATE
        tone = 0.4 * np.sin(2 * np.pi * pitch.get(utt.label, 300.0) * t)
        samples = tone + 0.02 * rng.standard_normal(len(t))
        soundfile.write(utt.wav, samples.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        base = release.root / f"Session{utt.session}" / "dialog" / "transcriptions"
        transcripts.setdefault(base / f"{utt.dialog}.txt", []).append(
            f"{utt.id} [{utt.start:08.4f}-{utt.end:08.4f}]: {utt.text}"
        )
    for path, lines in transcripts.items():
        path.write_text("\n".join(lines) + "\n")
    return release


# The prepared folds as the IEMOCAP preparation tests read them (tests/prepare/conftest.py).
CLASSES = ["ang", "exc", "hap", "sad", "fru", "sur", "neu"]


def fold_stems(shapes: dict) -> dict[str, tuple]:
    """Each file stem of a prepared fold: (dtype, shape of one utterance) for ``shapes``."""
    return {
        "audio_mfcc": (np.float32, (shapes["A"]["seq_len"], 120)),
        "audio_seqN": (np.int64, ()),
        "audio_prosody": (np.float32, (35,)),
        "nlp_trans": (np.int64, (shapes["T"]["seq_len"],)),
        "video": (np.float32, (shapes["V"]["seq_len"], 2048)),
        "video_seqN": (np.int64, ()),
        "label": (np.int64, ()),
    }


STEMS = fold_stems(SHAPES)


def load(fold_dir, split, stem):
    return np.load(fold_dir / f"{split}_{stem}.npy", allow_pickle=False)


def manifest(fold_dir):
    return json.loads((fold_dir / "manifest.json").read_text())


def find_row(out, utt_id):
    """(fold01 directory, split, row) of an utterance, from the manifest."""
    fold = out / "fold01"
    for split in SPLITS:
        ids = manifest(fold)[split]
        if utt_id in ids:
            return fold, split, ids.index(utt_id)
    raise AssertionError(f"{utt_id} not in fold01")
