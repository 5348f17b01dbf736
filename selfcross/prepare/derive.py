"""A class set's folds written from an already prepared root, without extracting a feature again.

    python -m selfcross.prepare source=PATH/folds out=PATH/folds-4class class_set=4class

The class set (``data.class_sets`` of ``conf/data/<dataset>.yaml``; the map is
:func:`selfcross.data.datasets.class_set_map`) decides, per utterance of each split, whether it
stays and its new class id. Per fold: a split file whose every row stays is hard-linked (copied
when the new root is on another file system), and so are the embedding and the vocabulary; the
other split files are written again with the kept rows only (the label files with the set's
class ids); ``manifest.json`` keeps the utterance ids of the kept rows. ``utterances.json``
keeps the set's utterances with their new class ids. The new root's manifest
(``dataset.json``) names the set (``class_set``: name, merges, the source's class names and
per-fold fingerprints, the utterances per class here and the published counts); the whole root
is built beside ``out`` and renamed into place, so ``out`` is absent or complete.

Loading the source with ``class_set=<name>`` gives the same utterances and labels per split and
fold (docs/protocols.md, "Class sets"); a run on the derived root names the set too
(``class_set=<name>``: a no-op there, required so that both routes record one scheme).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np

from selfcross.data.datasets import class_set_map, dataset
from selfcross.data.fingerprint import fingerprint
from selfcross.data.npy import SPLITS, fold_dir
from selfcross.errors import ConfigError, DataError
from selfcross.manifest import FoldsManifest, read_manifest, write_manifest
from selfcross.prepare.steps import SUMMARY_FILE, UTTERANCES_FILE, provenance
from selfcross.prepare.writer import RowFile, check_output
from selfcross.utils import atomic
from selfcross.utils.io import write_json_atomic

FOLD_MANIFEST = "manifest.json"
LINK_FALLBACK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP)
"""Why a hard link may be refused where a copy works: another file system, or one without
hard links."""


def derive_class_set(source: Path, out: Path, name: str | None, check: bool = True) -> dict:
    """Write ``out`` from the prepared root ``source`` with class set ``name`` applied; returns
    the summary written to ``out/prepare.json``."""
    source, out = Path(source), Path(out)
    if name is None:
        raise ConfigError("source= needs class_set=<name>: the class set to write the folds of")
    manifest = source_manifest(source)
    sets = dataset(manifest.dataset).get("class_sets") or {}
    class_map = np.asarray(class_set_map(name, sets, manifest.class_names), dtype=np.int64)
    spec = sets[name]
    check_out(source, out)
    folds = [k for k in range(1, manifest.n_folds + 1) if fold_dir(source, k).is_dir()]
    if not folds:
        raise DataError(source, "holds no fold folder (fold01 ...): nothing to derive from")
    names = tuple(spec["class_names"])
    published = dict(zip(names, (int(c) for c in spec["class_counts"]), strict=True))
    written: dict[str, dict] = {}
    fingerprints = {}
    with atomic.staged_dir(out) as staging:
        for k in folds:
            fingerprints[fold_dir(source, k).name] = fingerprint(fold_dir(source, k))
            written[fold_dir(source, k).name] = derive_fold(
                fold_dir(source, k), fold_dir(staging, k), class_map, spec, name
            )
        kept = derive_utterances(source, staging, class_map)
        counts = class_counts(written[fold_dir(source, folds[0]).name], len(names), kept)
        class_set = {
            "name": name,
            "of": list(manifest.class_names),
            "merge": {c: list(v) for c, v in spec["merge"].items()},
            "class_counts": dict(zip(names, counts, strict=True)),
            "published": published,
            "source": {"root": str(source.resolve()), "fingerprints": fingerprints},
        }
        write_manifest(staging, FoldsManifest(
            dataset=manifest.dataset, n_folds=manifest.n_folds, class_names=names,
            shapes=manifest.shapes, split=manifest.split, features=manifest.features,
            class_set=class_set,
        ))  # fmt: skip
        print(counts_line(class_set))
        checked = []
        if check:
            checked = check_output(staging, folds, manifest.shapes, list(names), published)
        summary = {
            **provenance(),
            "derived_from": str(source.resolve()),
            "class_set": class_set,
            "folds": [fold_dir(out, k).name for k in folds],
            "rows": written,
            "checked": checked,
        }
        write_json_atomic(staging / SUMMARY_FILE, summary)
    print(f"Wrote {', '.join(summary['folds'])} of class set {name} to {out}")
    return summary


def derive_from_config(cfg) -> dict:
    """``python -m selfcross.prepare source=ROOT out=NEW class_set=NAME`` (``class_set=``
    selects ``conf/class_set/<name>.yaml``, as for a run; ``check=false`` skips the final
    check)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_missing(cfg, "out") or cfg.out in (None, ""):
        raise ConfigError("out is not set: name the folder to write the class set's folds to")
    chosen = (cfg.get("data") or {}).get("class_set")
    return derive_class_set(Path(cfg.source), Path(cfg.out), chosen, bool(cfg.check))


def source_manifest(source: Path) -> FoldsManifest:
    """The source root's manifest; a root without one, or one already holding a class set,
    is a DataError naming it."""
    if not source.is_dir():
        raise DataError(source, "no such prepared root (source=)")
    manifest = read_manifest(source)
    if manifest is None:
        raise DataError(
            source,
            "has no dataset.json: not a root written by selfcross.prepare (apply the class set "
            "when loading instead: class_set=<name>)",
        )
    if manifest.class_set_name is not None:
        raise DataError(
            source,
            f"already holds class set {manifest.class_set_name}: derive from its source "
            f"({manifest.class_set.get('source', {}).get('root')})",
        )
    return manifest


