"""A tiny fake MELD release (MELD.Raw: three csv files, H.264 + AAC mp4 clips), with every mess
of the real one, and a GloVe file for it."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.helpers import releasekit
from tests.helpers.releasekit import GLOVE_DIM, VIDEO_FPS, fast_options, fold_shapes

CLASSES = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
AUDIO_FRAMES = 120
VIDEO_SIZE = (64, 36)  # width, height: 16 : 9 like the real clips
AUDIO_RATE = 48000
HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID",
          "Utterance_ID", "Season", "Episode", "StartTime", "EndTime"]  # fmt: skip
FOLDERS = {"train": "train_splits", "dev": "dev_splits_complete",
           "test": "output_repeated_splits_test"}  # fmt: skip

# Per split, per dialog, the labels of its utterances in turn.
DIALOGS = {
    "train": (
        ("neutral", "joy", "surprise", "anger"),
        ("sadness", "disgust", "fear", "neutral", "joy"),
        ("anger", "surprise", "neutral"),
        ("joy", "sadness", "fear", "disgust"),
    ),
    "dev": (("neutral", "anger", "joy"), ("sadness", "surprise", "fear", "disgust")),
    "test": (("joy", "neutral", "anger", "fear"), ("disgust", "sadness", "surprise")),
}
SENTENCES = (
    "I\u0092m fine\u0085 really.",  # cp1252 apostrophe and ellipsis read as Latin-1
    "Oh, \u201cno\u201d, you didn\u0092t!",  # curly quotes, a quoted comma in the csv
    "Wait, wait, wait \u2014 what?",
    "Okay.\nSee you later, Ross.",  # a line break inside a quoted field
    "Smelly cat, smelly cat...",
)
REPAIRED = {
    SENTENCES[0]: "I'm fine... really.",
    SENTENCES[1]: 'Oh, "no", you didn\'t!',
    SENTENCES[2]: "Wait, wait, wait -- what?",
    SENTENCES[3]: "Okay. See you later, Ross.",
    SENTENCES[4]: "Smelly cat, smelly cat...",
}
GLOVE_WORDS = (
    "i", "'m", "fine", "...", "really", ".", "oh", ",", '"', "no", "you", "did", "n't", "!",
    "wait", "--", "what", "?", "okay", "see", "later", "ross", "smelly", "cat",
)  # fmt: skip

# The messes: (split, dialog, utterance) -> what is wrong with its clip, and the reason logged.
MISSING = ("train", 1, 2)  # listed, no clip (the real release's train dia125_utt3)
EMPTY = ("train", 2, 0)  # a 0-byte clip
UNDECODABLE = ("dev", 0, 1)  # not a media file
NO_AUDIO = ("test", 1, 0)  # video only
NO_VIDEO = ("dev", 1, 3)  # audio only
CORRUPT = ("train", 3, 1)  # opens, but its packets are garbage: dropped during extraction
UNLISTED = ("train", 9, 9)  # a clip no csv lists
REASONS = {
    MISSING: "clip is missing",
    EMPTY: "clip is empty (0 bytes)",
    UNDECODABLE: "cannot be opened as video",
    NO_AUDIO: "holds no audio stream",
    NO_VIDEO: "holds no video stream",
    CORRUPT: "its audio cannot be decoded",
}


@dataclass
class FakeClip:
    split: str
    dialog: int
    utterance: int
    label: str
    text: str
    seconds: float
    clip: Path

    @property
    def id(self) -> str:
        return f"{self.split}-dia{self.dialog}_utt{self.utterance}"

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.split, self.dialog, self.utterance)


@dataclass
class FakeMeld:
    root: Path
    glove: Path
    clips: list[FakeClip] = field(default_factory=list)

    @property
    def kept(self) -> list[FakeClip]:
        return [c for c in self.clips if c.key not in REASONS]

    def counts(self, split: str) -> list[int]:
        """Kept utterances per class id of one split."""
        per = Counter(c.label for c in self.kept if c.split == split)
        return [per[c] for c in CLASSES]

    def by_id(self, utt_id: str) -> FakeClip:
        return next(c for c in self.clips if c.id == utt_id)


def write_clip(
    path: Path,
    seconds: float,
    seed: int,
    audio: bool = True,
    frames: bool = True,
    size: tuple[int, int] = VIDEO_SIZE,
):
    """An mp4 clip: H.264 video at VIDEO_FPS whose frame i is flat grey (level 10 * i), and an
    AAC stereo track at 48 kHz (a tone)."""
    import av

    rng = np.random.default_rng(seed)
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=VIDEO_FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        if frames:
            for i in range(int(round(seconds * VIDEO_FPS))):
                image = np.full((height, width, 3), (10 * i + 20) % 256, np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                for packet in video.encode(frame):
                    container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            n = int(seconds * AUDIO_RATE)
            t = np.arange(n) / AUDIO_RATE
            tone = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 400) * t)
            samples = np.stack([tone, 0.5 * tone]).astype(np.float32)
            for start in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, start : start + 1024]),
                    format="fltp",
                    layout="stereo",
                )
                frame.sample_rate, frame.pts = AUDIO_RATE, start
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)


def garble(path: Path, seed: int) -> None:
    """Overwrite the payload of the clip's ``mdat`` box with noise (headers stay readable)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"mdat")
    size = int.from_bytes(data[at - 4 : at], "big")
    noise = np.random.default_rng(seed).integers(0, 256, size - 8, dtype=np.uint8)
    data[at + 4 : at - 4 + size] = noise.tobytes()
    path.write_bytes(bytes(data))


