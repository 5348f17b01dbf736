"""Per-utterance audio and video features, parallel over dialogs, cached and resumable.

Worker processes (one dialog at a time) compute MFCCs and write them to the audio cache, and
decode the dialog's video into speaker crops; the main process runs ResNet-101 over the crops
in batches (on the GPU when there is one) and writes the video cache. Work already in the cache
is not redone. This module imports no torch at module level: spawned workers never load it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfcross.errors import DataError
from selfcross.prepare.audio import AudioSettings, mfcc_features, read_clip_audio, read_wav
from selfcross.prepare.cache import entry_path, save_npz_atomic
from selfcross.prepare.video import FrameSettings, sample_times, video_frames

FEATURE_DIM = 2048
"""ResNet-101's feature size (defined here, not in the torch-importing resnet module)."""


@dataclass(frozen=True)
class WaveSettings:
    """Audio for a pretrained speech encoder: the worker reads the samples (no MFCC), cut to
    ``max_samples``, and the main process runs the encoder over them in batches."""

    sample_rate: int
    max_samples: int


@dataclass(frozen=True)
class UtteranceJob:
    id: str
    wav: str
    start: float
    end: float
    side: str
    """Half of the frame showing the speaker: ``left`` or ``right``."""
    audio: bool
    """Compute audio features (not cached yet)."""
    video: bool
    """Extract frames (the dialog has a video and the features are not cached yet)."""
    need_frames: bool = False
    """No decodable frame is an error (MELD: a clip is the utterance) rather than an utterance
    past the end of its dialog's video (IEMOCAP: it gets video_seqN 0)."""


@dataclass(frozen=True)
class DialogJob:
    dialog: str
    video: str | None
    utterances: tuple[UtteranceJob, ...]


@dataclass
class DialogResult:
    dialog: str
    frames: dict[str, np.ndarray] = field(default_factory=dict)
    """Utterance id -> [n, crop, crop, 3] uint8 crops, for utterances whose video was asked."""
    waves: dict[str, np.ndarray] = field(default_factory=dict)
    """Utterance id -> samples, for a pretrained speech encoder (:class:`WaveSettings`)."""
    n_audio: int = 0
    audio_seconds: float = 0.0
    decode_seconds: float = 0.0
    error: tuple[str, str] | None = None
    """(path, problem) of a DataError raised in the worker (re-raised by the main process)."""


@dataclass
class ExtractStats:
    n_audio: int = 0
    n_video: int = 0
    n_frames: int = 0
    audio_seconds: float = 0.0
    decode_seconds: float = 0.0
    resnet_seconds: float = 0.0


def run_dialog(
    job: DialogJob, audio: AudioSettings | WaveSettings, frames: FrameSettings, audio_folder: Path
) -> DialogResult:
    """A worker's task: MFCCs of one dialog's utterances (cached on disk), or their samples for
    a pretrained encoder, and their crops."""
    result = DialogResult(job.dialog)
    try:
        started = time.perf_counter()
        for utt in job.utterances:
            if utt.audio and isinstance(audio, WaveSettings):
                result.waves[utt.id] = read_samples(Path(utt.wav), audio.sample_rate)[
                    : audio.max_samples
                ]
            elif utt.audio:
                features = compute_audio(Path(utt.wav), audio)
                save_npz_atomic(entry_path(audio_folder, utt.id), mfcc=features)
                result.n_audio += 1
        result.audio_seconds = time.perf_counter() - started
        wanted = [u for u in job.utterances if u.video]
        if wanted and job.video is not None:
            started = time.perf_counter()
            requests = [(sample_times(u.start, u.end, frames.fps), u.side) for u in wanted]
            crops = video_frames(job.video, requests, frames)
            for u, c in zip(wanted, crops, strict=True):
                if u.need_frames and len(c) == 0:
                    raise DataError(job.video, "no video frame could be decoded")
            result.frames = {u.id: c for u, c in zip(wanted, crops, strict=True)}
            result.decode_seconds = time.perf_counter() - started
    except DataError as err:
        result.error = (err.path, err.problem)
    return result


WAV_SUFFIXES = (".wav", ".flac")


