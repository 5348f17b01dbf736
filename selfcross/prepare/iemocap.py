"""IEMOCAP prepared from its official release: ``selfcross.prepare`` (``dataset=iemocap``).

The release is read by :mod:`selfcross.prepare.iemocap_release`. Every input the long work needs
is checked first (the GloVe vector size, the ResNet weights, the wav and video files still to
process, the free disk space), so that a mistake stops the run in seconds, not hours. Then the
features are computed (cached per utterance), the folds written (random or per-session split) and
checked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfcross.errors import DataError
from selfcross.prepare.audio import PROSODY_DIM
from selfcross.prepare.cache import cache_folder, entry_path
from selfcross.prepare.extract import DialogJob, UtteranceJob, extract_features
from selfcross.prepare.iemocap_release import Corpus, counts, print_counts, scan_release
from selfcross.prepare.pretrained import identity
from selfcross.prepare.settings import PrepareSettings
from selfcross.prepare.splits import make_folds
from selfcross.prepare.steps import (
    SUMMARY_FILE,
    FoldRows,
    check_disk_space,
    check_out_dir,
    final_check,
    frame_name,
    load_inputs,
    per_100,
    progress_bar,
    provenance,
    settings_json,
    text_inputs,
    vocab_json,
    warn,
    warn_no_prosody,
    write_folds_manifest,
    write_utterances,
)
from selfcross.prepare.video import check_video
from selfcross.prepare.writer import fold_layout, write_folds
from selfcross.utils.io import write_json_atomic


def check_wav(path: Path) -> None:
    import soundfile

    if not path.is_file():
        raise DataError(path, "wav file is missing")
    try:
        soundfile.info(str(path))
    except Exception as err:  # soundfile raises several types for a bad header
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(path, f"cannot be read as audio ({message})") from None


@dataclass
class Plan:
    jobs: list[DialogJob]
    audio_reused: int
    video_reused: int
    no_video_dialogs: list[str]


def plan_jobs(
    corpus: Corpus, settings: PrepareSettings, audio_folder: Path, video_folder: Path
) -> Plan:
    """The dialogs with work left (their input files checked), and what the cache holds."""
    plan = Plan([], 0, 0, [])
    for dialog, utterances in corpus.dialogs().items():
        video = corpus.video_path(utterances[0].session, dialog)
        has_video = video.is_file()
        if not has_video:
            plan.no_video_dialogs.append(dialog)
        todo = []
        for utt in utterances:
            need_audio = not entry_path(audio_folder, utt.id).is_file()
            need_video = has_video and not entry_path(video_folder, utt.id).is_file()
            plan.audio_reused += not need_audio
            plan.video_reused += has_video and not need_video
            if need_audio:
                check_wav(corpus.wav_path(utt))
            side = settings.frames.speaker_side[utt.speaker]
            todo.append(
                UtteranceJob(
                    utt.id,
                    str(corpus.wav_path(utt)),
                    utt.start,
                    utt.end,
                    side,
                    need_audio,
                    need_video,
                )  # fmt: skip
            )
        if any(u.video for u in todo):
            check_video(video)
        if any(u.audio or u.video for u in todo):
            plan.jobs.append(DialogJob(dialog, str(video) if has_video else None, tuple(todo)))
    return plan


def prepare_iemocap(settings: PrepareSettings) -> dict:
    """Build the folds; returns the summary also written to ``<out>/prepare.json``."""
    started = time.perf_counter()
    warnings: list[str] = []
    check_out_dir(settings)
    corpus = scan_release(settings.raw, list(settings.sessions), settings.classes,
                          settings.drop_labels, settings.label_ids)  # fmt: skip
    print_counts(corpus, settings.class_names, settings.class_counts)
    if corpus.no_transcript:
        warn(
            f"{len(corpus.no_transcript)} utterances have no transcription line, their text is "
            f"empty (e.g. {', '.join(corpus.no_transcript[:3])})",
            warnings,
        )

    # Check every input before the long work.
    settings, encoders, encoder, video_key, glove = load_inputs(settings, warnings)
    settings.out.mkdir(parents=True, exist_ok=True)
    audio_folder = cache_folder(settings.cache, "audio", encoders.audio_key(settings))
    video_folder = cache_folder(settings.cache, "video", video_key)
    plan = plan_jobs(corpus, settings, audio_folder, video_folder)
    labels = np.array([corpus.class_id(u) for u in corpus.utterances], dtype=np.int64)
    sessions = np.array([u.session for u in corpus.utterances], dtype=np.int64)
    speakers = np.array([u.speaker for u in corpus.utterances])
    partitions = make_folds(settings.split, labels, sessions, list(settings.folds),
                            settings.ratios, settings.seed, speakers)  # fmt: skip
    layout = fold_layout(settings.shapes, PROSODY_DIM, tuple(settings.encoders), settings.dtype)
    needed = check_disk_space(settings.out, partitions, layout)

    n = len(corpus.utterances)
    no_video = set(plan.no_video_dialogs)
    n_no_video = sum(u.dialog in no_video for u in corpus.utterances)
    if no_video:
        names = ", ".join(sorted(no_video)[:5]) + (", ..." if len(no_video) > 5 else "")
        warn(
            f"{len(no_video)} dialogs have no video file: their {n_no_video} utterances get "
            f"zero video features and video_seqN 0 ({names})",
            warnings,
        )
    print(
        f"Features: audio {plan.audio_reused:,} of {n:,} cached (reused), video "
        f"{plan.video_reused:,} of {n - n_no_video:,} cached (reused); {len(plan.jobs)} dialogs "
        f"to process with {settings.jobs} worker(s), {frame_name(settings)} on {encoder.device}",
        flush=True,
    )

    text_started = time.perf_counter()
    tokens, vocab, embedding, text_cache = text_inputs(corpus, settings, encoders, glove)
    text_seconds = time.perf_counter() - text_started

    total = sum(len(j.utterances) for j in plan.jobs)
    with progress_bar(settings, desc="features", total=total, unit="utt") as bar:
        stats = extract_features(plan.jobs, encoders.audio_input(settings), settings.frames,
                                 audio_folder, video_folder, encoder, settings.jobs, bar.update,
                                 audio_encoder=encoders.audio,
                                 audio_dtype=settings.dtype)  # fmt: skip

    warn_no_prosody(warnings)
    print(f"Writing {len(partitions)} folds ({needed / 1e9:.2f} GB)", flush=True)
    rows = FoldRows(
        corpus, settings, tokens, vocab, audio_folder, video_folder, no_video, text_cache
    )
    shared = vocab_json(vocab, embedding)

    def extras(fold: int, parts: dict[str, np.ndarray]) -> dict:
        ids = {s: [corpus.utterances[i].id for i in parts[s]] for s in parts}
        manifest = {"fold": fold, "split": settings.split, "seed": settings.seed,
                    "classes": list(settings.classes), **ids}  # fmt: skip
        return {"manifest.json": manifest, **({"vocab.json": shared} if shared else {})}

    matrix = None if embedding is None else embedding.matrix
    write_started = time.perf_counter()
    with progress_bar(settings, desc="folds", total=n, unit="utt") as bar:
        fold_dirs = write_folds(settings.out, partitions, n, rows, layout,
                                matrix, extras, bar.update)  # fmt: skip
    write_seconds = time.perf_counter() - write_started
    write_utterances(utterance_table(corpus, rows), settings)

    checked = final_check(fold_dirs, settings)
    write_folds_manifest(settings, video_key, identity(settings, encoders, encoder, video_key))
    timing = {
        "audio_seconds": round(stats.audio_seconds, 2),
        "video_decode_seconds": round(stats.decode_seconds, 2),
        "resnet_seconds": round(stats.resnet_seconds, 2),
        "text_seconds": round(text_seconds, 2),
        "write_seconds": round(write_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
    }
    summary = {
        **provenance(),
        "settings": settings_json(settings),
        "shapes": settings.shapes,
        "counts": counts(corpus),
        "computed": {"audio": stats.n_audio, "video": stats.n_video, "frames": stats.n_frames},
        "reused": {"audio": plan.audio_reused, "video": plan.video_reused},
        "no_video_dialogs": sorted(no_video),
        "no_video_utterances": n_no_video,
        "vocabulary": {"size": len(vocab), "oov": len(embedding.oov)} if vocab else None,
        "folds": [f.name for f in fold_dirs],
        "checked": checked,
        "timing": timing,
        "warnings": warnings,
    }
    write_json_atomic(settings.out / SUMMARY_FILE, summary)
    print(
        f"Computed audio for {stats.n_audio:,} utterances "
        f"({per_100(stats.audio_seconds, stats.n_audio)}), video for {stats.n_video:,} "
        f"({stats.n_frames:,} frames; decoding {per_100(stats.decode_seconds, stats.n_video)}, "
        f"ResNet-101 {per_100(stats.resnet_seconds, stats.n_video)}); reused "
        f"{plan.audio_reused:,} audio and {plan.video_reused:,} video features from the cache"
    )
    names = ", ".join(f.name for f in fold_dirs)
    print(f"Wrote {names} to {settings.out} in {timing['total_seconds']:.0f} s")
    return summary


def utterance_table(corpus: Corpus, rows: FoldRows) -> list[dict]:
    """One entry per kept utterance (``utterances.json``): where it comes from and its sizes."""
    return [
        {
            "id": u.id,
            "session": u.session,
            "dialog": u.dialog,
            "speaker": u.speaker,
            "start": u.start,
            "end": u.end,
            "label": u.label,
            "class_id": int(rows.labels[i]),
            "text": u.text,
            **{f"n_{k}": v for k, v in rows.lengths[i].items()},
        }
        for i, u in enumerate(corpus.utterances)
    ]
