"""Synthetic IEMOCAP-like folds, written in exactly the processed fold format.

The generator exists so that everything downstream (reader, models, sweeps, tables) runs and is
tested without the licensed corpus. It reproduces the properties that matter to the experiment:

* IEMOCAP's 7-class proportions (``data.class_counts``; the ``paper`` preset has exactly its
  7,487 utterances);
* zero-padded sequences with variable valid lengths, and some utterances without video;
* a class signal spread over the three modalities. Each modality sees the classes through its
  own grouping (text: valence-like, audio: arousal-like, vision: a third view): classes in the
  same group look alike in that modality, and in a share of utterances a modality carries
  evidence of a wrong class. No single modality separates all seven classes, but their
  combination does, so fusion helps and the tri-modal model beats every uni-modal one.

Every utterance is generated from ``(seed, utterance index)`` alone, so a fold only re-partitions
the same utterances; folds are written only when asked for, atomically, and reused while the
parameters (recorded in ``synthetic.json``) stay the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock

from selfcross.data.npy import EMBEDDING_FILE, SPLITS, fold_dir, split_file
from selfcross.manifest import SHAPE_KEYS, FoldsManifest, write_manifest
from selfcross.utils import atomic
from selfcross.utils.io import writable_dir

log = logging.getLogger(__name__)

SPLIT_RATIOS = (8.0, 0.5, 1.5)
PROSODY_DIM = 35
FORMAT_VERSION = 1
DATA_SETTING = "data.root (paths.data_dir, or the SELFCROSS_DATA_DIR environment variable)"
"""Where a run's error sends the user when the synthetic folds cannot be written."""
BLOCK = 128
"""Utterances generated per random stream; fixed so that data never depend on fold choice."""

# Which classes look alike in each modality (IEMOCAP's class ids, as in conf/data/iemocap.yaml).
# Text tells valence apart, audio arousal, vision a third grouping; any two of them together
# separate most pairs and all three separate every pair.
CLASS_GROUPS = {
    "T": ((0, 4), (1, 2), (3,), (5, 6)),
    "A": ((0, 1, 5), (2, 4), (3, 6)),
    "V": ((0, 3, 4), (1, 5), (2, 6)),
}
LATENT_DIM = 8
SYNTHETIC_SPLITS = ("random", "session")
N_SESSIONS = 5
"""Sessions of a ``split=session`` corpus, two speakers each (F and M), as IEMOCAP's."""

