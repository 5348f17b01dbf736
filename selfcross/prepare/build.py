"""The preparation pipeline: release -> features (cached) -> folds -> check.

Every input the long work needs is checked first (the GloVe vector size, the ResNet weights, the
wav and video files still to process, the free disk space), so that a mistake stops the run in
seconds, not hours.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import selfcross
from selfcross.errors import DataError
from selfcross.prepare.audio import PROSODY_DIM
from selfcross.prepare.cache import cache_folder, entry_path, load_entry
from selfcross.prepare.extract import DialogJob, UtteranceJob, extract_features
from selfcross.prepare.release import Corpus, scan_release
from selfcross.prepare.report import counts, per_100, print_counts, warn
from selfcross.prepare.resnet import FEATURE_DIM
from selfcross.prepare.settings import PrepareSettings
from selfcross.prepare.splits import make_folds
from selfcross.prepare.text import Embedding, Vocabulary, build_embedding, check_glove, tokenize
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


class FoldRows:
    """Utterance i's row of every fold file, from the caches, padded or cut to the shapes."""

    def __init__(self, corpus, settings, tokens, vocab, audio_folder, video_folder, no_video):
        self.corpus, self.settings, self.tokens, self.vocab = corpus, settings, tokens, vocab
        self.audio_folder, self.video_folder, self.no_video = audio_folder, video_folder, no_video
        self.labels = np.array([corpus.class_id(u) for u in corpus.utterances], dtype=np.int64)
        self.lengths: dict[int, dict[str, int]] = {}
        """Unpadded lengths of the rows read so far: audio frames, video frames, tokens."""

    def __call__(self, i: int) -> dict[str, np.ndarray]:
        utt, settings = self.corpus.utterances[i], self.settings
        mfcc = _cached(entry_path(self.audio_folder, utt.id), "mfcc")
        video = np.zeros((0, FEATURE_DIM), np.float32)
        if utt.dialog not in self.no_video:
            video = _cached(entry_path(self.video_folder, utt.id), "video")
        self.lengths[i] = {"audio": len(mfcc), "video": len(video), "tokens": len(self.tokens[i])}
        audio_rows, audio_len = pad_rows(mfcc, settings.audio_frames)
        video_rows, video_len = pad_rows(video, settings.video_frames)
        return {
            "audio_mfcc": audio_rows,
            "audio_seqN": np.int64(audio_len),
            "audio_prosody": np.zeros(PROSODY_DIM, np.float32),
            "video": video_rows,
            "video_seqN": np.int64(video_len),
            "nlp_trans": self.vocab.ids(self.tokens[i], settings.text_tokens),
            "label": self.labels[i],
        }


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


def prepare_text(corpus: Corpus, settings: PrepareSettings, glove: Path):
    """Tokens per utterance, the vocabulary and its GloVe rows."""
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


def vocab_json(vocab: Vocabulary, embedding: Embedding) -> dict:
    """The vocabulary file of each fold (in place of the original's pickled dic.pkl)."""
    return {
        "pad_id": 0,
        "tokens": vocab.tokens,
        "counts": vocab.counts,
        "glove_token": embedding.source,
    }


