"""Per-utterance audio and video features, parallel over dialogs, cached and resumable.

Worker processes (one dialog at a time) compute MFCCs and write them to the audio cache, and
decode the dialog's video into speaker crops; the main process runs ResNet-101 over the crops
in batches (on the GPU when there is one) and writes the video cache. Work already in the cache
is not redone. This module imports no torch at module level: spawned workers never load it.
"""

from __future__ import annotations

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
    job: DialogJob, audio: AudioSettings, frames: FrameSettings, audio_folder: Path
) -> DialogResult:
    """A worker's task: MFCCs of one dialog's utterances (cached on disk), and their crops."""
    result = DialogResult(job.dialog)
    try:
        started = time.perf_counter()
        for utt in job.utterances:
            if utt.audio:
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


def compute_audio(wav: Path, settings: AudioSettings) -> np.ndarray:
    """[T, 3 * n_mfcc] features of one wav file, or of a video clip's audio track."""
    if Path(wav).suffix.lower() in WAV_SUFFIXES:
        return mfcc_features(read_wav(wav, settings.sample_rate), settings)
    return mfcc_features(read_clip_audio(wav, settings.sample_rate), settings)


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
) -> ExtractStats:
    """Run ``jobs``; ``embed(crops [F, S, S, 3] uint8) -> [F, 2048]`` is the ResNet.

    A job whose worker meets a DataError stops the run, unless ``on_error(dialog, path,
    problem)`` is given: it is then told, and the job's utterances without cached features are
    left out (MELD: one clip per job, one bad clip must not end a long run).
    """
    stats = ExtractStats()
    sizes = {job.dialog: len(job.utterances) for job in jobs}
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
        if result.frames:
            started = time.perf_counter()
            ids = list(result.frames)
            counts = [len(result.frames[i]) for i in ids]
            all_crops = np.concatenate([result.frames[i] for i in ids])
            features = embed(all_crops)
            for utt_id, chunk in zip(ids, np.split(features, np.cumsum(counts)[:-1]), strict=True):
                save_npz_atomic(entry_path(video_folder, utt_id), video=chunk.astype(np.float32))
            stats.n_video += len(ids)
            stats.n_frames += len(all_crops)
            stats.resnet_seconds += time.perf_counter() - started
        if progress is not None:
            progress(sizes[result.dialog])
    return stats
