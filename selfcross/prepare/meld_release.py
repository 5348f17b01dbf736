"""MELD's public release (``MELD.Raw``) read: csv rows, repaired texts, clips probed.

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

The preparation (:mod:`selfcross.prepare.meld`) lists every dropped utterance and unlisted clip
with its reason.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from selfcross.errors import DataError

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
    """Per class id, how counts name it (its release labels joined by ``+``)."""
    label_ids: dict[str, int]
    """Release Emotion -> class id (a class may keep several)."""
    listed: Counter = field(default_factory=Counter)
    """(split, class) -> rows of the csv files."""
    unusable: list[dict] = field(default_factory=list)
    """{id, split, label, clip, reason} of each dropped utterance."""
    unlisted: list[dict] = field(default_factory=list)
    """{split, clip, reason} of each clip no csv lists."""
    repaired: int = 0
    """Utterances whose text was repaired."""
    dropped_labels: Counter = field(default_factory=Counter)

    def class_id(self, utterance: MeldUtterance) -> int:
        return self.label_ids[utterance.label]

    def class_of(self, utterance: MeldUtterance) -> str:
        """How counts name the utterance's class."""
        return self.classes[self.class_id(utterance)]


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
    path: Path,
    split: str,
    clip_dir: Path,
    classes: tuple[str, ...],
    drop_labels: tuple[str, ...],
    label_ids: dict[str, int] | None = None,
) -> tuple[list[MeldUtterance], list[dict], Counter, int, Counter]:
    """The rows of one split's csv: (utterances, duplicates, listed counts per (split, class),
    repaired texts, dropped labels). ``label_ids``: release Emotion -> class id (default: label
    i of ``classes`` is class i). A missing column, a non-numeric id or an unknown emotion is an
    error."""
    if label_ids is None:
        label_ids = {label: i for i, label in enumerate(classes)}
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
        if label not in label_ids:
            raise DataError(
                path,
                f"line {line}: emotion '{label}' is neither in classes {list(label_ids)} nor in "
                f"drop_labels {list(drop_labels)}",
            )
        listed[(split, classes[label_ids[label]])] += 1
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
    root: str | Path,
    classes: tuple[str, ...],
    drop_labels: tuple[str, ...],
    label_ids: dict[str, int] | None = None,
) -> MeldCorpus:
    """The three csv files and the clip folders (clips are checked later, by :func:`probe`);
    ``label_ids`` as for :func:`read_csv`."""
    if label_ids is None:
        label_ids = {label: i for i, label in enumerate(classes)}
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "no such directory (expected MELD.Raw)")
    if not any((root / csv_name).is_file() for csv_name, _ in SPLIT_FILES.values()):
        raise DataError(root, "holds no train_sent_emo.csv: is it the extracted MELD.Raw?")
    corpus = MeldCorpus(
        root=root, utterances=[], classes=tuple(classes), label_ids=dict(label_ids)
    )
    for split, (csv_name, folder) in SPLIT_FILES.items():
        clip_dir = root / folder
        if not clip_dir.is_dir():
            raise DataError(clip_dir, "clip folder is missing")
        rows, duplicates, listed, repaired, dropped = read_csv(
            root / csv_name, split, clip_dir, corpus.classes, drop_labels, corpus.label_ids
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
        raise DataError(root, f"no utterance labelled with one of {list(label_ids)}")
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