def write_glove(path: Path, dim: int = GLOVE_DIM, seed: int = 0) -> dict[str, np.ndarray]:
    return releasekit.write_glove(path, GLOVE_WORDS, dim, seed)


def seconds_text(t: float) -> str:
    ms = int(round(t * 1000))
    return f"0:{ms // 60000:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def make_meld(root: Path, seed: int = 0) -> FakeMeld:
    rng = np.random.default_rng(seed)
    release = FakeMeld(root=root / "MELD.Raw", glove=root / "glove.txt")
    write_glove(release.glove)
    number = 0
    for split, dialogs in DIALOGS.items():
        rows = []
        for dialog, labels in enumerate(dialogs):
            t = 1.0
            for utt, label in enumerate(labels):
                seconds = float(np.round(rng.uniform(0.7, 1.5), 2))
                text = SENTENCES[(number + utt) % len(SENTENCES)]
                clip = release.root / FOLDERS[split] / f"dia{dialog}_utt{utt}.mp4"
                item = FakeClip(split, dialog, utt, label, text, seconds, clip)
                release.clips.append(item)
                number += 1
                speaker = ("Rachel", "Ross", "Monica")[utt % 3]
                rows.append([number, text, speaker, label, "neutral", dialog, utt, 3, 7,
                             seconds_text(t), seconds_text(t + seconds)])  # fmt: skip
                t += seconds + 0.2
                if item.key == MISSING:
                    continue
                if item.key == EMPTY:
                    clip.parent.mkdir(parents=True, exist_ok=True)
                    clip.write_bytes(b"")
                elif item.key == UNDECODABLE:
                    clip.parent.mkdir(parents=True, exist_ok=True)
                    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
                else:
                    write_clip(clip, seconds, seed=number, audio=item.key != NO_AUDIO,
                               frames=item.key != NO_VIDEO)  # fmt: skip
                    if item.key == CORRUPT:
                        garble(clip, seed)
        with open(release.root / f"{split}_sent_emo.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(HEADER)
            writer.writerows(rows)
    split, dialog, utt = UNLISTED
    write_clip(release.root / FOLDERS[split] / f"dia{dialog}_utt{utt}.mp4", 1.0, seed=99)
    (release.root / FOLDERS["train"] / "._dia0_utt0.mp4").write_bytes(b"\x00\x05")  # macOS copy
    return release


def make_scaled_meld(root: Path, n: int, size=(320, 180), seed: int = 0) -> FakeMeld:
    """A clean release of ``n`` clips for measuring preparation at real shapes (the benchmark
    scripts/bench_prepare.py): MELD's split proportions (73 / 8 / 19 %), clip lengths drawn
    around MELD's mean of 3.6 s (gamma, 0.5 to 12 s), eight utterances per dialog, labels drawn
    uniformly, 300-D GloVe vectors of the kit's words."""
    rng = np.random.default_rng(seed)
    release = FakeMeld(root=root / "MELD.Raw", glove=root / "glove.txt")
    root.mkdir(parents=True, exist_ok=True)
    write_glove(release.glove, dim=300, seed=seed)
    per = {"train": max(1, min(n - 2, int(n * 0.73))), "dev": max(1, int(n * 0.08))}
    per["test"] = n - per["train"] - per["dev"]
    assert per["test"] >= 1, "a release needs at least 3 clips (one per split)"
    number = 0
    for split, count in per.items():
        rows = []
        for i in range(count):
            dialog, utt = divmod(i, 8)
            seconds = float(np.round(np.clip(rng.gamma(2.0, 1.8), 0.5, 12.0), 2))
            label = CLASSES[rng.integers(len(CLASSES))]
            text = SENTENCES[number % len(SENTENCES)]
            clip = release.root / FOLDERS[split] / f"dia{dialog}_utt{utt}.mp4"
            release.clips.append(FakeClip(split, dialog, utt, label, text, seconds, clip))
            rows.append([number, text, "Ross", label, "neutral", dialog, utt, 1, 1,
                         seconds_text(1.0), seconds_text(1.0 + seconds)])  # fmt: skip
            write_clip(clip, seconds, seed=number, size=size)
            number += 1
        with open(release.root / f"{split}_sent_emo.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(HEADER)
            writer.writerows(rows)
    return release


def overrides(release: FakeMeld, out: Path, *extra: str) -> list[str]:
    """The options of a fast preparation of the fake release (small shapes, random ResNet)."""
    return ["dataset=meld", *fast_options(release.root, release.glove, out, AUDIO_FRAMES), *extra]


SHAPES = fold_shapes(AUDIO_FRAMES)
