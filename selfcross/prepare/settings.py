"""The preparation settings, read from the composed ``conf/prepare.yaml`` and checked."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue

from selfcross.data.datasets import dataset
from selfcross.errors import ConfigError
from selfcross.prepare.audio import AudioSettings
from selfcross.prepare.resnet import FEATURE_DIM
from selfcross.prepare.text import TextSettings
from selfcross.prepare.video import FrameSettings

MAX_AUTO_JOBS = 8
PATH_HINTS = {
    "raw": "point it at {release} (raw=/path/to/{release})",
    "glove": "point it at glove.840B.300d.txt (glove=/path/to/glove.840B.300d.txt)",
    "out": "name the folder to write the folds to (out=/path/to/folds)",
}


FEATURE_KINDS = ("paper", "pretrained")
DTYPES = ("float16", "float32")
ENCODER_SECTIONS = {"A": "audio", "T": "text", "V": "vision"}
"""Modality letter -> the section of conf/prepare.yaml that may name its pretrained encoder."""


@dataclass(frozen=True)
class EncoderSettings:
    """One modality's pretrained encoder (``features=pretrained``, docs/features.md)."""

    folder: str
    """A local Hugging Face model folder (checked to exist)."""
    layer: str | int | None
    """``last``, ``mean`` or a hidden-state index (speech and text; None for vision)."""
    device: str
    batch_size: int


@dataclass(frozen=True)
class PrepareSettings:
    dataset: str
    """The release read: ``iemocap`` or ``meld``."""
    raw: Path
    glove: Path | None
    """None: no GloVe file is needed (a pretrained text encoder)."""
    out: Path
    cache: Path
    sessions: tuple[int, ...]
    split: str
    folds: tuple[int, ...]
    n_folds: int
    """The split's folds are fold01 .. fold<n_folds> (``folds`` may write only some)."""
    ratios: tuple[float, float, float]
    seed: int
    jobs: int
    progress: bool
    check: bool
    strict: bool
    """MELD: an unusable or unlisted clip is an error instead of being dropped and listed."""
    classes: tuple[str, ...]
    """Per class id, its release labels joined by ``+`` (``hap+exc``): how counts name it."""
    label_ids: dict[str, int]
    """Release label -> class id (data.labels of conf/data/<name>.yaml)."""
    drop_labels: tuple[str, ...]
    class_names: tuple[str, ...]
    """The dataset's class names (data.class_names), one per class id."""
    class_counts: tuple[int, ...]
    """The dataset's published utterances per class id (data.class_counts)."""
    split_counts: dict[str, tuple[int, ...]]
    """Published utterances per official split and class id (data.split_counts; MELD)."""
    audio: AudioSettings
    audio_frames: int
    text: TextSettings
    text_tokens: int
    frames: FrameSettings
    video_frames: int
    weights: Path | None
    """None: random weights, explicitly asked for."""
    batch_size: int
    device: str
    cpu_threads: int | None
    """torch threads for ResNet-101 on the CPU; None: torch's default."""
    features: str = "paper"
    """``paper`` (MFCC, GloVe, ResNet-101) or ``pretrained`` (``encoders`` replace them)."""
    encoders: dict[str, EncoderSettings] = field(default_factory=dict)
    """Modality letter -> its pretrained encoder; the others keep the paper's features."""
    dtype: str = "float16"
    """How pretrained features are stored (read back as float32)."""
    widths: dict[str, int] = field(default_factory=dict)
    """Modality letter -> the loaded pretrained encoder's feature size."""

    @property
    def shapes(self) -> dict:
        """The fold files' shapes, as ``data.shapes`` and the fold reader name them."""
        return {
            "T": {"seq_len": self.text_tokens, "feat_dim": self.widths.get("T", self.text.dim)},
            "V": {"seq_len": self.video_frames, "feat_dim": self.widths.get("V", FEATURE_DIM)},
            "A": {
                "seq_len": self.audio_frames,
                "feat_dim": self.widths.get("A", self.audio.feat_dim),
            },
        }


def _pick(cls, section: dict):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in section.items() if k in names})


def _positive(name: str, value) -> int:
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value}: expected a positive integer")
    return value