def check_out(source: Path, out: Path) -> None:
    """``out`` must be a new (or empty) folder outside ``source``."""
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise ConfigError(f"out={out}: name a folder outside the source root {source}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(out, "exists and is not an empty folder: name a new folder (out=)")


def set_labels(spec, classes: list[str]) -> list[str]:
    """A source fold's ``classes`` (the release labels of each class id) as the set's, by its
    merges (``hap+exc``); the set's class names when the source lists other classes."""
    of = list(spec["of"])
    if len(classes) != len(of):
        return [str(c) for c in spec["class_names"]]
    by_name = dict(zip(of, classes, strict=True))
    return ["+".join(by_name[s] for s in sources) for sources in spec["merge"].values()]


def derive_fold(source: Path, target: Path, class_map: np.ndarray, spec, name: str) -> dict:
    """Write ``target`` from the fold folder ``source``; returns the rows kept per split."""
    atomic.make_folder(target)
    keep = {}
    for split in SPLITS:
        path = source / f"{split}_label.npy"
        if not path.is_file():
            raise DataError(path, "is missing: the source fold is incomplete")
        ids = np.load(path, allow_pickle=False)
        if ids.ndim != 1 or ids.size and (ids.min() < 0 or ids.max() >= len(class_map)):
            raise DataError(path, f"expected class ids 0..{len(class_map) - 1}")
        keep[split] = (class_map[ids] >= 0, class_map[ids])
    for path in sorted(source.iterdir()):
        split = path.name.split("_", 1)[0]
        if path.is_dir() or path.name.startswith("."):
            continue
        if path.name == FOLD_MANIFEST:
            written = fold_manifest(path, keep, spec, name)
            write_json_atomic(target / FOLD_MANIFEST, written)
        elif path.suffix == ".npy" and split in keep and not keep[split][0].all():
            write_rows(path, target / path.name, keep[split])
        elif path.name.endswith("_label.npy") and split in keep:  # every row kept: new ids
            atomic.save_npy(target / path.name, keep[split][1])
        else:
            link_or_copy(path, target / path.name)
    n_classes = len(spec["class_names"])
    return {
        split: {"rows": int(mask.sum()), "left_out": int((~mask).sum()),
                "class_counts": np.bincount(ids[mask], minlength=n_classes).tolist()}
        for split, (mask, ids) in keep.items()
    }  # fmt: skip


def write_rows(source: Path, target: Path, kept: tuple[np.ndarray, np.ndarray]) -> None:
    """The rows of ``source`` that stay, one at a time (memory bounded by a row); a label file
    gets the set's class ids."""
    mask, ids = kept
    array = np.load(source, mmap_mode="r", allow_pickle=False)
    if len(array) != len(mask):
        raise DataError(source, f"has {len(array)} rows, its split's label file {len(mask)}")
    if source.name.endswith("_label.npy"):
        atomic.save_npy(target, ids[mask])
        return
    rows = np.flatnonzero(mask)
    out = RowFile(target, len(rows), array.shape[1:], array.dtype)
    try:
        for r, i in enumerate(rows):
            out.write(r, array[i])
    finally:
        out.close()


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link to ``source``; a copy, written atomically, where links are refused."""
    with atomic.guard(target):
        try:
            os.link(source, target)
            return
        except OSError as err:
            if err.errno not in LINK_FALLBACK:
                raise
    with atomic.atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def fold_manifest(path: Path, keep: dict, spec, name: str) -> dict:
    """A fold's ``manifest.json`` with the utterance ids of the kept rows and the set's
    release labels per class."""
    written = json.loads(path.read_text())
    for split, (mask, _) in keep.items():
        ids = written.get(split)
        if isinstance(ids, list):
            if len(ids) != len(mask):
                raise DataError(path, f"lists {len(ids)} {split} ids for {len(mask)} rows")
            written[split] = [u for u, k in zip(ids, mask, strict=True) if k]
    if isinstance(written.get("classes"), list):
        written["classes"] = set_labels(spec, written["classes"])
    written["class_set"] = name
    return written


def derive_utterances(source: Path, target: Path, class_map: np.ndarray) -> list[dict] | None:
    """``utterances.json`` of the set (its utterances, their new class ids); None without one."""
    path = source / UTTERANCES_FILE
    if not path.is_file():
        return None
    kept = []
    for entry in json.loads(path.read_text()):
        new = int(class_map[int(entry["class_id"])])
        if new >= 0:
            kept.append({**entry, "class_id": new})
    write_json_atomic(target / UTTERANCES_FILE, kept)
    return kept


def class_counts(first_fold: dict, n_classes: int, kept: list[dict] | None) -> list[int]:
    """Utterances per class of the set: from ``utterances.json`` when the root has one, else
    the three splits of the first fold (each fold holds every utterance once)."""
    if kept is not None:
        return np.bincount([u["class_id"] for u in kept], minlength=n_classes).tolist()
    return np.sum([first_fold[s]["class_counts"] for s in SPLITS], axis=0).tolist()


def counts_line(class_set: dict) -> str:
    """``Class set 4class: angry (angry) 1103 here, 1103 published; happy (happy+excited) ...``"""
    parts = [
        f"{c} ({'+'.join(class_set['merge'][c])}) {n:,} here, {class_set['published'][c]:,} "
        "published"
        for c, n in class_set["class_counts"].items()
    ]
    return f"Class set {class_set['name']}: " + "; ".join(parts)
