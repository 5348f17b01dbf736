"""Class sets: IEMOCAP's 4 classes derived from 7-class folds while loading (class_set=4class)."""

from __future__ import annotations

import numpy as np
import pytest
from hydra.utils import instantiate

from selfcross.config import compose, validate
from selfcross.data.datasets import class_set_map, dataset
from selfcross.errors import ConfigError
from selfcross.training.resume import config_hash
from tests.helpers.foldkit import make_root, shape_overrides

FOUR = (0, 1, 1, 2, -1, -1, 3)
"""angry, excited, happy, sad, frustrated, surprise, neutral -> angry, happy, sad, neutral."""


def test_the_4class_set_merges_happy_and_excited_and_leaves_out_frustrated_and_surprise():
    iemocap = dataset("iemocap")
    spec = iemocap.class_sets["4class"]
    assert list(spec.of) == list(iemocap.class_names)  # the full set's class ids
    assert class_set_map("4class", iemocap.class_sets) == FOUR
    # the published 4-class counts are the 7-class ones merged: 5,531 utterances
    merged = [0, 0, 0, 0]
    for source, target in enumerate(FOUR):
        if target >= 0:
            merged[target] += iemocap.class_counts[source]
    assert merged == list(spec.class_counts) == [1103, 1636, 1084, 1708]
    assert sum(merged) == 5531
    # the release labels of each class follow the merge
    assert {k: list(v) for k, v in spec.labels.items()} == {
        "angry": ["ang"], "happy": ["hap", "exc"], "sad": ["sad"], "neutral": ["neu"],
    }  # fmt: skip


def test_a_fold_with_other_class_names_maps_by_name():
    sets = dataset("iemocap").class_sets
    reordered = ["neutral", "surprise", "frustrated", "sad", "happy", "excited", "angry"]
    assert class_set_map("4class", sets, reordered) == (3, -1, -1, 2, 1, 1, 0)
    with pytest.raises(ConfigError, match="takes class 'excited', which the folds do not have"):
        class_set_map("4class", sets, ["angry", "happy", "sad", "neutral"])


def _config(root, cache, *extra):
    return compose(["data=iemocap", f"data.root={root}", f"data.cache_dir={cache}",
                    *shape_overrides(), *extra])  # fmt: skip


def _loaded(cfg):
    validate(cfg)
    module = instantiate(cfg.data)
    module.setup("fit")
    return module.fold_data


def _rewritten(source, target):
    """The 4-class fold written by hand from a 7-class one: rows of frustrated and surprise
    removed, labels renumbered (what a 4-class preparation of the same utterances holds)."""
    target.mkdir(parents=True)
    labels = {s: np.load(source / f"{s}_label.npy") for s in ("train", "dev", "test")}
    for path in source.glob("*.npy"):
        array = np.load(path, allow_pickle=False)
        split = path.name.split("_")[0]
        if split in labels:
            rows = np.asarray(FOUR)[labels[split]] >= 0
            array = array[rows]
            if path.name.endswith("_label.npy"):
                array = np.asarray(FOUR)[array]
        np.save(target / path.name, array, allow_pickle=False)


def test_loading_with_the_class_set_equals_a_rewritten_4class_fold(tmp_path, caplog):
    """Load-time derivation gives the utterances, labels and features (audio standardised with
    the same train rows) of the same fold rewritten as 4-class files; the 7-class load of the
    same fold, through the same cache, is unchanged."""
    arrays = make_root(tmp_path / "seven", folds=(1,))[1]
    _rewritten(tmp_path / "seven" / "fold01", tmp_path / "four" / "fold01")
    cache = tmp_path / "cache"
    seven = _loaded(_config(tmp_path / "seven", cache))
    with caplog.at_level("INFO", logger="selfcross"):
        derived = _loaded(_config(tmp_path / "seven", cache, "class_set=4class"))
    here = np.sum([np.bincount(derived.splits[s].labels, minlength=4) for s in derived.splits], 0)
    assert (
        f"class set 4class: angry (angry) {here[0]} here, 1103 published; happy (happy+excited) "
        f"{here[1]} here, 1636 published; sad (sad) {here[2]} here, 1084 published; neutral "
        f"(neutral) {here[3]} here, 1708 published"
    ) in caplog.text
    four_cfg = _config(tmp_path / "four", cache, "data.class_names=[angry,happy,sad,neutral]",
                       "data.num_classes=4")  # fmt: skip
    rewritten = _loaded(four_cfg)
    for split in ("train", "dev", "test"):
        a, b = derived.splits[split], rewritten.splits[split]
        assert a.labels.tolist() == b.labels.tolist()
        assert set(a.labels.tolist()) <= {0, 1, 2, 3}
        for modality in ("T", "V", "A"):
            np.testing.assert_array_equal(a.features[modality], b.features[modality])
        assert a.n_dropped == b.n_dropped  # only the utterances without video
        # the 7-class load keeps every class, the 4-class one the utterances of its classes
        labels7 = arrays[f"{split}_label"][arrays[f"{split}_video_seqN"] > 0]
        assert seven.splits[split].labels.tolist() == labels7.tolist()
        expected = np.asarray(FOUR)[labels7]
        assert a.labels.tolist() == expected[expected >= 0].tolist()


def test_the_class_set_is_hashed_and_checked(tmp_path):
    make_root(tmp_path / "seven", folds=(1,))
    plain = _config(tmp_path / "seven", tmp_path / "cache")
    four = _config(tmp_path / "seven", tmp_path / "cache", "class_set=4class")
    assert four.model.network.num_classes == 4 and four.data.class_set == "4class"
    assert config_hash(four) != config_hash(plain)
    assert "class_set" not in plain.data  # every earlier configuration as it was
    meld = compose(["data=meld", f"data.root={tmp_path}", "class_set=4class"])
    with pytest.raises(ConfigError, match="class_set=4class: data=meld has no such class set"):
        validate(meld)
    synthetic = compose(["class_set=4class", f"paths.data_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="synthetic folds are generated with the full"):
        validate(synthetic)


def test_selfcross_check_counts_the_class_set_beside_its_published_counts(tmp_path):
    """`python -m selfcross.check ... class_set=4class` on 7-class folds: the set's classes,
    counted as a run reads them, beside the set's published counts."""
    from selfcross.check import check_config

    arrays = make_root(tmp_path / "seven")
    root, cache = tmp_path / "seven", tmp_path / "cache"
    report = check_config(["data=iemocap", f"data.root={root}", "class_set=4class",
                           f"data.cache_dir={cache}", *shape_overrides()])  # fmt: skip
    assert report.ok, report.format()
    assert report.class_names == ("angry", "happy", "sad", "neutral")
    assert report.published == {"angry": 1103, "happy": 1636, "sad": 1084, "neutral": 1708}
    labels = np.asarray(FOUR)[arrays[1]["test_label"]]
    test = report.folds[0].splits["test"]
    assert test.class_counts == np.bincount(labels[labels >= 0], minlength=4).tolist()
    assert test.n == int((labels >= 0).sum())  # the set's utterances, not the file's rows
    lines = report.format().splitlines()
    happy = next(line.split() for line in lines if line.startswith("  1 happy"))
    total = next(line.split() for line in lines if line.startswith("  all "))
    assert happy[-1] == "1636" and total[-1] == "5531"
    assert int(total[3]) == test.n  # the test column counts the set's utterances
