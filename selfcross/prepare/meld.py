"""MELD prepared as one fold from its public release: ``selfcross.prepare dataset=meld``.

The release is read by :mod:`selfcross.prepare.meld_release` (csv rows, repaired texts, clips
probed). Every listed utterance whose clip is unusable is dropped from every modality and listed
with its reason in ``prepare.json`` and ``fold01/manifest.json`` and summarised on the console;
``strict=true`` makes the first of them an error naming the file. Features are computed as for
IEMOCAP (:mod:`selfcross.prepare.extract`, one clip per job, cached per utterance) and written by
:mod:`selfcross.prepare.writer`; the official split is fold01.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from selfcross.errors import DataError
from selfcross.prepare.audio import PROSODY_DIM
from selfcross.prepare.cache import cache_folder, entry_path
from selfcross.prepare.extract import DialogJob, UtteranceJob, extract_features
from selfcross.prepare.meld_release import (
    SPLIT_FILES,
    MeldCorpus,
    MeldUtterance,
    csv_seconds,
    probe,
    scan_meld,
    unusable_entry,
)
from selfcross.prepare.pretrained import identity
from selfcross.prepare.settings import PrepareSettings
from selfcross.prepare.steps import (
    SUMMARY_FILE,
    FoldRows,
    check_disk_space,
    check_out_dir,
    final_check,
    frame_name,
    load_inputs,
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
from selfcross.prepare.video import WHOLE
from selfcross.prepare.writer import fold_layout, write_folds
from selfcross.utils.io import write_json_atomic

SHOWN = 10
"""Unusable utterances named on the console (all are in prepare.json and the manifest)."""


def split_count_lines(
    corpus: MeldCorpus, kept: list[MeldUtterance], settings: PrepareSettings
) -> list[str]:
    """Per class id: kept / published utterances of each split and in total, as printed."""
    ours = Counter((u.split, corpus.class_of(u)) for u in kept)
    published = settings.split_counts
    names = list(settings.class_names)
    splits = list(SPLIT_FILES)
    width = 17

    def pair(a: int, b: int | None) -> str:
        return f"{a:>6,} / {b:>6,}" if b is not None else f"{a:>6,} /      -"

    lines = [
        "Utterances per split and class (kept / published):",
        "  id  class     " + "".join(f"{s:>{width}}" for s in [*splits, "total"]),
    ]
    for i, label in enumerate(corpus.classes):
        cells = []
        for s in splits:
            theirs = published[s][i] if s in published and i < len(published[s]) else None
            cells.append(pair(ours[(s, label)], theirs))
        total_theirs = settings.class_counts[i] if i < len(settings.class_counts) else None
        cells.append(pair(sum(ours[(s, label)] for s in splits), total_theirs))
        name = names[i] if i < len(names) else label
        lines.append(f"  {i:<3} {name:<9} " + "".join(f"{c:>{width}}" for c in cells))
    totals = [
        pair(sum(ours[(s, c)] for c in corpus.classes),
             sum(published[s]) if s in published else None)
        for s in splits
    ]  # fmt: skip
    totals.append(pair(len(kept), sum(settings.class_counts)))
    lines.append(f"      {'total':<9} " + "".join(f"{c:>{width}}" for c in totals))
    listed = [sum(corpus.listed[(s, c)] for c in corpus.classes) for s in splits]
    lines.append(
        "Listed in the csv files: "
        + ", ".join(f"{s} {n:,}" for s, n in zip(splits, listed, strict=True))
        + f" (total {sum(listed):,}); dropped as unusable: {len(corpus.unusable):,}"
    )
    return lines


def _reasons(entries: list[dict]) -> str:
    kinds = Counter(e["reason"].split(" (")[0] for e in entries)
    return ", ".join(f"{k}: {n:,}" for k, n in kinds.most_common())


def prepare_meld(settings: PrepareSettings) -> dict:
    """Build ``<out>/fold01`` from MELD.Raw; returns the summary written to ``prepare.json``."""
    started = time.perf_counter()
    warnings: list[str] = []
    check_out_dir(settings)
    corpus = scan_meld(settings.raw, settings.classes, settings.drop_labels, settings.label_ids)
    n_listed = len(corpus.utterances) + len(corpus.unusable)

    def unusable(entry: dict, path) -> None:
        if settings.strict:
            raise DataError(
                path, f"{entry['reason']} ({entry.get('id', 'unlisted')}; strict=true)"
            )
        corpus.unusable.append(entry)

    for entry in list(corpus.unusable):  # duplicate rows, found while reading
        corpus.unusable.remove(entry)
        unusable(entry, entry["clip"])
    if settings.strict and corpus.unlisted:
        first = corpus.unlisted[0]
        raise DataError(first["clip"], f"{first['reason']} lists this clip (strict=true)")

    # Check every input before the long work.
    settings, encoders, encoder, video_key, glove = load_inputs(settings, warnings)
    settings.out.mkdir(parents=True, exist_ok=True)
    audio_folder = cache_folder(settings.cache, "audio", encoders.audio_key(settings))
    video_folder = cache_folder(settings.cache, "video", video_key)

    usable, jobs = [], []
    audio_reused = video_reused = 0
    probe_started = time.perf_counter()
    with progress_bar(settings, desc="clips", total=len(corpus.utterances), unit="clip") as bar:
        for utt in corpus.utterances:
            seconds, problem = probe(utt.clip)
            bar.update(1)
            if problem is not None:
                unusable(unusable_entry(utt, problem), utt.clip)
                continue
            seconds = seconds or csv_seconds(utt)
            if seconds is None:
                unusable(unusable_entry(utt, "has no duration"), utt.clip)
                continue
            usable.append(utt)
            need_audio = not entry_path(audio_folder, utt.id).is_file()
            need_video = not entry_path(video_folder, utt.id).is_file()
            audio_reused += not need_audio
            video_reused += not need_video
            if need_audio or need_video:
                job = UtteranceJob(utt.id, str(utt.clip), 0.0, seconds, WHOLE, need_audio,
                                   need_video, need_frames=True)  # fmt: skip
                jobs.append(DialogJob(utt.id, str(utt.clip), (job,)))
    probe_seconds = time.perf_counter() - probe_started

    layout = fold_layout(settings.shapes, PROSODY_DIM, tuple(settings.encoders), settings.dtype)
    planned = {1: {s: np.flatnonzero([u.split == s for u in usable]) for s in SPLIT_FILES}}
    needed = check_disk_space(settings.out, planned, layout)
    print(
        f"Clips: {len(usable):,} of {n_listed:,} listed are usable; features: audio "
        f"{audio_reused:,} and video {video_reused:,} of {len(usable):,} cached (reused); "
        f"{len(jobs):,} clips to process with {settings.jobs} worker(s), "
        f"{frame_name(settings)} on {encoder.device}",
        flush=True,
    )

    by_id = {u.id: u for u in usable}
    failed: set[str] = set()

    def on_error(utt_id: str, path: str, problem: str) -> None:
        unusable(unusable_entry(by_id[utt_id], problem), path)
        failed.add(utt_id)

    with progress_bar(settings, desc="features", total=len(jobs), unit="clip") as bar:
        stats = extract_features(jobs, encoders.audio_input(settings), settings.frames,
                                 audio_folder, video_folder, encoder, settings.jobs, bar.update,
                                 on_error=on_error, audio_encoder=encoders.audio,
                                 audio_dtype=settings.dtype)  # fmt: skip
    kept = [u for u in usable if u.id not in failed]
    corpus.utterances = kept
    for line in split_count_lines(corpus, kept, settings):
        print(line)
    if corpus.unusable:
        warn(
            f"{len(corpus.unusable):,} listed utterances are unusable and dropped from every "
            f"modality ({_reasons(corpus.unusable)}); all are listed in prepare.json and "
            "fold01/manifest.json",
            warnings,
        )
        for entry in corpus.unusable[:SHOWN]:
            print(f"  dropped {entry['id']}: {entry['clip']}: {entry['reason']}")
        if len(corpus.unusable) > SHOWN:
            print(f"  ... and {len(corpus.unusable) - SHOWN:,} more")
    if corpus.unlisted:
        names = ", ".join(Path(e["clip"]).name for e in corpus.unlisted[:5])
        warn(
            f"{len(corpus.unlisted):,} clips in the clip folders are listed by no csv and are "
            f"not used ({names}{', ...' if len(corpus.unlisted) > 5 else ''})",
            warnings,
        )
    if corpus.repaired:
        print(f"Text: repaired mis-decoded characters in {corpus.repaired:,} utterances")

    text_started = time.perf_counter()
    tokens, vocab, embedding, text_cache = text_inputs(corpus, settings, encoders, glove)
    text_seconds = time.perf_counter() - text_started
    warn_no_prosody(warnings)
    partitions = {1: {s: np.flatnonzero([u.split == s for u in kept]) for s in SPLIT_FILES}}
    print(f"Writing fold01 ({needed / 1e9:.2f} GB at most)", flush=True)
    rows = FoldRows(corpus, settings, tokens, vocab, audio_folder, video_folder, set(), text_cache)
    shared = vocab_json(vocab, embedding)

    def extras(fold: int, parts: dict[str, np.ndarray]) -> dict:
        ids = {s: [kept[i].id for i in parts[s]] for s in parts}
        manifest = {"fold": fold, "dataset": "meld", "split": settings.split,
                    "seed": settings.seed, "classes": list(settings.classes), **ids,
                    "unusable": corpus.unusable, "unlisted": corpus.unlisted}  # fmt: skip
        return {"manifest.json": manifest, **({"vocab.json": shared} if shared else {})}

    matrix = None if embedding is None else embedding.matrix
    write_started = time.perf_counter()
    with progress_bar(settings, desc="fold01", total=len(kept), unit="utt") as bar:
        fold_dirs = write_folds(settings.out, partitions, len(kept), rows, layout,
                                matrix, extras, bar.update)  # fmt: skip
    write_seconds = time.perf_counter() - write_started
    write_utterances(utterance_table(kept, rows), settings)
    checked = final_check(fold_dirs, settings)
    write_folds_manifest(settings, video_key, identity(settings, encoders, encoder, video_key))

    total_seconds = time.perf_counter() - started
    computed = max(stats.n_audio, stats.n_video)
    timing = {
        "probe_seconds": round(probe_seconds, 2),
        "audio_seconds": round(stats.audio_seconds, 2),
        "video_decode_seconds": round(stats.decode_seconds, 2),
        "resnet_seconds": round(stats.resnet_seconds, 2),
        "text_seconds": round(text_seconds, 2),
        "write_seconds": round(write_seconds, 2),
        "total_seconds": round(total_seconds, 2),
    }
    per_split = Counter((u.split, corpus.class_of(u)) for u in kept)
    summary = {
        **provenance(),
        "dataset": "meld",
        "settings": settings_json(settings),
        "shapes": settings.shapes,
        "counts": {
            "per_split": {s: {c: per_split[(s, c)] for c in corpus.classes} for s in SPLIT_FILES},
            "listed": {s: {c: corpus.listed[(s, c)] for c in corpus.classes} for s in SPLIT_FILES},
            "published": {s: list(v) for s, v in settings.split_counts.items()},
            "kept": len(kept),
            "listed_total": n_listed,
            "unusable": len(corpus.unusable),
            "unlisted": len(corpus.unlisted),
            "dropped_labels": dict(corpus.dropped_labels),
        },
        "unusable": corpus.unusable,
        "unlisted": corpus.unlisted,
        "repaired_texts": corpus.repaired,
        "computed": {"audio": stats.n_audio, "video": stats.n_video, "frames": stats.n_frames},
        "reused": {"audio": audio_reused, "video": video_reused},
        "vocabulary": {"size": len(vocab), "oov": len(embedding.oov)} if vocab else None,
        "folds": [f.name for f in fold_dirs],
        "checked": checked,
        "timing": timing,
        "warnings": warnings,
    }
    write_json_atomic(settings.out / SUMMARY_FILE, summary)
    if computed:
        work = stats.audio_seconds + stats.decode_seconds + stats.resnet_seconds
        print(
            f"Computed audio for {stats.n_audio:,} and video for {stats.n_video:,} clips "
            f"({stats.n_frames:,} frames): {1000 * work / computed:.0f} s per 1,000 utterances "
            f"(audio {1000 * stats.audio_seconds / computed:.0f}, decoding "
            f"{1000 * stats.decode_seconds / computed:.0f}, ResNet-101 "
            f"{1000 * stats.resnet_seconds / computed:.0f})"
        )
    print(f"Wrote fold01 ({len(kept):,} utterances) to {settings.out} in {total_seconds:.0f} s")
    return summary


def utterance_table(kept: list[MeldUtterance], rows) -> list[dict]:
    """One entry per kept utterance (``utterances.json``): where it comes from and its sizes."""
    return [
        {
            "id": u.id,
            "split": u.split,
            "dialog": u.dialog,
            "utterance": u.utterance,
            "speaker": u.speaker,
            "season": u.season,
            "episode": u.episode,
            "start": u.start,
            "end": u.end,
            "label": u.label,
            "class_id": int(rows.labels[i]),
            "text": u.text,
            "clip": str(u.clip),
            **{f"n_{k}": v for k, v in rows.lengths[i].items()},
        }
        for i, u in enumerate(kept)
    ]
