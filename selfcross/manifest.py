"""A prepared data root's manifest, ``<root>/dataset.json``: what preparation produced there.

``selfcross.prepare`` and the synthetic generator write it beside the fold directories; every
reader of a root (configuration validation, ``selfcross.check``, the data module, tables, the
Makefile) reads it through :func:`read_manifest`, the one place that parses it. It holds the
facts of the folds as written: their number, the class names in class-id order, the files'
shapes, the split scheme and the feature settings. The release's facts (its labels, published
counts) stay in ``conf/data/<name>.yaml``; nothing is copied between the two. A root without a
manifest (Yoon et al.'s folds, roots prepared before it existed) is described by the dataset
config's defaults.

Plain JSON and dataclasses only: every floor of the package may import this module. It also
registers the ``${selfcross.scheme:}`` resolver of the presets' sweep folder names
(:func:`sweep_scheme`), which reads a root's manifest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from selfcross import MODALITIES
from selfcross.errors import DataError
from selfcross.utils.io import write_json_atomic

MANIFEST_FILE = "dataset.json"
SCHEMA_VERSION = 2
"""Version 1: dataset, n_folds, class_names, shapes, split, features; version 2 adds
``class_set`` (a root derived with a class set; version-1 files read as None)."""
SHAPE_KEYS = ("seq_len", "feat_dim")
REQUIRED = ("dataset", "n_folds", "class_names", "shapes", "split")


@dataclass(frozen=True)
class FoldsManifest:
    """The folds under one root, as their preparation wrote them."""

    dataset: str
    """The dataset config they belong to (``iemocap``, ``meld``, ``synthetic``)."""
    n_folds: int
    """The folds are ``fold01`` .. ``fold<n_folds>``."""
    class_names: tuple[str, ...]
    """The name of each class id, in id order."""
    shapes: dict[str, dict[str, int]]
    """Modality -> ``{seq_len, feat_dim}`` of its feature files."""
    split: str
    """How utterances were split into folds (``random``, ``session``, ``official``)."""
    features: dict = field(default_factory=dict)
    """How the features were computed (preparation settings, or the generator's parameters)."""
    class_set: dict | None = None
    """A root written with a class set applied (``selfcross.prepare source=ROOT
    class_set=4class``, :mod:`selfcross.prepare.derive`): ``name``, ``of`` (the source's class
    names), ``merge``, ``class_counts`` (utterances per class here), ``published`` and
    ``source`` (root and per-fold fingerprints); None: the class names are the dataset's."""
    schema_version: int = SCHEMA_VERSION

    @property
    def class_set_name(self) -> str | None:
        """The class set applied to these folds (None: the dataset's full set)."""
        return None if self.class_set is None else self.class_set["name"]

    def to_json(self) -> dict:
        data = asdict(self)
        data["class_names"] = list(self.class_names)
        return data


def manifest_path(root: str | Path) -> Path:
    return Path(root) / MANIFEST_FILE


def write_manifest(root: str | Path, manifest: FoldsManifest) -> Path:
    """Write ``<root>/dataset.json`` atomically, checked as :func:`read_manifest` reads it."""
    path = manifest_path(root)
    _parse(json.loads(json.dumps(manifest.to_json())), path)
    return write_json_atomic(path, manifest.to_json())


def read_manifest(root: str | Path) -> FoldsManifest | None:
    """The manifest of ``root``, or None when it has none; a file that cannot be read, is not a
    manifest, or was written by a newer selfcross is a :class:`DataError` naming it."""
    path = manifest_path(root)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(path, f"is not a readable manifest ({_first_line(err)})") from None
    return _parse(data, path)


def root_n_folds(root: str | Path | None, default: int) -> int:
    """How many folds ``root`` holds: its manifest's ``n_folds``, else ``default``."""
    manifest = read_manifest(root) if root is not None else None
    return default if manifest is None else manifest.n_folds


def _parse(data, path: Path) -> FoldsManifest:
    if not isinstance(data, dict):
        raise DataError(path, "is not a manifest (expected a JSON object)")
    version = data.get("schema_version")
    if not _is_int(version) or version < 1:
        raise DataError(path, f"schema_version={version!r}: expected an integer >= 1")
    if version > SCHEMA_VERSION:
        raise DataError(
            path,
            f"schema_version {version} is newer than this selfcross reads ({SCHEMA_VERSION}): "
            "update selfcross",
        )
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise DataError(path, f"is not a manifest: no {', '.join(missing)}")
    n_folds, names, shapes = data["n_folds"], data["class_names"], data["shapes"]
    if not _is_int(n_folds) or n_folds < 1:
        raise DataError(path, f"n_folds={n_folds!r}: expected an integer >= 1")
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) < len(names)
    ):
        raise DataError(path, f"class_names={names!r}: expected distinct names")
    if not isinstance(shapes, dict) or set(shapes) != set(MODALITIES):
        raise DataError(path, f"shapes: expected one entry for each of {', '.join(MODALITIES)}")
    for modality, shape in shapes.items():
        if not isinstance(shape, dict) or not all(
            _is_int(shape.get(k)) and shape[k] >= 1 for k in SHAPE_KEYS
        ):
            raise DataError(
                path, f"shapes.{modality}={shape!r}: expected positive seq_len and feat_dim"
            )
    for key in ("dataset", "split"):
        if not isinstance(data[key], str) or not data[key]:
            raise DataError(path, f"{key}={data[key]!r}: expected a name")
    features = data.get("features", {})
    if not isinstance(features, dict):
        raise DataError(path, "features: expected a JSON object")
    class_set = data.get("class_set")
    named = isinstance(class_set, dict) and isinstance(class_set.get("name"), str)
    if class_set is not None and not (named and class_set["name"]):
        raise DataError(path, f"class_set={class_set!r}: expected an object with a name")
    return FoldsManifest(
        dataset=data["dataset"],
        n_folds=n_folds,
        class_names=tuple(names),
        shapes={m: {k: int(shapes[m][k]) for k in SHAPE_KEYS} for m in MODALITIES},
        split=data["split"],
        features=features,
        class_set=class_set,
        schema_version=version,
    )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _first_line(err: Exception) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


