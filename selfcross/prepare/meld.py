"""MELD's public release (``MELD.Raw``) prepared as one fold: ``selfcross.prepare dataset=meld``.

Layout read (``raw`` is the extracted ``MELD.Raw``)::

    train_sent_emo.csv  dev_sent_emo.csv  test_sent_emo.csv
        Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,
        StartTime,EndTime   (quoted fields may hold commas and line breaks)
    train_splits/dia<D>_utt<U>.mp4   dev_splits_complete/...   output_repeated_splits_test/...

Each csv row is one utterance; its clip holds its video and its audio track. The official split
is fold01: train, dev and test as the release gives them. An utterance's id is
``<split>-dia<D>_utt<U>`` (dialog numbers restart in each split).

The release is messy, and a long run must neither stop on it nor pass it silently:

- text: characters mis-decoded on the way to the csv are repaired (:data:`REPAIRS`: the C1
  controls that cp1252 puns for punctuation, e.g. U+0092 for an apostrophe, curly quotes and
  dashes, the ellipsis, UTF-8 read as cp1252 such as ``â€™``); any other C1 control is removed;
- clips listed but missing, empty, undecodable, without an audio or a video stream, or without
  one decodable frame: the utterance is dropped from every modality;
- clips in the folders that no csv lists: reported (they carry no label).

Every dropped utterance and unlisted clip is listed with its reason in ``prepare.json`` and in
``fold01/manifest.json`` and summarised on the console; ``strict=true`` makes the first of them an
error naming the file. Features are computed by the IEMOCAP code (:mod:`selfcross.prepare.extract`,
one clip per job, cached per utterance) and written by :mod:`selfcross.prepare.writer`.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import selfcross
from selfcross.errors import DataError
from selfcross.prepare.cache import cache_folder, entry_path
from selfcross.prepare.extract import DialogJob, UtteranceJob, extract_features
from selfcross.prepare.report import warn
from selfcross.prepare.video import WHOLE
from selfcross.utils.io import git_commit, write_json_atomic

SPLIT_FILES = {
    "train": ("train_sent_emo.csv", "train_splits"),
    "dev": ("dev_sent_emo.csv", "dev_splits_complete"),
    "test": ("test_sent_emo.csv", "output_repeated_splits_test"),
}
"""Official split -> (csv file, clip folder) in MELD.Raw."""
COLUMNS = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID", "StartTime",
           "EndTime")  # fmt: skip
"""The csv columns needed (Season and Episode are kept when present, the others not read)."""
CLIP_NAME = re.compile(r"^dia(?P<dialog>\d+)_utt(?P<utt>\d+)\.mp4$")
REPAIRS: dict[str, str] = {
    # UTF-8 text decoded as cp1252 and encoded again (longest first when applied)
    "\u00e2\u20ac\u2122": "'",  # â€™
    "\u00e2\u20ac\u02dc": "'",  # â€˜
    "\u00e2\u20ac\u0153": '"',  # â€œ
    "\u00e2\u20ac\u009d": '"',  # â€ + U+009D
    "\u00e2\u20ac\u00a6": "...",  # â€¦
    "\u00e2\u20ac\u201d": "--",  # â€”
    "\u00e2\u20ac\u201c": "-",  # â€“
    # cp1252 bytes read as Latin-1: C1 controls standing for punctuation
    "\u0091": "'",
    "\u0092": "'",
    "\u0093": '"',
    "\u0094": '"',
    "\u0085": "...",
    "\u0096": "-",
    "\u0097": "--",
    # typographic punctuation -> plain (GloVe's tokens are plain)
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2026": "...",
    "\u2013": "-",
    "\u2014": "--",
    "\u00a0": " ",
}
"""Mis-decoded or typographic character(s) -> replacement (docs/preparing-meld.md)."""
_REPAIR = re.compile("|".join(re.escape(k) for k in sorted(REPAIRS, key=len, reverse=True)))
_C1 = re.compile("[\u0080-\u009f]")
TIME = re.compile(r"^(\d+):(\d\d):(\d\d)[,.](\d{1,3})$")
SHOWN = 10
"""Unusable utterances named on the console (all are in prepare.json and the manifest)."""


def repair_text(text: str) -> tuple[str, int]:
    """(repaired text, number of repairs): :data:`REPAIRS`, then leftover C1 controls removed."""
    n = 0

    def replace(match: re.Match) -> str:
        nonlocal n
        n += 1
        return REPAIRS[match.group(0)]

    text = _REPAIR.sub(replace, text)
    text, removed = _C1.subn("", text)
    return " ".join(text.split()), n + removed


def parse_time(value: str) -> float | None:
    """``HH:MM:SS,mmm`` -> seconds (None when malformed: the times are informative only)."""
    match = TIME.match(value.strip())
    if match is None:
        return None
    h, m, s, ms = match.groups()
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


@dataclass(frozen=True)
class MeldUtterance:
    id: str
    """``<split>-dia<D>_utt<U>``."""
    split: str
    dialog: int
    utterance: int
    speaker: str
    label: str
    text: str
    clip: Path
    line: int
    """The csv line the row starts on."""
    start: str = ""
    end: str = ""
    season: str = ""
    episode: str = ""


@dataclass
class MeldCorpus:
    root: Path
    utterances: list[MeldUtterance]
    """The usable utterances, train then dev then test, each in csv order."""
    classes: tuple[str, ...]
    listed: Counter = field(default_factory=Counter)
    """(split, label) -> rows of the csv files."""
    unusable: list[dict] = field(default_factory=list)
    """{id, split, label, clip, reason} of each dropped utterance."""
    unlisted: list[dict] = field(default_factory=list)
    """{split, clip, reason} of each clip no csv lists."""
    repaired: int = 0
    """Utterances whose text was repaired."""
    dropped_labels: Counter = field(default_factory=Counter)

    def class_id(self, utterance: MeldUtterance) -> int:
        return self.classes.index(utterance.label)


def _decode(path: Path) -> tuple[str, bool]:
    """The file's text and whether it had to be read as cp1252 (not valid UTF-8)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(path, f"cannot be read ({err.strerror})") from None
    try:
        return raw.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace"), True