def from_config(cfg: DictConfig) -> PrepareSettings:
    """Check and convert the composed configuration; every mistake is one ConfigError."""
    name = cfg.get("dataset")
    if (cfg.get("data") or {}).get("class_set") is not None:
        raise ConfigError(
            f"class_set={cfg.data.class_set} needs source=<a prepared root>: prepare the full "
            "class set from the release, then write the set's folds from it (the same folds "
            "as applying the set when loading; docs/protocols.md, Class sets)"
        )
    if "data" in cfg:  # class_set=null: nothing chosen
        cfg = cfg.copy()
        with open_dict(cfg):
            del cfg["data"]
    try:
        encoders = pretrained_encoders(cfg)
        for key, hint in PATH_HINTS.items():
            if key == "glove" and "T" in encoders:
                continue  # the text encoder replaces GloVe
            if OmegaConf.is_missing(cfg, key) or cfg[key] in (None, ""):
                raise ConfigError(f"{key} is not set: {hint.format(release=cfg.release)}")
        data = OmegaConf.to_container(cfg, resolve=True)
    except MissingMandatoryValue as err:
        raise ConfigError(f"{err.full_key or 'a value'} is not set") from None
    out = Path(data["out"])
    modes = tuple(data["split_modes"])
    if data["split"] not in modes:
        raise ConfigError(f"split={data['split']}: expected one of {', '.join(modes)}")
    sessions = tuple(int(s) for s in data["sessions"])
    if (
        not sessions
        or any(s not in range(1, 6) for s in sessions)
        or len(set(sessions)) < len(sessions)
    ):
        raise ConfigError(f"sessions={list(sessions)}: expected distinct numbers in 1..5")
    if data["split"] in ("session", "speaker") and len(sessions) < 2:
        raise ConfigError(f"split={data['split']} needs at least two sessions")
    facts = dataset(name)
    default_folds = sessions if data["split"] == "session" else range(1, facts.n_folds + 1)
    if data["split"] == "speaker":  # two folds per session: 2k-1 and 2k
        default_folds = tuple(f for s in sessions for f in (2 * s - 1, 2 * s))
    folds = tuple(int(f) for f in (data["folds"] or default_folds))
    if not folds or any(f not in default_folds for f in folds):
        raise ConfigError(
            f"folds={list(folds)}: expected a subset of {list(default_folds)} for "
            f"split={data['split']}"
        )
    ratios = tuple(float(r) for r in data["ratios"])
    if len(ratios) != 3 or min(ratios) <= 0:
        raise ConfigError(f"ratios={list(ratios)}: expected three positive numbers (8, 0.5, 1.5)")
    jobs = data["jobs"]
    if jobs is None:
        jobs = max(1, min(os.cpu_count() or 1, MAX_AUTO_JOBS))
    labels = class_labels(facts, data["classes"], name)
    label_ids = {label: i for i, group in enumerate(labels.values()) for label in group}
    overlap = set(label_ids) & set(data["drop_labels"])
    if len(label_ids) < sum(map(len, labels.values())) or overlap:
        shown = ", ".join(f"{c}: [{', '.join(g)}]" for c, g in labels.items())
        raise ConfigError(f"labels {{{shown}}}: a label repeated, or also in drop_labels")
    vision = data["vision"]
    weights = vision["weights"]
    if weights is None and not vision["random_weights"] and "V" not in encoders:
        raise ConfigError(
            "vision.weights is not set: point it at torchvision's ResNet-101 ImageNet weights "
            "(resnet101-*.pth), or set vision.random_weights=true for features without visual "
            "content"
        )
    if weights is not None and vision["random_weights"]:
        raise ConfigError("vision.weights and vision.random_weights=true exclude each other")
    text = _pick(TextSettings, {**data["text"], "seed": data["seed"]})
    if data.get("dtype", "float16") not in DTYPES:
        raise ConfigError(f"dtype={data['dtype']}: expected one of {', '.join(DTYPES)}")
    split_counts = facts.get("split_counts") or {}
    return PrepareSettings(
        dataset=name,
        raw=Path(data["raw"]),
        glove=Path(data["glove"]) if data.get("glove") not in (None, "???", "") else None,
        out=out,
        cache=Path(data["cache"]) if data["cache"] else out / "cache",
        sessions=sessions,
        split=data["split"],
        folds=folds,
        n_folds=max(default_folds),
        ratios=ratios,
        seed=int(data["seed"]),
        jobs=_positive("jobs", jobs),
        progress=bool(data["progress"]),
        check=bool(data["check"]),
        strict=bool(data["strict"]),
        classes=tuple("+".join(group) for group in labels.values()),
        label_ids=label_ids,
        drop_labels=tuple(data["drop_labels"]),
        class_names=tuple(facts.class_names),
        class_counts=tuple(facts.class_counts),
        split_counts={k: tuple(v) for k, v in split_counts.items()},
        audio=_pick(AudioSettings, data["audio"]),
        audio_frames=_positive("audio.max_frames", data["audio"]["max_frames"]),
        text=text,
        text_tokens=_positive("text.max_tokens", data["text"]["max_tokens"]),
        frames=_pick(FrameSettings, vision),
        video_frames=_positive("vision.max_frames", vision["max_frames"]),
        weights=Path(weights) if weights is not None else None,
        batch_size=_positive("vision.batch_size", vision["batch_size"]),
        device=str(vision["device"]),
        cpu_threads=(
            None
            if vision["cpu_threads"] is None
            else _positive("vision.cpu_threads", vision["cpu_threads"])
        ),
        features=str(cfg.get("features", "paper")),
        encoders=encoders,
        dtype=str(data.get("dtype", "float16")),
    )


