"""A class set's root written from prepared 7-class folds (``selfcross.prepare source=ROOT
class_set=4class``) against the same set applied while loading the 7-class root."""

from __future__ import annotations

import errno
import json
import os
from collections import Counter

import numpy as np
import pytest
from hydra.utils import instantiate

from selfcross.config import compose, validate
from selfcross.data.fingerprint import fingerprint
from selfcross.data.npy import SPLITS
from selfcross.errors import ConfigError
from selfcross.manifest import read_manifest
from tests.helpers.foldkit import shape_overrides
from tests.helpers.preparekit import SHAPES, make_release, overrides
from tests.helpers.releasekit import prepare_quietly, run_error

FOUR = {"ang": 0, "hap": 1, "exc": 1, "sad": 2, "neu": 3}
"""Release label -> class id in the 4-class set (fru and sur are left out)."""


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """The fake release prepared once as 7 classes, and its 4-class root written from it."""
    base = tmp_path_factory.mktemp("class_set")
    release = make_release(base)
    seven, four = base / "seven", base / "four"
    prepare_quietly(overrides(release, seven))
    summary, text = prepare_quietly([f"source={seven}", f"out={four}", "class_set=4class"])
    return release, seven, four, summary, text


def loaded(root, fold, cache, *extra):
    cfg = compose(["data=iemocap", f"data.root={root}", *shape_overrides(SHAPES), f"fold={fold}",
                   "data.drop_zero_video=false", f"data.cache_dir={cache}", *extra])  # fmt: skip
    validate(cfg)
    module = instantiate(cfg.data)
    module.setup("fit")
    return module


def fold_ids(root, fold):
    return json.loads((root / f"fold{fold:02d}" / "manifest.json").read_text())


def test_the_written_root_and_the_load_time_set_give_the_same_utterances_and_labels(
    roots, tmp_path
):
    """Per fold and split: the derived root's utterance ids are the 7-class fold's ids of the
    set's classes, in order; its labels, as a run reads them, equal the load-time route's and
    the release's label of each id; features too; both record one evaluation scheme."""
    release, seven, four, _, _ = roots
    label_of = {u.id: u.label for u in release.utterances}
    for fold in range(1, 6):
        by_load = loaded(seven, fold, tmp_path, "class_set=4class")
        by_root = loaded(four, fold, tmp_path, "class_set=4class")
        assert by_root.options.class_map is None  # the set is applied once: in the files
        source, derived = fold_ids(seven, fold), fold_ids(four, fold)
        assert derived["classes"] == ["ang", "hap+exc", "sad", "neu"]
        assert derived["class_set"] == "4class" and derived["seed"] == source["seed"]
        for split in SPLITS:
            inside = [i for i in source[split] if label_of[i] in FOUR]
            assert derived[split] == inside and len(inside) < len(source[split])
            a, b = by_load.fold_data.splits[split], by_root.fold_data.splits[split]
            assert a.labels.tolist() == b.labels.tolist() == [FOUR[label_of[i]] for i in inside]
            for modality in ("T", "V", "A"):
                np.testing.assert_array_equal(a.features[modality], b.features[modality])
        scheme = {"split": "random", "seed": 0, "class_set": "4class"}
        assert by_load.scheme() == by_root.scheme() == scheme