def read_samples(wav: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples of one wav file, or of a video clip's audio track."""
    if Path(wav).suffix.lower() in WAV_SUFFIXES:
        return read_wav(wav, sample_rate)
    return read_clip_audio(wav, sample_rate)


def compute_audio(wav: Path, settings: AudioSettings) -> np.ndarray:
    """[T, 3 * n_mfcc] features of one wav file, or of a video clip's audio track."""
    return mfcc_features(read_samples(wav, settings.sample_rate), settings)


def _results(jobs: list[DialogJob], workers: int, args: tuple) -> Iterator[DialogResult]:
    """Results in completion order; at most ``2 * workers`` dialogs in flight (bounded memory)."""
    if workers <= 1:
        for job in jobs:
            yield run_dialog(job, *args)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    todo = iter(jobs)
    pending: set = set()
    try:
        while True:
            while len(pending) < 2 * workers and (job := next(todo, None)) is not None:
                pending.add(pool.submit(run_dialog, job, *args))
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class FramePacker:
    """Crops of successive jobs into ResNet batches of one size; each utterance's features are
    saved as soon as its last frame has been through the network.

    Embedding each job's crops on their own gives every clip length its own last-batch shape,
    and the CPU backend (oneDNN) keeps compiled primitives per input shape: measured with
    ResNet-101 on this project's 2-core machine, 60 calls of 1 to 36 frames raised the
    process's RSS from 0.7 to 1.4 GB with 23 distinct sizes, and a whole-picture MELD run grew
    with the release (1.6 GB at 60 clips, 2.3 GB at 300). Packed, every batch but the run's last
    has ``batch_size`` frames. At most ``batch_size - 1`` frames wait between jobs.
    """

    def __init__(self, embed, batch_size: int, save, stats: ExtractStats):
        self.embed = embed
        self.batch_size = batch_size
        self.save = save
        self.stats = stats
        self.waiting: list[tuple[str, int]] = []
        """Utterances whose features are not all computed yet, in order, with frame counts."""
        self.crops: np.ndarray | None = None
        """Crops not through the network yet (the last ones of ``waiting``), fewer than
        ``batch_size`` between calls."""
        self.features: list[np.ndarray] = []
        """Features computed for the first frames of ``waiting``."""

    def add(self, utt_id: str, crops: np.ndarray) -> None:
        self.waiting.append((utt_id, len(crops)))
        if len(crops):
            # one copy per job: full batches are views, only the short remainder is kept
            pending = crops if self.crops is None else np.concatenate([self.crops, crops])
            full = len(pending) - len(pending) % self.batch_size
            for start in range(0, full, self.batch_size):
                self._run(pending[start : start + self.batch_size])
            self.crops = pending[full:].copy() if full < len(pending) else None
        self._save_done()

    def flush(self) -> None:
        """Run the frames left (one short batch) and save every utterance still waiting."""
        if self.crops is not None:
            self._run(self.crops)
            self.crops = None
        self._save_done()
        if self.waiting:  # cannot happen: every waiting frame has been run
            raise RuntimeError(f"frame packer: {len(self.waiting)} utterances left unsaved")

    def _run(self, batch: np.ndarray) -> None:
        started = time.perf_counter()
        self.features.append(self.embed(batch))
        self.stats.n_frames += len(batch)
        self.stats.resnet_seconds += time.perf_counter() - started

    def _save_done(self) -> None:
        done = np.concatenate(self.features) if self.features else np.empty((0, 0), np.float32)
        used = 0
        while self.waiting and used + self.waiting[0][1] <= len(done):
            utt_id, count = self.waiting.pop(0)
            chunk = done[used : used + count]
            if count == 0:
                chunk = np.empty((0, getattr(self.embed, "width", FEATURE_DIM)), np.float32)
            self.save(utt_id, chunk.astype(np.float32))
            self.stats.n_video += 1
            used += count
        self.features = [done[used:]] if used < len(done) else []


class WavePacker:
    """Samples of successive utterances through a pretrained speech encoder, ``batch_size``
    utterances at a time; each utterance's frames are saved as soon as its batch has run."""

    def __init__(self, encode, save, stats: ExtractStats):
        self.encode, self.save, self.stats = encode, save, stats
        self.waiting: list[tuple[str, np.ndarray]] = []

    def add(self, utt_id: str, samples: np.ndarray) -> None:
        self.waiting.append((utt_id, samples))
        if len(self.waiting) >= self.encode.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.waiting:
            return
        started = time.perf_counter()
        ids, waves = zip(*self.waiting, strict=True)
        self.waiting = []
        for utt_id, features in zip(ids, self.encode(list(waves)), strict=True):
            self.save(utt_id, features)
            self.stats.n_audio += 1
        self.stats.audio_seconds += time.perf_counter() - started


def extract_features(
    jobs: list[DialogJob],
    audio: AudioSettings,
    frames: FrameSettings,
    audio_folder: Path,
    video_folder: Path,
    embed,
    workers: int,
    progress=None,
    on_error=None,
    audio_encoder=None,
    audio_dtype: str = "float16",
) -> ExtractStats:
    """Run ``jobs``; ``embed(crops [F, S, S, 3] uint8) -> [F, D]`` is the frame encoder, and its
    ``batch_size`` the number of frames it is given at a time (:class:`FramePacker`).
    ``audio_encoder``: a pretrained speech encoder (:class:`WavePacker`); the workers then only
    read the samples (``audio`` is a :class:`WaveSettings`) and its features are cached as
    ``features``, as ``audio_dtype``.

    A job whose worker meets a DataError stops the run, unless ``on_error(dialog, path,
    problem)`` is given: it is then told, and the job's utterances without cached features are
    left out (MELD: one clip per job, one bad clip must not end a long run).
    """
    stats = ExtractStats()
    sizes = {job.dialog: len(job.utterances) for job in jobs}

    def save(utt_id: str, features: np.ndarray) -> None:
        save_npz_atomic(entry_path(video_folder, utt_id), video=features)

    def save_audio(utt_id: str, features: np.ndarray) -> None:
        save_npz_atomic(entry_path(audio_folder, utt_id), features=features.astype(audio_dtype))

    packer = FramePacker(embed, embed.batch_size, save, stats)
    waves = WavePacker(audio_encoder, save_audio, stats) if audio_encoder is not None else None
    try:
        for result in _results(jobs, workers, (audio, frames, audio_folder)):
            if result.error is not None:
                if on_error is None:
                    raise DataError(*result.error)
                on_error(result.dialog, *result.error)
                if progress is not None:
                    progress(sizes[result.dialog])
                continue
            stats.n_audio += result.n_audio
            stats.audio_seconds += result.audio_seconds
            stats.decode_seconds += result.decode_seconds
            for utt_id, crops in result.frames.items():
                packer.add(utt_id, crops)
            for utt_id, samples in result.waves.items():
                waves.add(utt_id, samples)
            if progress is not None:
                progress(sizes[result.dialog])
    except Exception:
        # a failing job (or a bug) ends the run: the frames already decoded still reach the
        # cache, so that the rerun does not redo them
        with contextlib.suppress(Exception):
            packer.flush()
            if waves is not None:
                waves.flush()
        raise
    packer.flush()
    if waves is not None:
        waves.flush()
    return stats
