"""What the preparation prints: counts beside the paper's, warnings, timings."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence

from selfcross.prepare.release import Corpus


def warn(message: str, sink: list[str] | None = None) -> None:
    """One warning line on stderr (and kept for prepare.json)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
    if sink is not None:
        sink.append(message)


def counts(corpus: Corpus) -> dict:
    """Per class, per session and per dropped label: the numbers prepare.json records."""
    per_class = Counter(u.label for u in corpus.utterances)
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


def per_100(seconds: float, n: int) -> str:
    return f"{100 * seconds / n:.1f} s per 100 utterances" if n else "nothing computed"
