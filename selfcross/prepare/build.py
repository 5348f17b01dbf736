"""The preparation pipeline: release -> features (cached) -> folds -> check.

Steps: read labels and transcripts; check every input needed (GloVe vector size, ResNet weights,
wav and video files still to process) before the long work; build the vocabulary and its GloVe
rows; extract audio and video features of the utterances not yet cached; partition; write the
folds; load them back with the fold reader.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

import selfcross
from selfcross.errors import DataError
from selfcross.prepare.audio import PROSODY_DIM
from selfcross.prepare.cache import cache_folder, entry_path, load_entry
from selfcross.prepare.extract import DialogJob, UtteranceJob, extract_features
from selfcross.prepare.release import Corpus, scan_release
from selfcross.prepare.report import counts, per_100, print_counts, warn
from selfcross.prepare.settings import PrepareSettings
from selfcross.prepare.splits import make_folds
from selfcross.prepare.text import Vocabulary, build_embedding, check_glove, tokenize
from selfcross.prepare.video import check_video
from selfcross.prepare.writer import check_output, fold_layout, pad_rows, write_folds
from selfcross.utils.io import git_commit, write_json_atomic

SUMMARY_FILE = "prepare.json"
UTTERANCES_FILE = "utterances.json"


def progress_bar(settings: PrepareSettings, **kwargs):
    from tqdm import tqdm

    return tqdm(disable=not settings.progress, dynamic_ncols=True, leave=False, **kwargs)


def load_frame_encoder(settings: PrepareSettings, warnings: list[str]):
    """The ResNet-101 on its device, and the key naming its video features in the cache."""
    from selfcross.prepare.resnet import FrameEncoder, file_digest, load_resnet101, pick_device

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


def check_wav(path: Path) -> None:
    import soundfile

    if not path.is_file():
        raise DataError(path, "wav file is missing")
    try:
        soundfile.info(str(path))
    except Exception as err:  # soundfile raises several types for a bad header
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(path, f"cannot be read as audio ({message})") from None


def plan_jobs(
    corpus: Corpus, settings: PrepareSettings, audio_folder: Path, video_folder: Path
) -> tuple[list[DialogJob], dict]:
    """The dialogs with work left, after checking their input files; and what is reused."""
    jobs, info = [], {"audio_reused": 0, "video_reused": 0, "no_video_dialogs": []}
    for dialog, utterances in corpus.dialogs().items():
        video = corpus.video_path(utterances[0].session, dialog)
        has_video = video.is_file()
        if not has_video:
            info["no_video_dialogs"].append(dialog)
        todo = []
        for utt in utterances:
            need_audio = not entry_path(audio_folder, utt.id).is_file()
            need_video = has_video and not entry_path(video_folder, utt.id).is_file()
            info["audio_reused"] += not need_audio
            info["video_reused"] += has_video and not need_video
            if need_audio:
                check_wav(corpus.wav_path(utt))
            todo.append(
                UtteranceJob(
                    utt.id,
                    str(corpus.wav_path(utt)),
                    utt.start,
                    utt.end,
                    settings.frames.speaker_side[utt.speaker],
                    need_audio,
                    need_video,
                )
            )
        if any(u.video for u in todo):
            check_video(video)
        if any(u.audio or u.video for u in todo):
            jobs.append(DialogJob(dialog, str(video) if has_video else None, tuple(todo)))
    return jobs, info


def prepare(settings: PrepareSettings) -> dict:
    """Build the folds; returns the summary written to ``<out>/prepare.json``."""
    started = time.perf_counter()
    warnings: list[str] = []
    if settings.out.exists() and not settings.out.is_dir():
        raise DataError(settings.out, "exists and is not a directory")
    corpus = scan_release(settings.raw, list(settings.sessions), settings.classes,
                          settings.drop_labels)  # fmt: skip
    print_counts(corpus)
    if corpus.no_transcript:
        warn(
            f"{len(corpus.no_transcript)} utterances have no transcription line, their text is "
            f"empty (e.g. {', '.join(corpus.no_transcript[:3])})",
            warnings,
        )

    glove = check_glove(settings.glove, settings.text.dim)
    encoder, video_key = load_frame_encoder(settings, warnings)
    settings.out.mkdir(parents=True, exist_ok=True)
    audio_folder = cache_folder(settings.cache, "audio", settings.audio.key())
    video_folder = cache_folder(settings.cache, "video", video_key)
    jobs, plan = plan_jobs(corpus, settings, audio_folder, video_folder)
    n = len(corpus.utterances)
    missing_video = set(plan["no_video_dialogs"])
    n_no_video = sum(u.dialog in missing_video for u in corpus.utterances)
    if missing_video:
        warn(
            f"{len(missing_video)} dialogs have no video file: their {n_no_video} utterances get "
            f"zero video features and video_seqN 0 ({', '.join(sorted(missing_video)[:5])}"
            f"{', ...' if len(missing_video) > 5 else ''})",
            warnings,
        )
    print(
        f"Features: audio {plan['audio_reused']:,} of {n:,} cached (reused), video "
        f"{plan['video_reused']:,} of {n - n_no_video:,} cached (reused); "
        f"{len(jobs)} dialogs to process with {settings.jobs} worker(s) on {encoder.device}",
        flush=True,
    )

    text_started = time.perf_counter()
    tokens = [tokenize(u.text, settings.text.drop_markers) for u in corpus.utterances]
    vocab = Vocabulary.build(tokens)
    with progress_bar(
        settings, desc="GloVe", total=glove.stat().st_size, unit="B", unit_scale=True
    ) as bar:
        embedding, embedding_cached = build_embedding(
            vocab, glove, settings.text, settings.cache, bar.update
        )
    text_seconds = time.perf_counter() - text_started
    oov = embedding.oov
    print(
        f"Text: vocabulary of {len(vocab) - 1:,} tokens (+ padding), {len(oov):,} not in GloVe "
        f"({settings.text.oov} vectors){' [GloVe rows reused from the cache]' * embedding_cached}"
    )

    with progress_bar(settings, desc="features", total=sum(len(j.utterances) for j in jobs),
                      unit="utt") as bar:  # fmt: skip
        stats = extract_features(
            jobs,
            settings.audio,
            settings.frames,
            audio_folder,
            video_folder,
            encoder,
            settings.jobs,
            bar.update,
        )

    labels = np.array([corpus.class_id(u) for u in corpus.utterances], dtype=np.int64)
    sessions = np.array([u.session for u in corpus.utterances], dtype=np.int64)
    partitions = make_folds(
        settings.split, labels, sessions, list(settings.folds), settings.ratios, settings.seed
    )
    warn(
        f"prosody features are not computed: {{split}}_audio_prosody.npy holds zeros [N, "
        f"{PROSODY_DIM}] (the paper's models do not use them)",
        warnings,
    )
    lengths: dict[int, dict] = {}

    def row_of(i: int) -> dict[str, np.ndarray]:
        utt = corpus.utterances[i]
        mfcc = _cached(entry_path(audio_folder, utt.id), "mfcc")
        audio, audio_len = pad_rows(mfcc, settings.audio_frames)
        video_feats = np.zeros((0, 2048), np.float32)
        if utt.dialog not in missing_video:
            video_feats = _cached(entry_path(video_folder, utt.id), "video")
        video, video_len = pad_rows(video_feats, settings.video_frames)
        lengths[i] = {"audio": len(mfcc), "video": len(video_feats), "tokens": len(tokens[i])}
        return {
            "audio_mfcc": audio,
            "audio_seqN": np.int64(audio_len),
            "audio_prosody": np.zeros(PROSODY_DIM, np.float32),
            "video": video,
            "video_seqN": np.int64(video_len),
            "nlp_trans": vocab.ids(tokens[i], settings.text_tokens),
            "label": labels[i],
        }

    vocab_json = {
        "pad_id": 0,
        "tokens": vocab.tokens,
        "counts": vocab.counts,
        "glove_token": embedding.source,
    }

    def extras(fold: int, parts: dict[str, np.ndarray]) -> dict:
        manifest = {
            "fold": fold,
            "split": settings.split,
            "seed": settings.seed,
            "classes": list(settings.classes),
            **{s: [corpus.utterances[i].id for i in parts[s]] for s in parts},
        }
        return {"manifest.json": manifest, "vocab.json": vocab_json}

    write_started = time.perf_counter()
    with progress_bar(settings, desc="folds", total=n, unit="utt") as bar:
        fold_dirs = write_folds(
            settings.out,
            partitions,
            n,
            row_of,
            fold_layout(settings.shapes, PROSODY_DIM),
            embedding.matrix,
            extras,
            bar.update,
        )
    write_seconds = time.perf_counter() - write_started

    utterances = [
        {
            "id": u.id,
            "session": u.session,
            "dialog": u.dialog,
            "speaker": u.speaker,
            "start": u.start,
            "end": u.end,
            "label": u.label,
            "class_id": int(labels[i]),
            "text": u.text,
            **{f"n_{k}": v for k, v in lengths[i].items()},
        }
        for i, u in enumerate(corpus.utterances)
    ]
    write_json_atomic(settings.out / UTTERANCES_FILE, utterances)
    _report_cuts(utterances, settings)

    checked = []
    if settings.check:
        checked = check_output(fold_dirs, settings.shapes, len(settings.classes))
    for row in checked:
        print(
            f"Checked {row['fold']}: train {row['train']:,}, dev {row['dev']:,}, test "
            f"{row['test']:,} utterances after dropping {row['dropped_no_video']:,} without video"
        )
    timing = {
        "audio_seconds": round(stats.audio_seconds, 2),
        "video_decode_seconds": round(stats.decode_seconds, 2),
        "resnet_seconds": round(stats.resnet_seconds, 2),
        "text_seconds": round(text_seconds, 2),
        "write_seconds": round(write_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
    }
    summary = {
        "version": selfcross.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "settings": json.loads(json.dumps(asdict(settings), default=str)),
        "shapes": settings.shapes,
        "counts": counts(corpus),
        "computed": {"audio": stats.n_audio, "video": stats.n_video, "frames": stats.n_frames},
        "reused": {"audio": plan["audio_reused"], "video": plan["video_reused"]},
        "no_video_dialogs": sorted(missing_video),
        "no_video_utterances": n_no_video,
        "vocabulary": {"size": len(vocab), "oov": len(oov)},
        "folds": [f.name for f in fold_dirs],
        "checked": checked,
        "timing": timing,
        "warnings": warnings,
    }
    write_json_atomic(settings.out / SUMMARY_FILE, summary)
    print(
        f"Computed audio for {stats.n_audio:,} utterances "
        f"({per_100(stats.audio_seconds, stats.n_audio)}), "
        f"video for {stats.n_video:,} ({stats.n_frames:,} frames; decoding "
        f"{per_100(stats.decode_seconds, stats.n_video)}, ResNet-101 "
        f"{per_100(stats.resnet_seconds, stats.n_video)}); reused {plan['audio_reused']:,} audio "
        f"and {plan['video_reused']:,} video features from the cache"
    )
    names = ", ".join(f.name for f in fold_dirs)
    print(f"Wrote {names} to {settings.out} in {timing['total_seconds']:.0f} s")
    return summary


def _cached(path: Path, name: str) -> np.ndarray:
    array = load_entry(path, name)
    if array is None:
        raise DataError(path, "cached features are missing or unreadable: delete it and rerun")
    return array


def _report_cuts(utterances: list[dict], settings: PrepareSettings) -> None:
    for key, limit, option in (
        ("n_audio", settings.audio_frames, "audio.max_frames"),
        ("n_video", settings.video_frames, "vision.max_frames"),
        ("n_tokens", settings.text_tokens, "text.max_tokens"),
    ):
        cut = sum(u[key] > limit for u in utterances)
        if cut:
            print(f"{cut:,} utterances are longer than {option}={limit} and were cut")
