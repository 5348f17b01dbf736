"""The official IEMOCAP release read: sessions, dialogs, labelled utterances, their files and
counts.

Layout read (``raw`` is ``IEMOCAP_full_release``)::

    SessionN/dialog/EmoEvaluation/<dialog>.txt   [start - end] TAB id TAB label TAB [V, A, D]
    SessionN/dialog/transcriptions/<dialog>.txt  <utterance id> [start-end]: text
    SessionN/sentences/wav/<dialog>/<utterance id>.wav
    SessionN/dialog/avi/DivX/<dialog>.avi

Only the category line of each utterance in ``EmoEvaluation`` is read (the evaluators' lines
below it are skipped). Files whose names start with ``.`` (macOS ``._*`` copies in the release)
are ignored.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from selfcross.errors import DataError

LABEL_LINE = re.compile(
    r"^\[\s*(?P<start>\d+(?:\.\d*)?)\s*-\s*(?P<end>\d+(?:\.\d*)?)\s*\]\s+(?P<id>\S+)\s+"
    r"(?P<label>\S+)\s+\[(?P<vad>[^\]]*)\]"
)
TRANSCRIPT_LINE = re.compile(
    r"^(?P<id>\S+)\s+\[\s*(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\s*\]:\s?(?P<text>.*)$"
)
DIALOG_NAME = re.compile(r"^Ses\d\d[FM]_\S+$")


@dataclass(frozen=True)
class Utterance:
    """One labelled utterance of the release."""

    id: str
    session: int
    dialog: str
    start: float
    """Seconds from the start of the dialog's recording."""
    end: float
    label: str
    text: str

    @property
    def speaker(self) -> str:
        """``F`` or ``M``: the first letter of the id's last part (Ses01F_impro01_M013 -> M)."""
        return self.id.rsplit("_", 1)[1][0]


@dataclass
class Corpus:
    """The kept utterances (in release order) and what was dropped or missing."""

    root: Path
    utterances: list[Utterance]
    classes: tuple[str, ...]
    """Per class id, how counts name it (its release labels joined by ``+``)."""
    label_ids: dict[str, int]
    """Release label -> class id (a class may keep several labels)."""
    dropped: Counter = field(default_factory=Counter)
    """Dropped label -> count."""
    dropped_per_session: dict[int, int] = field(default_factory=dict)
    no_transcript: list[str] = field(default_factory=list)
    """Kept utterance ids with no transcription line (their text is empty)."""

    def class_id(self, utterance: Utterance) -> int:
        return self.label_ids[utterance.label]

    def dialogs(self) -> dict[str, list[Utterance]]:
        out: dict[str, list[Utterance]] = {}
        for utt in self.utterances:
            out.setdefault(utt.dialog, []).append(utt)
        return out

    def session_dir(self, session: int) -> Path:
        return self.root / f"Session{session}"

    def wav_path(self, utt: Utterance) -> Path:
        return self.session_dir(utt.session) / "sentences" / "wav" / utt.dialog / f"{utt.id}.wav"

    def video_path(self, session: int, dialog: str) -> Path:
        return self.session_dir(session) / "dialog" / "avi" / "DivX" / f"{dialog}.avi"


def read_labels(path: Path) -> list[tuple[str, float, float, str]]:
    """(utterance id, start, end, label) for each category line of one EmoEvaluation file."""
    out = []
    for number, line in enumerate(_lines(path), start=1):
        if not line.startswith("["):
            continue
        match = LABEL_LINE.match(line)
        if match is None:
            raise DataError(
                path, f"line {number}: not a label line '[start - end] id label [V, A, D]'"
            )
        start, end = float(match["start"]), float(match["end"])
        if end <= start:
            raise DataError(path, f"line {number}: utterance {match['id']} ends before it starts")
        out.append((match["id"], start, end, match["label"]))
    return out


def read_transcript(path: Path) -> dict[str, str]:
    """Utterance id -> text; lines without ``id [start-end]:`` are not utterances and skipped."""
    out = {}
    for line in _lines(path):
        match = TRANSCRIPT_LINE.match(line)
        if match is not None:
            out[match["id"]] = match["text"].strip()
    return out


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise DataError(path, f"cannot be read ({err.strerror})") from None


