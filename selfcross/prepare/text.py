"""Text: tokens of a transcript, the vocabulary, and its GloVe rows (``W_embedding``).

Tokenisation: lower-case, then words (letters, digits, inner apostrophes) and runs of one
punctuation character (``...``, ``--``); English clitics are split off as GloVe's tokeniser does
(``don't`` -> ``do n't``, ``i'm`` -> ``i 'm``). Bracketed transcription markers such as
``[LAUGHTER]`` stay as ``[ laughter ]`` unless ``drop_markers`` is set.

Vocabulary: id 0 is padding; the tokens of all kept utterances follow by decreasing frequency
(ties alphabetical). GloVe rows: the exact token if the file has it, else the first (most
frequent) entry that matches case-insensitively (glove.840B is cased); a token found in neither
way is out of vocabulary and gets ``oov``: ``random`` draws uniform(-oov_scale, oov_scale) values
from a generator seeded by ``seed`` and the token itself (so a word's vector does not depend on
the rest of the vocabulary), ``zeros`` leaves the row at zero. Row 0 (padding) is zero.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from selfcross.errors import ConfigError, DataError

PAD = "<pad>"
MARKER = re.compile(r"\[[^\]]*\]")
TOKEN = re.compile(r"\w+(?:'\w+)*|([^\w\s])\1*")
CLITIC = re.compile(r"^(?P<stem>\w+)(?P<clitic>'s|'m|'re|'ve|'ll|'d)$")
OOV_MODES = ("random", "zeros")
DIM_PROBE_LINES = 50
"""Lines read to learn the file's vector size (tokens with spaces make single lines longer)."""
PROGRESS_LINES = 20000


@dataclass(frozen=True)
class TextSettings:
    dim: int = 300
    drop_markers: bool = False
    oov: str = "random"
    oov_scale: float = 0.25
    seed: int = 0

    def __post_init__(self):
        if self.oov not in OOV_MODES:
            raise ConfigError(f"text.oov={self.oov}: expected one of {', '.join(OOV_MODES)}")


def tokenize(text: str, drop_markers: bool = False) -> list[str]:
    """Lower-cased words and punctuation of one transcript line."""
    text = text.lower()
    if drop_markers:
        text = MARKER.sub(" ", text)
    tokens = []
    for match in TOKEN.finditer(text):
        token = match.group(0)
        if token.endswith("n't") and len(token) > 3:
            tokens += [token[:-3], "n't"]
            continue
        clitic = CLITIC.match(token)
        tokens += [clitic["stem"], clitic["clitic"]] if clitic else [token]
    return tokens


@dataclass
class Vocabulary:
    tokens: list[str]
    """Token of each id; ``tokens[0]`` is padding."""
    counts: list[int]

    @classmethod
    def build(cls, sentences: list[list[str]]) -> Vocabulary:
        counts = Counter(t for s in sentences for t in s)
        ordered = sorted(counts, key=lambda t: (-counts[t], t))
        return cls([PAD, *ordered], [0, *(counts[t] for t in ordered)])

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, tokens: list[str], length: int) -> np.ndarray:
        """[length] int64 token ids, cut or padded with 0."""
        index = self.index
        out = np.zeros(length, dtype=np.int64)
        kept = [index[t] for t in tokens[:length]]
        out[: len(kept)] = kept
        return out

    @cached_property
    def index(self) -> dict[str, int]:
        """Token -> id."""
        return {t: i for i, t in enumerate(self.tokens)}

    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.tokens).encode()).hexdigest()[:16]


@dataclass
class Embedding:
    matrix: np.ndarray
    """[V, dim] float32; row 0 zero."""
    source: list[str | None]
    """Per id, the GloVe token whose vector the row holds (None: padding or out of vocabulary)."""

    @property
    def oov(self) -> list[int]:
        return [i for i, s in enumerate(self.source) if s is None and i != 0]


def glove_dim(path: Path) -> int:
    """The vector size of a GloVe text file, from its first lines (fields after the token)."""
    sizes = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle):
            if number >= DIM_PROBE_LINES:
                break
            fields = line.rstrip(b"\r\n").split(b" ")
            if number == 0 and len(fields) == 2 and all(f.isdigit() for f in fields):
                continue  # a word2vec-style header "<count> <dim>"
            sizes.append(len(fields) - 1)
    if not sizes or min(sizes) < 1:
        raise DataError(path, "is empty or not a GloVe text file ('token v1 v2 ... vD' lines)")
    return min(sizes)