def read_csv(
    path: Path, split: str, clip_dir: Path, classes: tuple[str, ...], drop_labels: tuple[str, ...]
) -> tuple[list[MeldUtterance], list[dict], Counter, int, Counter]:
    """The rows of one split's csv: (utterances, duplicates, listed counts, repaired texts,
    dropped labels). A missing column, a non-numeric id or an unknown emotion is an error."""
    if not path.is_file():
        raise DataError(path, "csv file is missing (is raw the extracted MELD.Raw?)")
    text, _ = _decode(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(path, f"has no column {', '.join(missing)} (header: {','.join(header)})")
    col = {name: header.index(name) for name in header}
    utterances, duplicates, seen = [], [], set()
    listed, dropped = Counter(), Counter()
    repaired = 0
    while True:
        line = reader.line_num + 1
        row = next(reader, None)
        if row is None:
            break
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise DataError(path, f"line {line}: {len(row)} fields, expected {len(header)}")

        def get(name: str, row=row) -> str:
            return row[col[name]].strip() if name in col else ""

        try:
            dialog, utt = int(get("Dialogue_ID")), int(get("Utterance_ID"))
        except ValueError:
            raise DataError(
                path, f"line {line}: Dialogue_ID/Utterance_ID are not numbers"
            ) from None
        label = get("Emotion").lower()
        if label in drop_labels:
            dropped[label] += 1
            continue
        if label not in classes:
            raise DataError(
                path,
                f"line {line}: emotion '{label}' is neither in classes {list(classes)} nor in "
                f"drop_labels {list(drop_labels)}",
            )
        listed[(split, label)] += 1
        utterance_text, n_repairs = repair_text(get("Utterance"))
        speaker, _ = repair_text(get("Speaker"))
        repaired += n_repairs > 0
        name = f"dia{dialog}_utt{utt}"
        item = MeldUtterance(
            id=f"{split}-{name}", split=split, dialog=dialog, utterance=utt, speaker=speaker,
            label=label, text=utterance_text, clip=clip_dir / f"{name}.mp4", line=line,
            start=get("StartTime"), end=get("EndTime"), season=get("Season"),
            episode=get("Episode"),
        )  # fmt: skip
        if item.id in seen:
            duplicates.append(unusable_entry(item, f"{path.name} line {line} repeats {name}"))
            continue
        seen.add(item.id)
        utterances.append(item)
    return utterances, duplicates, listed, repaired, dropped


def unusable_entry(utt: MeldUtterance, reason: str) -> dict:
    return {"id": utt.id, "split": utt.split, "label": utt.label, "clip": str(utt.clip),
            "reason": reason}  # fmt: skip


def scan_meld(
    root: str | Path, classes: tuple[str, ...], drop_labels: tuple[str, ...]
) -> MeldCorpus:
    """The three csv files and the clip folders (clips are checked later, by :func:`probe`)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "no such directory (expected MELD.Raw)")
    if not any((root / csv_name).is_file() for csv_name, _ in SPLIT_FILES.values()):
        raise DataError(root, "holds no train_sent_emo.csv: is it the extracted MELD.Raw?")
    corpus = MeldCorpus(root=root, utterances=[], classes=tuple(classes))
    for split, (csv_name, folder) in SPLIT_FILES.items():
        clip_dir = root / folder
        if not clip_dir.is_dir():
            raise DataError(clip_dir, "clip folder is missing")
        rows, duplicates, listed, repaired, dropped = read_csv(
            root / csv_name, split, clip_dir, corpus.classes, drop_labels
        )
        corpus.utterances += rows
        corpus.unusable += duplicates
        corpus.listed.update(listed)
        corpus.repaired += repaired
        corpus.dropped_labels.update(dropped)
        names = {u.clip.name for u in rows}
        for clip in sorted(clip_dir.iterdir()):
            if clip.name.startswith(".") or not clip.is_file():
                continue
            if clip.name not in names and CLIP_NAME.match(clip.name):
                corpus.unlisted.append(
                    {"split": split, "clip": str(clip), "reason": f"no row of {csv_name}"}
                )
    if not corpus.utterances:
        raise DataError(root, f"no utterance labelled with one of {list(classes)}")
    return corpus


def probe(clip: Path) -> tuple[float | None, str | None]:
    """(duration in seconds or None, problem or None) of one clip, from its container."""
    import av

    if not clip.is_file():
        return None, "clip is missing"
    if clip.stat().st_size == 0:
        return None, "clip is empty (0 bytes)"
    try:
        with av.open(str(clip)) as container:
            if not container.streams.video:
                return None, "holds no video stream"
            if not container.streams.audio:
                return None, "holds no audio stream"
            if container.duration:
                return container.duration / av.time_base, None
            stream = container.streams.video[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base), None
            return None, None
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as err:
        message = getattr(err, "strerror", None) or str(err) or type(err).__name__
        return None, f"cannot be opened as video ({message.splitlines()[0]})"


def csv_seconds(utt: MeldUtterance) -> float | None:
    start, end = parse_time(utt.start), parse_time(utt.end)
    if start is None or end is None or end <= start:
        return None
    return end - start


def split_count_lines(corpus: MeldCorpus, kept: list[MeldUtterance], settings) -> list[str]:
    """Per class id: kept / published utterances of each split and in total, as printed."""
    ours = Counter((u.split, u.label) for u in kept)
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


def prepare_meld(settings) -> dict:
    """Build ``<out>/fold01`` from MELD.Raw; returns the summary written to ``prepare.json``."""
    from selfcross.prepare.audio import PROSODY_DIM
    from selfcross.prepare.build import (
        SUMMARY_FILE,
        UTTERANCES_FILE,
        FoldRows,
        check_disk_space,
        final_check,
        load_frame_encoder,
        prepare_text,
        progress_bar,
        report_cuts,
        vocab_json,
    )
    from selfcross.prepare.text import check_glove
    from selfcross.prepare.writer import fold_layout, write_folds

    started = time.perf_counter()
    warnings: list[str] = []
    if settings.out.exists() and not settings.out.is_dir():
        raise DataError(settings.out, "exists and is not a directory")
    corpus = scan_meld(settings.raw, settings.classes, settings.drop_labels)
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
    glove = check_glove(settings.glove, settings.text.dim)
    encoder, video_key = load_frame_encoder(settings, warnings)
    settings.out.mkdir(parents=True, exist_ok=True)
    audio_folder = cache_folder(settings.cache, "audio", settings.audio.key())
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

    layout = fold_layout(settings.shapes, PROSODY_DIM)
    planned = {1: {s: np.flatnonzero([u.split == s for u in usable]) for s in SPLIT_FILES}}
    needed = check_disk_space(settings.out, planned, layout)
    print(
        f"Clips: {len(usable):,} of {n_listed:,} listed are usable; features: audio "
        f"{audio_reused:,} and video {video_reused:,} of {len(usable):,} cached (reused); "
        f"{len(jobs):,} clips to process with {settings.jobs} worker(s), ResNet-101 on "
        f"{encoder.device}",
        flush=True,
    )

    by_id = {u.id: u for u in usable}
    failed: set[str] = set()

    def on_error(utt_id: str, path: str, problem: str) -> None:
        unusable(unusable_entry(by_id[utt_id], problem), path)
        failed.add(utt_id)

    with progress_bar(settings, desc="features", total=len(jobs), unit="clip") as bar:
        stats = extract_features(jobs, settings.audio, settings.frames, audio_folder,
                                 video_folder, encoder, settings.jobs, bar.update,
                                 on_error=on_error)  # fmt: skip
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
    tokens, vocab, embedding = prepare_text(corpus, settings, glove)
    text_seconds = time.perf_counter() - text_started
    warn(
        f"prosody features are not computed: {{split}}_audio_prosody.npy holds zeros [N, "
        f"{PROSODY_DIM}] (the paper's models do not use them)",
        warnings,
    )
    partitions = {1: {s: np.flatnonzero([u.split == s for u in kept]) for s in SPLIT_FILES}}
    print(f"Writing fold01 ({needed / 1e9:.2f} GB at most)", flush=True)
    rows = FoldRows(corpus, settings, tokens, vocab, audio_folder, video_folder, set())
    shared = vocab_json(vocab, embedding)

    def extras(fold: int, parts: dict[str, np.ndarray]) -> dict:
        ids = {s: [kept[i].id for i in parts[s]] for s in parts}
        manifest = {"fold": fold, "dataset": "meld", "split": settings.split,
                    "seed": settings.seed, "classes": list(settings.classes), **ids,
                    "unusable": corpus.unusable, "unlisted": corpus.unlisted}  # fmt: skip
        return {"manifest.json": manifest, "vocab.json": shared}

    write_started = time.perf_counter()
    with progress_bar(settings, desc="fold01", total=len(kept), unit="utt") as bar:
        fold_dirs = write_folds(settings.out, partitions, len(kept), rows, layout,
                                embedding.matrix, extras, bar.update)  # fmt: skip
    write_seconds = time.perf_counter() - write_started
    utterances = utterance_table(kept, rows)
    write_json_atomic(settings.out / UTTERANCES_FILE, utterances)
    report_cuts(utterances, settings)
    checked = final_check(fold_dirs, settings)

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
    per_split = Counter((u.split, u.label) for u in kept)
    summary = {
        "version": selfcross.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "dataset": "meld",
        "settings": json.loads(json.dumps(asdict(settings), default=str)),
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
        "vocabulary": {"size": len(vocab), "oov": len(embedding.oov)},
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
