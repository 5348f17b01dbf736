"""A root of ten folds (split=speaker): the manifest's count reaches validation, the data module
and the tables' default grid."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from selfcross.config import compose, validate
from selfcross.data.datasets import dataset
from selfcross.errors import ConfigError
from selfcross.manifest import FoldsManifest, write_manifest
from selfcross.report.select import manifest_folds
from tests.helpers.foldkit import SHAPES, make_fold, shape_overrides


@pytest.fixture
def ten_folds(tmp_path):
    root = tmp_path / "speaker"
    make_fold(root / "fold10", seed=10)
    shapes = {m: {"seq_len": s["seq_len"], "feat_dim": s["feat_dim"]} for m, s in SHAPES.items()}
    names = tuple(dataset("iemocap").class_names)
    write_manifest(root, FoldsManifest("iemocap", 10, names, shapes, "speaker"))
    return root


def test_fold_10_of_a_ten_fold_root_loads_and_fold_11_is_refused(ten_folds, tmp_path):
    def config(fold):
        return compose(["data=iemocap", f"data.root={ten_folds}", f"fold={fold}",
                        f"data.cache_dir={tmp_path / 'cache'}", *shape_overrides()])  # fmt: skip

    cfg = config(10)
    validate(cfg)
    module = instantiate(cfg.data)
    assert module.n_folds == 10 and module.fold_path.name == "fold10"
    module.setup("fit")
    assert len(module.fold_data.splits["test"]) > 0
    with pytest.raises(ConfigError, match=r"fold=11: folds are numbered 1\.\.10"):
        validate(config(11))


def test_the_tables_default_grid_is_the_roots_ten_folds(ten_folds, tmp_path):
    from tests.helpers.recordkit import write_run

    write_run(tmp_path / "runs" / "self" / "TV", "self", "TV", 10, 1, 0.5, 0.6,
              data={"root": str(ten_folds), "name": "iemocap", "preset": None})  # fmt: skip
    assert manifest_folds(tmp_path / "runs") == tuple(range(1, 11))


def test_a_fold_records_its_evaluation_scheme(ten_folds, tmp_path):
    """split and seed from the fold's manifest.json (as selfcross.prepare writes it), the class
    set from the configuration; a root without manifests is Yoon's random folds."""
    import json

    (ten_folds / "fold10" / "manifest.json").write_text(
        json.dumps({"fold": 10, "split": "speaker", "seed": 3, "train": [], "dev": [], "test": []})
    )

    def scheme(root, *extra):
        cfg = compose(["data=iemocap", f"data.root={root}", "fold=10", *shape_overrides(),
                       *extra])  # fmt: skip
        return instantiate(cfg.data).scheme()

    assert scheme(ten_folds) == {"split": "speaker", "seed": 3, "class_set": None}
    four = scheme(ten_folds, "class_set=4class")
    assert four == {"split": "speaker", "seed": 3, "class_set": "4class"}
    make_fold(tmp_path / "yoon" / "fold10", seed=1)
    yoon = scheme(tmp_path / "yoon", "data.n_folds=10")
    assert yoon == {"split": "random", "seed": None, "class_set": None}
    synthetic = compose([f"paths.data_dir={tmp_path}", "data.synthetic.seed=4"])
    assert instantiate(synthetic.data).scheme() == {
        "split": "random",
        "seed": 4,
        "class_set": None,
    }


def test_a_scheme_falls_back_to_the_roots_manifest_then_to_random(ten_folds):
    """Without a fold manifest the root's dataset.json names the split; a fold manifest written
    before folds recorded their split is Yoon's random split."""
    import json

    def scheme():
        cfg = compose(["data=iemocap", f"data.root={ten_folds}", "fold=10", *shape_overrides()])
        return instantiate(cfg.data).scheme()

    assert scheme() == {"split": "speaker", "seed": None, "class_set": None}
    (ten_folds / "fold10" / "manifest.json").write_text(json.dumps({"fold": 10, "seed": 2}))
    assert scheme() == {"split": "random", "seed": 2, "class_set": None}