def check_glove(path: str | Path, dim: int) -> Path:
    """The GloVe file, after checking it exists and holds ``dim``-dimensional vectors."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "GloVe file is missing")
    found = glove_dim(path)
    if found != dim:
        raise DataError(
            path,
            f"holds {found}-dimensional vectors, expected {dim} (text.dim; glove.840B.300d "
            "has 300)",
        )
    return path


def read_glove_rows(path: Path, wanted: set[str], dim: int, progress=None) -> dict:
    """GloVe vectors of ``wanted`` tokens: {token: (glove token, [dim] float32)}.

    One pass over the file; only lines whose first word matches a wanted token
    case-insensitively are parsed. The vector is the last ``dim`` fields of a line, since a few
    GloVe tokens contain spaces. Exact matches win over case-insensitive ones; among the latter
    the first line (GloVe files are sorted by frequency) wins.
    """
    exact: dict[str, np.ndarray] = {}
    folded: dict[str, tuple[str, np.ndarray]] = {}
    unreported = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            unreported += len(raw)
            if progress is not None and number % PROGRESS_LINES == 0:
                progress(unreported)
                unreported = 0
            head = raw[: raw.find(b" ")].decode("utf-8", errors="replace")
            lower = head.lower()
            if lower not in wanted or lower in exact or (head != lower and lower in folded):
                continue
            fields = raw.rstrip(b"\r\n").rsplit(b" ", dim)
            token = fields[0].decode("utf-8", errors="replace")
            if token.lower() != lower or (token != lower and lower in folded):
                continue  # a token with spaces whose first word looked like a wanted one
            try:
                vector = np.array([float(x) for x in fields[1:]], dtype=np.float32)
            except ValueError:
                vector = np.empty(0)
            if vector.shape != (dim,) or not np.isfinite(vector).all():
                raise DataError(path, f"line {number}: expected '{token}' and {dim} numbers")
            if token == lower:
                exact[lower] = vector
            else:
                folded[lower] = (token, vector)
    if progress is not None:
        progress(unreported)
    out = {t: (t, v) for t, v in exact.items()}
    for lower, (token, vector) in folded.items():
        out.setdefault(lower, (token, vector))
    return out


def oov_vector(token: str, settings: TextSettings) -> np.ndarray:
    if settings.oov == "zeros":
        return np.zeros(settings.dim, np.float32)
    token_seed = int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "little")
    rng = np.random.default_rng([settings.seed, token_seed])
    return rng.uniform(-settings.oov_scale, settings.oov_scale, settings.dim).astype(np.float32)


def build_embedding(
    vocab: Vocabulary, glove: Path, settings: TextSettings, cache_dir: Path, progress=None
) -> tuple[Embedding, bool]:
    """``W_embedding`` for ``vocab``; returns (embedding, whether it came from the cache).

    The GloVe pass over a 5.6 GB file takes minutes, so its result is cached, keyed by the
    file (path, size, modification time), the vocabulary and the settings.
    """
    stat = glove.stat()
    key = {
        "glove": str(glove.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "vocab": vocab.digest(),
        **asdict(settings),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cached = cache_dir / f"embedding-{digest}.npz"
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as data:
                matrix, source = data["matrix"], data["source"].tolist()
            if matrix.shape == (len(vocab), settings.dim):
                return Embedding(matrix, [s or None for s in source]), True
        except (OSError, ValueError, KeyError):
            pass  # unreadable: rebuild it
    rows = read_glove_rows(glove, set(vocab.tokens[1:]), settings.dim, progress)
    matrix = np.zeros((len(vocab), settings.dim), np.float32)
    source: list[str | None] = [None]
    for i, token in enumerate(vocab.tokens[1:], start=1):
        if token in rows:
            glove_token, matrix[i] = rows[token]
            source.append(glove_token)
        else:
            matrix[i] = oov_vector(token, settings)
            source.append(None)
    from selfcross.prepare.cache import save_npz_atomic

    save_npz_atomic(cached, matrix=matrix, source=np.array([s or "" for s in source]))
    return Embedding(matrix, source), False