def scan_release(
    root: str | Path,
    sessions: list[int],
    classes: tuple[str, ...],
    drop_labels: tuple[str, ...],
    label_ids: dict[str, int] | None = None,
) -> Corpus:
    """Read labels and transcripts of ``sessions``; keep the labels of ``label_ids`` (release
    label -> class id; default: label i of ``classes`` is class i), drop ``drop_labels``.

    A label in neither stops with an error naming the file: a silent drop could hide a
    mistyped class list.
    """
    if label_ids is None:
        label_ids = {label: i for i, label in enumerate(classes)}
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "no such directory (expected IEMOCAP_full_release)")
    if not any((root / f"Session{n}").is_dir() for n in range(1, 6)):
        raise DataError(root, "holds no Session1..Session5 folder: is it IEMOCAP_full_release?")
    corpus = Corpus(root=root, utterances=[], classes=tuple(classes), label_ids=dict(label_ids))
    seen: set[str] = set()
    for session in sessions:
        session_dir = corpus.session_dir(session)
        if not session_dir.is_dir():
            raise DataError(session_dir, f"session folder is missing (sessions={list(sessions)})")
        label_dir = session_dir / "dialog" / "EmoEvaluation"
        label_files = sorted(
            p
            for p in label_dir.glob("*.txt")
            if not p.name.startswith(".") and DIALOG_NAME.match(p.stem)
        )
        if not label_files:
            raise DataError(label_dir, "holds no <dialog>.txt label file")
        corpus.dropped_per_session[session] = 0
        for label_file in label_files:
            dialog = label_file.stem
            transcript_file = session_dir / "dialog" / "transcriptions" / f"{dialog}.txt"
            if not transcript_file.is_file():
                raise DataError(transcript_file, "transcription file is missing")
            texts = read_transcript(transcript_file)
            for utt_id, start, end, label in read_labels(label_file):
                _check_id(label_file, utt_id, dialog, seen)
                if label in drop_labels:
                    corpus.dropped[label] += 1
                    corpus.dropped_per_session[session] += 1
                    continue
                if label not in label_ids:
                    raise DataError(
                        label_file,
                        f"utterance {utt_id} has label '{label}', neither in classes "
                        f"{list(label_ids)} nor in drop_labels {list(drop_labels)}",
                    )
                if utt_id not in texts:
                    corpus.no_transcript.append(utt_id)
                corpus.utterances.append(
                    Utterance(utt_id, session, dialog, start, end, label, texts.get(utt_id, ""))
                )
    if not corpus.utterances:
        raise DataError(root, f"no utterance labelled with one of {list(label_ids)}")
    return corpus


def _check_id(path: Path, utt_id: str, dialog: str, seen: set[str]) -> None:
    if not utt_id.startswith(dialog + "_") or utt_id.rsplit("_", 1)[1][:1] not in ("F", "M"):
        raise DataError(path, f"utterance id {utt_id} does not look like {dialog}_<F|M><number>")
    if utt_id in seen:
        raise DataError(path, f"utterance {utt_id} is labelled twice")
    seen.add(utt_id)


def counts(corpus: Corpus) -> dict:
    """Per class, per session and per dropped label: the numbers prepare.json records."""
    per_class = Counter(corpus.classes[corpus.class_id(u)] for u in corpus.utterances)
    per_session = Counter(u.session for u in corpus.utterances)
    return {
        "per_class": {c: per_class[c] for c in corpus.classes},
        "per_session": {
            f"Session{s}": {"kept": per_session[s], "dropped": corpus.dropped_per_session[s]}
            for s in sorted(corpus.dropped_per_session)
        },
        "dropped_labels": dict(corpus.dropped.most_common()),
        "kept": len(corpus.utterances),
        "dropped": sum(corpus.dropped.values()),
    }


def print_counts(corpus: Corpus, class_names: Sequence[str], published: Sequence[int]) -> None:
    """Utterances per class beside the dataset's ``published`` counts (data.class_counts)."""
    numbers = counts(corpus)
    paper = len(corpus.classes) == len(published)
    names = class_names if paper else corpus.classes
    print("Utterances per class (ours / the paper's, all five sessions):")
    for i, label in enumerate(corpus.classes):
        theirs = f"{published[i]:>6,}" if paper else "     -"
        ours = numbers["per_class"][label]
        print(f"  {i}  {label}  {names[i]:<11} {ours:>6,} / {theirs}")
    total = f"{sum(published):>6,}" if paper else "     -"
    print(f"        {'total':<11} {numbers['kept']:>6,} / {total}")
    sessions = ", ".join(
        f"{name} {v['kept']:,} kept, {v['dropped']:,} dropped"
        for name, v in numbers["per_session"].items()
    )
    print(f"Per session: {sessions}")
    dropped = ", ".join(f"{k} {v:,}" for k, v in numbers["dropped_labels"].items()) or "none"
    print(f"Dropped labels: {dropped} (total {numbers['dropped']:,})")