PAPER_SHAPES = {
    "T": {"seq_len": 128, "feat_dim": 300},
    "V": {"seq_len": 32, "feat_dim": 2048},
    "A": {"seq_len": 1000, "feat_dim": 120},
}


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines the generated files; its digest names a data version."""

    class_counts: tuple[int, ...]
    """Utterances per class id in the whole corpus (``data.class_counts``): the class sizes,
    scaled to ``n_utterances``. One per class of CLASS_GROUPS."""
    n_utterances: int = 2500
    shapes: dict = field(default_factory=lambda: PAPER_SHAPES)
    vocab_size: int = 400
    seed: int = 0
    zero_video_rate: float = 0.03
    """Share of utterances whose video has length 0 (dropped by the reader by default)."""
    corruption: float = 0.3
    """Per modality, the share of utterances whose evidence points at a random class."""
    within_group: float = 0.6
    """How far classes of one group are apart in a modality, relative to groups (0: identical)."""
    noise: float = 0.6
    """Per-utterance nuisance in the latent evidence: the main difficulty knob."""
    latent_of: tuple[int, ...] | None = None
    """Per class id written, the generator's class (of CLASS_GROUPS) whose evidence its
    utterances show; None: the identity. A MELD-like preset shows IEMOCAP's partner classes
    (anger as angry, joy as happy, ...), so that a model of one scores on the other."""
    split: str = "random"
    """``random``: stratified 8 : 0.5 : 1.5 folds; ``session``: leave one of five sessions out
    (fold k tests session k; dev: a stratified share of the other sessions)."""

    # Fields added after FORMAT_VERSION 1 enter the digest only when set: the presets without
    # them keep their digest (and their cached folds, byte for byte).
    NEW_FIELDS = ("latent_of", "split")

    def __post_init__(self):
        object.__setattr__(self, "class_counts", tuple(int(c) for c in self.class_counts))
        n_classes = 1 + max(c for groups in CLASS_GROUPS.values() for g in groups for c in g)
        if self.latent_of is not None:
            latent = tuple(int(c) for c in self.latent_of)
            object.__setattr__(self, "latent_of", latent)
            if sorted(latent) != list(range(n_classes)):
                raise ValueError(f"latent_of={list(latent)}: expected an order of the "
                                 f"generator's {n_classes} classes")  # fmt: skip
        if self.split not in SYNTHETIC_SPLITS:
            raise ValueError(f"split={self.split!r}: expected {' or '.join(SYNTHETIC_SPLITS)}")
        if len(self.class_counts) != n_classes:
            raise ValueError(
                f"class_counts={list(self.class_counts)}: the generator has {n_classes} classes"
            )

    def digest(self) -> str:
        fields = asdict(self)
        for name in self.NEW_FIELDS:
            if fields[name] == SyntheticSpec.__dataclass_fields__[name].default:
                del fields[name]
        payload = json.dumps({"format": FORMAT_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def class_counts(published, n_utterances: int) -> np.ndarray:
    """The ``published`` class sizes scaled to ``n_utterances`` (exact at their sum)."""
    counts = np.asarray(published, dtype=np.float64)
    scaled = counts / counts.sum() * n_utterances
    out = np.floor(scaled).astype(np.int64)
    out[np.argsort(scaled - out)[::-1][: n_utterances - out.sum()]] += 1
    return out


def _labels(spec: SyntheticSpec) -> np.ndarray:
    rng = np.random.default_rng([spec.seed, 1])
    counts = class_counts(spec.class_counts, spec.n_utterances)
    labels = np.repeat(np.arange(len(spec.class_counts)), counts)
    return rng.permutation(labels)


def speakers(spec: SyntheticSpec, n: int) -> np.ndarray:
    """The speaker of each utterance of a ``split=session`` corpus: ``2 * (session - 1) +
    {0: F, 1: M}``, drawn from ``(seed, 5)`` alone (sessions of near-equal size)."""
    rng = np.random.default_rng([spec.seed, 5])
    return rng.permutation(np.arange(n) % (2 * N_SESSIONS))


def speaker_name(speaker: int) -> str:
    return f"Ses{speaker // 2 + 1:02d}{'FM'[speaker % 2]}"


def fold_partition(labels: np.ndarray, spec: SyntheticSpec, fold: int) -> dict[str, np.ndarray]:
    """Train/dev/test indices of one fold, sorted: stratified 8 : 0.5 : 1.5 (``random``), or
    session ``fold`` as the test split and a stratified dev share of the other sessions
    (``session``)."""
    if spec.split == "session":
        session = speakers(spec, len(labels)) // 2 + 1
        test = np.flatnonzero(session == fold)
        rest = np.flatnonzero(session != fold)
        rng = np.random.default_rng([spec.seed, 6, fold])
        share = SPLIT_RATIOS[1] / (SPLIT_RATIOS[0] + SPLIT_RATIOS[1])
        dev = [rng.permutation(rest[labels[rest] == c])[: max(1, round(share * (labels[rest]
               == c).sum()))] for c in range(len(spec.class_counts))]  # fmt: skip
        dev = np.sort(np.concatenate(dev))
        return {"train": np.setdiff1d(rest, dev), "dev": dev, "test": test}
    rng = np.random.default_rng([spec.seed, 2, fold])
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    ratios = np.asarray(SPLIT_RATIOS) / sum(SPLIT_RATIOS)
    for c in range(len(spec.class_counts)):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_dev = max(1, round(ratios[1] * len(members)))
        n_test = max(1, round(ratios[2] * len(members)))
        parts["test"].append(members[:n_test])
        parts["dev"].append(members[n_test : n_test + n_dev])
        parts["train"].append(members[n_test + n_dev :])
    return {s: np.sort(np.concatenate(parts[s])) for s in SPLITS}


class _Signal:
    """The fixed random structure shared by all utterances: prototypes and projections."""

    def __init__(self, spec: SyntheticSpec):
        rng = np.random.default_rng([spec.seed, 3])
        n_classes = len(spec.class_counts)
        self.latent: dict[str, np.ndarray] = {}
        for modality, groups in CLASS_GROUPS.items():
            group_of = np.empty(n_classes, dtype=np.int64)
            for g, members in enumerate(groups):
                group_of[list(members)] = g
            protos = _unit(rng.standard_normal((len(groups), LATENT_DIM)))
            offsets = _unit(rng.standard_normal((n_classes, LATENT_DIM))) * spec.within_group
            self.latent[modality] = protos[group_of] + offsets  # [C, r]
        self.project = {
            m: rng.standard_normal((LATENT_DIM, spec.shapes[m]["feat_dim"])) / np.sqrt(LATENT_DIM)
            for m in ("A", "V")
        }
        vocab, dim = spec.vocab_size, spec.shapes["T"]["feat_dim"]
        self.embedding = (rng.standard_normal((vocab, dim)) * 0.4).astype(np.float32)
        # Text: each word's embedding leans towards one latent direction, so a bag of words
        # carries the same kind of evidence as the audio and video frames. Id 0 is padding: no
        # token draws it (tokens are drawn from word_latent[1:]) and its embedding is zero.
        word_latent = _unit(rng.standard_normal((vocab, LATENT_DIM)))
        self.word_latent = word_latent
        self.embedding += (word_latent @ rng.standard_normal((LATENT_DIM, dim)) * 0.4).astype(
            np.float32
        )
        self.embedding[0] = 0.0


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _lengths(rng, n: int, seq_len: int, low: float) -> np.ndarray:
    return rng.integers(max(1, int(low * seq_len)), seq_len + 1, size=n)


def _generate_block(spec: SyntheticSpec, signal: _Signal, labels: np.ndarray, block: int):
    """Features of utterances ``block*BLOCK ...``: one random stream per block."""
    rng = np.random.default_rng([spec.seed, 4, block])
    n = len(labels)
    n_classes = len(spec.class_counts)
    out: dict[str, np.ndarray] = {}

    def evidence(modality: str) -> np.ndarray:
        shown = labels.copy()
        wrong = rng.random(n) < spec.corruption
        shown[wrong] = rng.integers(0, n_classes, size=int(wrong.sum()))
        z = signal.latent[modality][shown]
        return z + spec.noise * rng.standard_normal(z.shape)  # [n, r]

    for modality, low in (("A", 0.3), ("V", 0.3)):
        seq_len = spec.shapes[modality]["seq_len"]
        dim = spec.shapes[modality]["feat_dim"]
        lengths = _lengths(rng, n, seq_len, low)
        if modality == "V":
            lengths[rng.random(n) < spec.zero_video_rate] = 0
        mean = evidence(modality) @ signal.project[modality]  # [n, D]
        frames = rng.standard_normal((n, seq_len, dim), dtype=np.float32)
        frames += mean[:, None, :].astype(np.float32)
        frames *= (np.arange(seq_len)[None, :] < lengths[:, None])[..., None]
        if modality == "A":
            # MFCC-like scale and offset, so that standardisation has something to do.
            frames *= 4.0
            frames += 2.0 * (np.arange(seq_len)[None, :] < lengths[:, None])[..., None]
        out[modality], out[f"{modality}_len"] = frames, lengths

    seq_len = spec.shapes["T"]["seq_len"]
    lengths = _lengths(rng, n, seq_len, 0.2)
    z = evidence("T")  # [n, r]
    # Each token is drawn with probability rising with its word's agreement with z.
    scores = z @ signal.word_latent[1:].T * 2.0  # [n, V-1]
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    cdf = np.cumsum(probs, axis=1)
    draws = rng.random((n, seq_len))
    ids = np.stack([np.searchsorted(cdf[i], draws[i]) for i in range(n)])
    ids = np.minimum(ids, spec.vocab_size - 2) + 1
    ids *= np.arange(seq_len)[None, :] < lengths[:, None]
    out["T"] = ids.astype(np.int64)
    out["prosody"] = rng.standard_normal((n, PROSODY_DIM)).astype(np.float32)
    return out


def _write_fold(directory: Path, spec: SyntheticSpec, fold: int) -> None:
    labels = _labels(spec)
    parts = fold_partition(labels, spec, fold)
    signal = _Signal(spec)
    where = np.empty(len(labels), dtype=np.int64)  # split id of each utterance
    row = np.empty(len(labels), dtype=np.int64)  # its row in that split's files
    for s, split in enumerate(SPLITS):
        where[parts[split]] = s
        row[parts[split]] = np.arange(len(parts[split]))

    sh = spec.shapes
    layouts = {
        "audio_mfcc": ((sh["A"]["seq_len"], sh["A"]["feat_dim"]), np.float32, "A"),
        "audio_seqN": ((), np.int64, "A_len"),
        "audio_prosody": ((PROSODY_DIM,), np.float32, "prosody"),
        "video": ((sh["V"]["seq_len"], sh["V"]["feat_dim"]), np.float32, "V"),
        "video_seqN": ((), np.int64, "V_len"),
        "nlp_trans": ((sh["T"]["seq_len"],), np.int64, "T"),
        "label": ((), np.int64, None),
    }
    files = {
        (split, stem): atomic.open_memmap(
            split_file(directory, split, stem), dtype=dtype, shape=(len(parts[split]), *shape)
        )
        for split in SPLITS
        for stem, (shape, dtype, _) in layouts.items()
    }
    shown = labels if spec.latent_of is None else np.asarray(spec.latent_of)[labels]
    for block, start in enumerate(range(0, len(labels), BLOCK)):
        block_labels = labels[start : start + BLOCK]
        feats = _generate_block(spec, signal, shown[start : start + BLOCK], block)
        feats["label"] = block_labels
        for s, split in enumerate(SPLITS):
            mine = np.flatnonzero(where[start : start + BLOCK] == s)
            if len(mine) == 0:
                continue
            rows = row[start + mine]
            for stem, (_, _, key) in layouts.items():
                files[(split, stem)][rows] = feats[key or "label"][mine]
    for array in files.values():
        array.flush()
    del files
    atomic.save_npy(directory / EMBEDDING_FILE, signal.embedding)
    if spec.split == "session":  # the utterance ids, which name each utterance's speaker
        who = speakers(spec, len(labels))
        ids = {s: [f"{speaker_name(who[i])}_{i:05d}" for i in parts[s]] for s in SPLITS}
        atomic.write_json(directory / "manifest.json",
                          {**ids, "split": "session", "seed": spec.seed})  # fmt: skip


def ensure_synthetic(
    root: str | Path,
    folds,
    spec: SyntheticSpec,
    class_names: Sequence[str] | None = None,
    n_folds: int | None = None,
) -> Path:
    """Write the requested folds under ``root`` unless they exist for the same ``spec``.

    Safe when several runs ask at once (a file lock serialises them) and when a run is killed
    mid-write (a fold directory appears only once complete). Given the ``class_names`` of the
    class ids and the ``n_folds`` the data offers, the root's manifest (``dataset.json``) is
    written too; the fold files do not depend on it.
    """
    root = Path(root)
    meta_path = root / "synthetic.json"
    meta = {"digest": spec.digest(), "format": FORMAT_VERSION, "spec": asdict(spec)}
    writable_dir(root, DATA_SETTING)
    with FileLock(root / ".lock"):
        if meta_path.is_file():
            try:
                old = json.loads(meta_path.read_text())
            except (OSError, json.JSONDecodeError):
                old = {}
            if old.get("digest") != meta["digest"]:
                log.info("Synthetic data parameters changed: regenerating %s", root)
                for stale in root.glob("fold*"):
                    shutil.rmtree(stale)
        atomic.write_json(meta_path, meta)
        for fold in folds:
            target = fold_dir(root, fold)
            if target.is_dir():
                continue
            log.info("Generating synthetic fold %d in %s", fold, target)
            with atomic.staged_dir(target) as tmp:  # the fold appears complete or not at all
                _write_fold(tmp, spec, fold)
        if class_names is not None:
            write_manifest(root, synthetic_manifest(spec, class_names, n_folds or max(folds)))
    return root


def synthetic_manifest(spec: SyntheticSpec, class_names, n_folds: int) -> FoldsManifest:
    """What a synthetic root holds, as its ``dataset.json`` says: the generator's parameters are
    its feature settings; the folds are stratified random splits."""
    shapes = {m: {k: int(spec.shapes[m][k]) for k in SHAPE_KEYS} for m in sorted(spec.shapes)}
    return FoldsManifest(
        dataset="synthetic",
        n_folds=int(n_folds),
        class_names=tuple(class_names),
        shapes=shapes,
        split=spec.split,
        features={"synthetic": asdict(spec), "format": FORMAT_VERSION, "digest": spec.digest()},
    )