def prepare(settings: PrepareSettings) -> dict:
    """Build the folds; returns the summary also written to ``<out>/prepare.json``."""
    if settings.dataset == "meld":
        from selfcross.prepare.meld import prepare_meld

        return prepare_meld(settings)
    started = time.perf_counter()
    warnings: list[str] = []
    if settings.out.exists() and not settings.out.is_dir():
        raise DataError(settings.out, "exists and is not a directory")
    corpus = scan_release(settings.raw, list(settings.sessions), settings.classes,
                          settings.drop_labels)  # fmt: skip
    print_counts(corpus, settings.class_names, settings.class_counts)
    if corpus.no_transcript:
        warn(
            f"{len(corpus.no_transcript)} utterances have no transcription line, their text is "
            f"empty (e.g. {', '.join(corpus.no_transcript[:3])})",
            warnings,
        )

    # Check every input before the long work.
    glove = check_glove(settings.glove, settings.text.dim)
    encoder, video_key = load_frame_encoder(settings, warnings)
    settings.out.mkdir(parents=True, exist_ok=True)
    audio_folder = cache_folder(settings.cache, "audio", settings.audio.key())
    video_folder = cache_folder(settings.cache, "video", video_key)
    plan = plan_jobs(corpus, settings, audio_folder, video_folder)
    labels = np.array([corpus.class_id(u) for u in corpus.utterances], dtype=np.int64)
    sessions = np.array([u.session for u in corpus.utterances], dtype=np.int64)
    partitions = make_folds(
        settings.split, labels, sessions, list(settings.folds), settings.ratios, settings.seed
    )
    layout = fold_layout(settings.shapes, PROSODY_DIM)
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
        f"to process with {settings.jobs} worker(s), ResNet-101 on {encoder.device}",
        flush=True,
    )

    text_started = time.perf_counter()
    tokens, vocab, embedding = prepare_text(corpus, settings, glove)
    text_seconds = time.perf_counter() - text_started

    total = sum(len(j.utterances) for j in plan.jobs)
    with progress_bar(settings, desc="features", total=total, unit="utt") as bar:
        stats = extract_features(plan.jobs, settings.audio, settings.frames, audio_folder,
                                 video_folder, encoder, settings.jobs, bar.update)  # fmt: skip

    warn(
        f"prosody features are not computed: {{split}}_audio_prosody.npy holds zeros [N, "
        f"{PROSODY_DIM}] (the paper's models do not use them)",
        warnings,
    )
    print(f"Writing {len(partitions)} folds ({needed / 1e9:.2f} GB)", flush=True)
    rows = FoldRows(corpus, settings, tokens, vocab, audio_folder, video_folder, no_video)
    shared = vocab_json(vocab, embedding)

    def extras(fold: int, parts: dict[str, np.ndarray]) -> dict:
        ids = {s: [corpus.utterances[i].id for i in parts[s]] for s in parts}
        manifest = {"fold": fold, "split": settings.split, "seed": settings.seed,
                    "classes": list(settings.classes), **ids}  # fmt: skip
        return {"manifest.json": manifest, "vocab.json": shared}

    write_started = time.perf_counter()
    with progress_bar(settings, desc="folds", total=n, unit="utt") as bar:
        fold_dirs = write_folds(settings.out, partitions, n, rows, layout, embedding.matrix,
                                extras, bar.update)  # fmt: skip
    write_seconds = time.perf_counter() - write_started
    utterances = utterance_table(corpus, rows)
    write_json_atomic(settings.out / UTTERANCES_FILE, utterances)
    report_cuts(utterances, settings)

    checked = final_check(fold_dirs, settings)
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
        "reused": {"audio": plan.audio_reused, "video": plan.video_reused},
        "no_video_dialogs": sorted(no_video),
        "no_video_utterances": n_no_video,
        "vocabulary": {"size": len(vocab), "oov": len(embedding.oov)},
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


def final_check(fold_dirs: list[Path], settings: PrepareSettings) -> list[dict]:
    """``selfcross.check`` over the written folds, as training reads them (check=false skips)."""
    if not settings.check:
        return []
    full = {name[:3]: name for name in settings.class_names}
    names = [full.get(label, label) for label in settings.classes]
    folds = [int(d.name.removeprefix("fold")) for d in fold_dirs]
    published = dict(zip(settings.class_names, settings.class_counts, strict=False))
    return check_output(settings.out, folds, settings.shapes, names, published)


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


def report_cuts(utterances: list[dict], settings: PrepareSettings) -> None:
    for key, limit, option in (
        ("n_audio", settings.audio_frames, "audio.max_frames"),
        ("n_video", settings.video_frames, "vision.max_frames"),
        ("n_tokens", settings.text_tokens, "text.max_tokens"),
    ):
        cut = sum(u[key] > limit for u in utterances)
        if cut:
            print(f"{cut:,} utterances are longer than {option}={limit} and were cut")