PAPER_FEATURES = {"A": "mfcc40", "T": "glove", "V": "resnet101"}
"""The paper's feature set, by encoder name (``features.set`` of a prepared root)."""


def feature_set(manifest: FoldsManifest | None) -> dict[str, dict]:
    """Per modality letter, the identity of the root's features (``features.set``: encoder
    name, weights digest, layer, width, frame rate; docs/features.md); empty for a root whose
    manifest records none (the paper's features: Yoon's folds, synthetic data, older roots)."""
    if manifest is None:
        return {}
    found = manifest.features.get("set")
    return found if isinstance(found, dict) else {}


def feature_set_label(features: dict[str, dict]) -> str:
    """A feature set in one short name: ``paper`` when every modality has the paper's
    features, else per modality ``<letter>=<encoder>`` with the weights digest's first 8 hex
    digits and the layer when there is one, in the order T, V, A
    (``T=glove V=resnet101 A=wavlm-base-plus@1a2b3c4d/last``)."""
    names = {m: (features.get(m) or {}).get("encoder", PAPER_FEATURES[m]) for m in MODALITIES}
    if names == PAPER_FEATURES:
        return "paper"
    parts = []
    for m in MODALITIES:
        entry = features.get(m) or {}
        text = names[m]
        if names[m] != PAPER_FEATURES[m]:
            text += f"@{str(entry.get('weights') or '')[:8]}"
            if entry.get("layer") is not None:
                text += f"/{entry['layer']}"
        parts.append(f"{m}={text}")
    return " ".join(parts)


def root_feature_set(root: str | Path | None) -> dict[str, dict]:
    """:func:`feature_set` of ``root``'s manifest ({} without a root or a manifest)."""
    return feature_set(read_manifest(root)) if root is not None else {}


def conv_out_for(conv_out: int | None, seq_len: int, new_seq_len: int) -> int | None:
    """The Conv1d over time's output length at another sequence length: the configured ratio
    kept, ``max(1, round(conv_out * new_seq_len / seq_len))`` (audio 1000 -> 500 halves any
    length, vision 32 -> 25 keeps 25/32); null (no convolution) stays null.
    ``Conv1d(seq_len, conv_out, 1)`` reads the time axis as channels, so its output has
    ``conv_out`` steps whatever the feature size, and an utterance with ``n`` valid frames has
    ``ceil(n * conv_out / seq_len)`` valid steps after it (``models.encoders``)."""
    if conv_out is None or new_seq_len == seq_len:
        return conv_out
    return max(1, (conv_out * new_seq_len * 2 + seq_len) // (2 * seq_len))


DEFAULT_SPLITS = ("random", "official")
"""Splits whose runs keep a preset's sweep folder name: the paper's and MELD's only one."""


def scheme_suffix(root: str | Path | None, class_set: str | None = None,
                  synthetic: bool = False) -> str:  # fmt: skip
    """What a preset's sweep folder name adds for folds of another evaluation scheme than the
    paper's (random folds, all classes): ``-session``, ``-speaker``, ``-4class``,
    ``-session-4class``. Empty for the paper's scheme and MELD's official split, so their
    folders keep their names; synthetic data add only the class set (their ``data.label``
    names the preset's split). ``class_set`` None: the root's own (a root written with one).
    A root without a manifest (Yoon's folds), or whose manifest cannot be read (validation then
    names it), counts as random with all classes."""
    split = "random"
    if not synthetic and root is not None:
        try:
            manifest = read_manifest(root)
        except DataError:
            manifest = None
        if manifest is not None:  # a root written with a class set names it too
            split, class_set = manifest.split, class_set or manifest.class_set_name
    parts = [split] if split not in DEFAULT_SPLITS else []
    return "".join(f"-{p}" for p in [*parts, *([class_set] if class_set else [])])


def sweep_scheme(*, _root_) -> str:
    """``${selfcross.scheme:}`` in a preset's ``sweep_name``: :func:`scheme_suffix` of the
    composed configuration's ``data`` (registered below, when this module is first imported:
    ``selfcross.config`` imports it before anything is composed)."""
    from omegaconf import OmegaConf

    def get(key: str):
        return OmegaConf.select(_root_, key, default=None, throw_on_missing=False)

    root = get("data.root")
    return scheme_suffix(None if root in (None, "???") else str(root), get("data.class_set"),
                         bool(get("data.synthetic")))  # fmt: skip


def _register_resolver() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("selfcross.scheme"):
        OmegaConf.register_new_resolver("selfcross.scheme", sweep_scheme)


_register_resolver()
