"""A finished run scored on another dataset's split through a declared class map
(``python -m selfcross.evaluate``): ``<run>/cross_corpus-<map>-<target>.json``.

A class map (``conf/class_map/<name>.yaml``, values only, read here and never composed into a
run) lists the classes two datasets share, each with its classes on the run's side
(``source``) and on the scored data's side (``target``); ``reverse_of`` reads another map the
other way round. The run is opened as ``selfcross.predict`` opens it (its configuration from
selfcross's own ``conf/`` with the record's values, its best weights); the target split is read
by the target dataset's own data module (its class set applied), without standardisation, and
standardised with the run's own train-split statistics (``inputs.json``). Data of another
feature set or shape than the run's is refused in one line.

Scoring: the logits of the run's classes without a partner are masked (set to -inf) before the
arg-max, so every prediction is a shared class; how often the unmasked arg-max fell on a masked
class is recorded. Utterances of target classes without a partner are left out and counted.
WA, UWA, macro and weighted F1 are computed over the shared classes from their confusion matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from selfcross.analysis.records import (
    CrossCorpusRecord,
    cross_corpus_file,
    write_cross_corpus,
)
from selfcross.config import CONFIG_DIR
from selfcross.errors import ConfigError, DataError
from selfcross.manifest import feature_set_label, root_feature_set

CLASS_MAP_DIR = CONFIG_DIR / "class_map"
SIDES = ("source", "target")


@dataclass(frozen=True)
class ClassMap:
    """Shared class name -> (its classes on the run's side, its classes on the data's side)."""

    name: str
    source: str
    target: str
    shared: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]

    def index(self, class_names, side: int, what: str) -> np.ndarray:
        """Per class of ``class_names`` (one side's), its shared class's index, -1 for none;
        ConfigError when a shared class has none of its classes there (the wrong direction)."""
        names = list(class_names)
        out = np.full(len(names), -1, dtype=np.int64)
        for k, (shared, sides) in enumerate(self.shared.items()):
            found = [names.index(c) for c in sides[side] if c in names]
            if not found:
                raise ConfigError(
                    f"class_map={self.name}: the shared class {shared!r} has none of its "
                    f"{SIDES[side]} classes {list(sides[side])} among {what}'s classes "
                    f"{names} (is the map's direction {self.source} -> {self.target}?)"
                )
            out[found] = k
        return out


def class_maps() -> list[str]:
    return sorted(p.stem for p in CLASS_MAP_DIR.glob("*.yaml"))


def load_class_map(name: str) -> ClassMap:
    """``conf/class_map/<name>.yaml``; ConfigError naming the file and the problem."""
    from omegaconf import OmegaConf

    path = CLASS_MAP_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"class_map={name}: no such map; choose one of {', '.join(class_maps())}"
        )
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if isinstance(raw, dict) and set(raw) == {"reverse_of"}:
        other = load_class_map(str(raw["reverse_of"]))
        shared = {k: (t, s) for k, (s, t) in other.shared.items()}
        return ClassMap(name, other.target, other.source, shared)
    if not isinstance(raw, dict) or set(raw) != {"source", "target", "shared"}:
        raise DataError(path, "expected the keys source, target and shared (or reverse_of alone)")
    shared, seen = {}, {side: set() for side in SIDES}
    for key, sides in (raw["shared"] or {}).items():
        if not isinstance(sides, dict) or set(sides) != set(SIDES):
            raise DataError(path, f"shared.{key}: expected source and target lists")
        pair = []
        for side in SIDES:
            classes = sides[side]
            if not classes or not all(isinstance(c, str) for c in classes):
                raise DataError(path, f"shared.{key}.{side}: expected a list of class names")
            twice = seen[side].intersection(classes)
            if twice:
                raise DataError(path, f"shared.{key}.{side}: {sorted(twice)[0]!r} is already "
                                "in another shared class")  # fmt: skip
            seen[side].update(classes)
            pair.append(tuple(classes))
        shared[str(key)] = (pair[0], pair[1])
    if not shared:
        raise DataError(path, "shared: no shared class")
    return ClassMap(name, str(raw["source"]), str(raw["target"]), shared)


@dataclass(frozen=True)
class SharedScores:
    """The scores over the shared classes of one split."""

    n_utterances: int
    masked_argmax: int
    left_out: dict[str, int]
    confusion: np.ndarray
    wa: float
    uwa: float
    mf1: float
    wf1: float
    recall: dict[str, float | None]


def score_shared(
    logits: np.ndarray, labels: np.ndarray, cmap: ClassMap, run_classes, target_classes
) -> SharedScores:
    """The run's ``logits`` [N, C] on utterances of true class ids ``labels`` (target ids),
    through ``cmap``: unpartnered run classes masked, unpartnered target classes left out."""
    from selfcross.models.metrics import weighted_f1

    source = cmap.index(run_classes, 0, "the run")
    target = cmap.index(target_classes, 1, "the data")
    labels = np.asarray(labels, dtype=np.int64)
    kept = target[labels] >= 0
    left_out = {
        str(n): int((labels == i).sum()) for i, n in enumerate(target_classes) if target[i] < 0
    }
    logits = np.asarray(logits, dtype=np.float64)[kept]
    masked = np.where(source >= 0, logits, -np.inf)
    predicted = source[np.argmax(masked, axis=1)]
    masked_argmax = int((source[np.argmax(logits, axis=1)] < 0).sum()) if len(logits) else 0
    truth = target[labels[kept]]
    n = len(cmap.shared)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    support = confusion.sum(axis=1)
    hits = np.diag(confusion)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hits / support
        f1 = np.where(support + confusion.sum(axis=0) > 0,
                      2 * hits / (support + confusion.sum(axis=0)), 0.0)  # fmt: skip
    present = support > 0
    total = int(support.sum())
    return SharedScores(
        n_utterances=total,
        masked_argmax=masked_argmax,
        left_out=left_out,
        confusion=confusion,
        wa=float(recall[present].mean()) if total else float("nan"),
        uwa=float(hits.sum() / total) if total else float("nan"),
        mf1=float(f1.mean()),
        wf1=float(weighted_f1(confusion)) if total else float("nan"),
        recall={
            s: (float(recall[k]) if present[k] else None) for k, s in enumerate(cmap.shared)
        },  # fmt: skip
    )


def target_config(overrides: list[str], modality: str):
    """The scored data's configuration: ``data=``, ``data.*``, ``class_set=``, ``fold=`` and
    ``paths.*`` overrides composed with the run's modality; ConfigError for any other."""
    from selfcross.config import compose, validate

    allowed = ("data=", "data.", "class_set=", "fold=", "paths.")
    for item in overrides:
        if not item.startswith(allowed):
            raise ConfigError(f"{item}: selfcross.evaluate takes only data=, data.*, "
                              "class_set=, fold= and paths.* overrides (the scored "
                              "data)")  # fmt: skip
    cfg = compose([*overrides, f"modality={modality}", "logger=none"])
    validate(cfg)
    return cfg


def check_inputs(inputs, run_features: dict, cfg, fold_data, split: str) -> None:
    """DataError (naming data.root) unless the scored data has the run's feature set and every
    input's shape (``seq_len``, ``feat_dim``; text ids: the word vectors' width) is the run's."""
    root = str(cfg.data.root)
    theirs = root_feature_set(root)
    used = inputs.modalities
    if any((run_features.get(m) or {}) != (theirs.get(m) or {}) for m in used):
        raise DataError(root, f"feature set {feature_set_label(theirs)}, but the run was trained "
                        f"on {feature_set_label(run_features)}: cross-corpus scoring needs the "
                        "same features")  # fmt: skip
    for m in used:
        want = [int(inputs.shapes[m]["seq_len"]), int(inputs.shapes[m]["feat_dim"])]
        x = fold_data.splits[split].features[m]
        have = [int(k) for k in x.shape[1:]]
        if m == "T" and x.ndim == 2 and fold_data.embedding is not None:
            have.append(int(fold_data.embedding.shape[1]))
        if have != want:
            raise DataError(root, f"modality {m} has inputs of shape {have} (seq_len, "
                            f"feat_dim), but the run was trained on {want}: cross-corpus "
                            "scoring needs the same features and shapes")  # fmt: skip


def target_label(cfg) -> str:
    """The scored data in a file-name part: the data's label (``meld``, ``synthetic-meld``),
    its class set and, for a dataset of several folds, the fold."""
    label = str(cfg.data.get("label") or cfg.data.name)
    class_set = cfg.data.get("class_set")
    n_folds = int(cfg.data.get("n_folds") or 1)
    return (
        label
        + (f"-{class_set}" if class_set else "")
        + (f"-fold{int(cfg.fold)}" if n_folds > 1 else "")
    )


def evaluate_run(run_dir: Path, overrides: list[str], class_map: str, split: str = "test"):
    """Score the run in ``run_dir`` on the split of the data ``overrides`` name, through
    ``class_map``; write and return (its record, the file written)."""
    from hydra.utils import instantiate

    from selfcross.analysis.inputs import open_model
    from selfcross.analysis.predict import network_logits, split_arrays
    from selfcross.data.npy import SPLITS

    if split not in SPLITS:
        raise ConfigError(f"--split {split}: expected one of {', '.join(SPLITS)}")
    cmap = load_class_map(class_map)
    model = open_model(Path(run_dir))
    record, inputs = model.record, model.inputs
    cmap.index(inputs.class_names, 0, "the run")  # the direction, before any data is read
    cfg = target_config(overrides, str(record.modality))
    datamodule = instantiate(cfg.data, audio_standardize="none", cache_dir=None, on_device=False)
    datamodule.prepare_data()
    datamodule.setup("test")
    check_inputs(inputs, dict(record.data.feature_set or {}), cfg, datamodule.fold_data, split)
    arrays, lengths, labels = split_arrays(inputs, datamodule.fold_data, split)
    target_classes = tuple(datamodule.class_names)
    scores = score_shared(network_logits(model, arrays, lengths), labels, cmap,
                          inputs.class_names, target_classes)  # fmt: skip
    result = CrossCorpusRecord(
        model=str(record.model), modality=str(record.modality), fold=int(record.fold),
        seed=int(record.seed), config_hash=str(record.config_hash),
        finished=str(record.finished),
        source={"name": record.data.name, "label": _label(record), "fingerprint":
                record.data.fingerprint, "scheme": record.data.scheme},
        target={"name": str(cfg.data.name), "label": target_label(cfg), "root":
                str(cfg.data.root), "fold": int(cfg.fold), "split": split,
                "class_set": cfg.data.get("class_set"),
                "fingerprint": datamodule.fold_data.fingerprint,
                "feature_set": feature_set_label(root_feature_set(str(cfg.data.root)))},
        class_map=cmap.name, shared=list(cmap.shared),
        masked=[n for n, k in zip(inputs.class_names, cmap.index(inputs.class_names, 0, "the run"),
                                  strict=True) if k < 0],
        masked_argmax=scores.masked_argmax, left_out=scores.left_out,
        n_utterances=scores.n_utterances, wa=scores.wa, uwa=scores.uwa, mf1=scores.mf1,
        wf1=scores.wf1, recall=scores.recall, confusion=scores.confusion.tolist(),
        evaluated=datetime.now(UTC).isoformat(timespec="seconds"),
    )  # fmt: skip
    path = write_cross_corpus(run_dir, result, cross_corpus_file(cmap.name, target_label(cfg)))
    return result, path


def _label(record) -> str:
    config = record.config if isinstance(record.config, dict) else {}
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    return str(data.get("label") or record.data.name)


def describe(result: CrossCorpusRecord, path: Path) -> list[str]:
    """What ``selfcross.evaluate`` prints: the scores, what was masked and left out."""
    masked = ", ".join(result.masked) or "none"
    left = ", ".join(f"{k} ({v})" for k, v in result.left_out.items()) or "none"
    return [
        f"{result.model} {result.modality} fold {result.fold} seed {result.seed} on "
        f"{result.target['label']} ({result.target['split']}), class map {result.class_map}: "
        f"{result.n_utterances} utterances of {len(result.shared)} shared classes "
        f"({', '.join(result.shared)})",
        f"WA {result.wa:.4f}  UWA {result.uwa:.4f}  macro-F1 {result.mf1:.4f}  "
        f"weighted F1 {result.wf1:.4f}",
        f"masked logits (the run's classes without a partner): {masked}; the unmasked arg-max "
        f"fell on them for {result.masked_argmax} of {result.n_utterances} utterances",
        f"left out (the data's classes without a partner): {left}",
        f"wrote {path}",
    ]


@dataclass(frozen=True)
class CrossCorpusRuns:
    """The runs under a folder that have a ``cross_corpus-<map>-*.json`` of one class map: each
    run's result with its test metrics replaced by its scores on the target (``scored``), the
    target's label, and the runs left out (one line each, with why)."""

    scored: list
    target: str | None
    skipped: list[str]


def load_cross_corpus(runs, class_map: str, target: str | None = None) -> CrossCorpusRuns:
    """For ``runs`` (RunResults), their scores through ``class_map`` on ``target`` (a target
    label; None: the one target found). DataError when the files name several targets and none
    is chosen, or when runs scored on different data (fingerprints) would be pooled."""
    from dataclasses import replace

    from selfcross.analysis.records import CROSS_CORPUS_PREFIX, read_cross_corpus
    from selfcross.training.record import read_record

    found, skipped = [], []
    for run in runs:
        run_dir = run.path.parent
        files = sorted(run_dir.glob(f"{CROSS_CORPUS_PREFIX}-{class_map}-*.json"))
        for path in files:
            try:
                record = read_cross_corpus(path)
            except ValueError as err:
                skipped.append(f"{path}: {err}")
                continue
            own = read_record(run.path)
            if own is None or not record.belongs_to(own):
                skipped.append(f"{path}: belongs to an earlier run of the folder")
                continue
            found.append((run, record))
    labels = sorted({str(r.target.get("label")) for _, r in found})
    if target is None and len(labels) > 1:
        raise DataError(found[0][1].target.get("root", "."), f"cross-corpus scores of class_map="
                        f"{class_map} on several targets ({', '.join(labels)}): choose one "
                        "with --target")  # fmt: skip
    chosen = target if target is not None else (labels[0] if labels else None)
    mine = [(run, r) for run, r in found if r.target.get("label") == chosen]
    prints = sorted({str(r.target.get("fingerprint")) for _, r in mine})
    if len(prints) > 1:
        raise DataError(mine[0][0].path.parent, f"runs scored on {chosen} with different data "
                        f"(fingerprints {', '.join(p[:12] for p in prints)}): cross-corpus "
                        "scores of different data are never pooled")  # fmt: skip
    scored = [
        replace(run, wa=r.wa, uwa=r.uwa, wf1=r.wf1, mf1=r.mf1, confusion=np.array(r.confusion),
                class_names=tuple(r.shared))
        for run, r in mine
    ]  # fmt: skip
    return CrossCorpusRuns(scored, chosen, skipped)