def test_the_manifest_records_the_set_its_counts_and_its_source(roots):
    release, seven, four, summary, text = roots
    kept = Counter(u.label for u in release.kept)
    counts = [kept["ang"], kept["hap"] + kept["exc"], kept["sad"], kept["neu"]]
    assert sum(counts) == 20 and min(counts) > 0
    manifest = read_manifest(four)
    assert manifest.class_names == ("angry", "happy", "sad", "neutral")
    assert (manifest.n_folds, manifest.split) == (5, "random")
    assert manifest.shapes == read_manifest(seven).shapes
    assert manifest.class_set == {
        "name": "4class",
        "of": ["angry", "excited", "happy", "sad", "frustrated", "surprise", "neutral"],
        "merge": {"angry": ["angry"], "happy": ["happy", "excited"], "sad": ["sad"],
                  "neutral": ["neutral"]},
        "class_counts": dict(zip(manifest.class_names, counts, strict=True)),
        "published": {"angry": 1103, "happy": 1636, "sad": 1084, "neutral": 1708},
        "source": {"root": str(seven.resolve()), "fingerprints": {
            f"fold{k:02d}": fingerprint(seven / f"fold{k:02d}") for k in range(1, 6)}},
    }  # fmt: skip
    assert summary["class_set"] == manifest.class_set
    assert json.loads((four / "prepare.json").read_text())["derived_from"] == str(seven.resolve())
    assert (
        f"Class set 4class: angry (angry) {counts[0]} here, 1,103 published; happy "
        f"(happy+excited) {counts[1]} here, 1,636 published; sad (sad) {counts[2]} here, 1,084 "
        f"published; neutral (neutral) {counts[3]} here, 1,708 published"
    ) in text
    utterances = json.loads((four / "utterances.json").read_text())
    assert sorted(u["id"] for u in utterances) == sorted(
        u.id for u in release.kept if u.label in FOUR
    )
    assert all(u["class_id"] == FOUR[u["label"]] for u in utterances)


def test_unchanged_files_are_hard_links_and_copies_across_file_systems(roots, tmp_path,
                                                                       monkeypatch):  # fmt: skip
    _, seven, four, _, _ = roots
    source = seven / "fold01" / "W_embedding.npy"
    assert os.path.samefile(source, four / "fold01" / "W_embedding.npy")
    assert not os.path.samefile(seven / "fold01" / "test_video.npy",
                                four / "fold01" / "test_video.npy")  # fmt: skip

    def refused(*args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", refused)
    copied = tmp_path / "copied"
    prepare_quietly([f"source={seven}", f"out={copied}", "class_set=4class", "check=false"])
    target = copied / "fold01" / "W_embedding.npy"
    assert not os.path.samefile(source, target)
    assert target.read_bytes() == source.read_bytes()
    for path in (four / "fold03").glob("*.npy"):
        assert (copied / "fold03" / path.name).read_bytes() == path.read_bytes()


def test_a_run_on_the_written_root_names_the_set(roots, tmp_path):
    """class_set=4class on the 4-class root reads it as it is; without it, one line says to
    add it (the dataset's seven class names do not describe the folds)."""
    _, _, four, _, _ = roots
    cfg = compose(["data=iemocap", f"data.root={four}", *shape_overrides(SHAPES)])
    with pytest.raises(ConfigError, match="data.root holds the folds of class set 4class .*: "
                                          "add class_set=4class"):  # fmt: skip
        validate(cfg)


@pytest.mark.parametrize(
    "args, message",
    [
        (["source={tmp}/nothing", "out={tmp}/o", "class_set=4class"], "no such prepared root"),
        (["source={tmp}", "out={tmp}/o", "class_set=4class"], "has no dataset.json"),
        (["source={four}", "out={tmp}/o", "class_set=4class"], "already holds class set 4class"),
        (["source={seven}", "out={four}", "class_set=4class"], "is not an empty folder"),
        (["source={seven}", "out={seven}/sub", "class_set=4class"], "outside the source root"),
        (["source={seven}", "out={tmp}/o"], "source= needs class_set=<name>"),
        (["source={seven}", "class_set=4class"], "out is not set"),
        (["raw={tmp}", "out={tmp}/o", "class_set=4class"], "class_set=4class needs source="),
    ],
)
def test_bad_sources_are_one_line_errors(roots, tmp_path, capsys, args, message):
    _, seven, four, _, _ = roots
    (tmp_path / "stray.txt").write_text("not a root")
    names = {"tmp": tmp_path, "seven": seven, "four": four}
    line = run_error([a.format(**names) for a in args], capsys)
    assert message in line
    assert not (tmp_path / "o").exists()


def test_the_data_module_reads_the_roots_set_into_the_scheme(roots):
    """Built without ``class_set`` (the library, not a run's configuration), the module still
    records the set its root was written with."""
    from selfcross.data.datamodule import FoldDataModule

    _, _, four, _, _ = roots
    module = FoldDataModule(str(four), class_names=["angry", "happy", "sad", "neutral"],
                            class_counts=[1, 1, 1, 1], shapes=SHAPES)  # fmt: skip
    assert module.scheme() == {"split": "random", "seed": 0, "class_set": "4class"}