def pretrained_encoders(cfg: DictConfig) -> dict[str, EncoderSettings]:
    """Modality letter -> its encoder, from ``features`` and ``<section>.encoder``; an encoder
    without ``features=pretrained``, or ``features=pretrained`` without any, is a ConfigError.
    A name that is not a local folder is refused here, before any work."""
    from selfcross.prepare.encoders import local_folder

    kind = cfg.get("features", "paper")
    if kind not in FEATURE_KINDS:
        raise ConfigError(f"features={kind}: expected one of {', '.join(FEATURE_KINDS)}")
    named = {m: s for m, s in ENCODER_SECTIONS.items() if cfg[s].get("encoder") is not None}
    if kind == "paper" and named:
        first = ENCODER_SECTIONS[next(iter(named))]
        raise ConfigError(f"{first}.encoder is set but features=paper: add features=pretrained")
    if kind == "pretrained" and not named:
        raise ConfigError(
            "features=pretrained: set the encoder of at least one modality (audio.encoder, "
            "text.encoder, vision.encoder)"
        )
    encoders = {}
    for modality, section in named.items():
        part = cfg[section]
        folder = local_folder(part.encoder, f"{section}.encoder")
        encoders[modality] = EncoderSettings(
            folder=str(folder),
            layer=None if modality == "V" else part.get("layer", "last"),
            device=str(part.get("device", "auto")),
            batch_size=_positive(f"{section}.batch_size", part.get("batch_size", 8)),
        )
    return encoders


def class_labels(facts, classes, name: str) -> dict[str, tuple[str, ...]]:
    """Class name -> the release labels it keeps, in class-id order: data.labels of
    conf/data/<name>.yaml, one entry per name of data.class_names. ``classes`` (the release label
    of each class id, the old spelling) replaces it, with a deprecation line."""
    names = tuple(facts.class_names)
    if classes is not None:
        print(
            f"warning: classes= is deprecated: the release labels of each class are data.labels "
            f"in conf/data/{name}.yaml (class name: [labels])",
            file=sys.stderr,
        )
        if len(classes) != len(names):
            raise ConfigError(
                f"classes={list(classes)}: one label per class of {name} ({', '.join(names)})"
            )
        return {n: (str(c),) for n, c in zip(names, classes, strict=True)}
    labels = facts.get("labels") or {}
    if list(labels) != list(names) or not all(labels[n] for n in names):
        raise ConfigError(
            f"data.labels of conf/data/{name}.yaml must give the release labels of each class "
            f"of data.class_names, in its order ({', '.join(names)}); it has "
            f"{', '.join(labels) or 'none'}"
        )
    return {n: tuple(str(label) for label in labels[n]) for n in names}
