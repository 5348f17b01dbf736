"""The presets' sweep folders carry the evaluation scheme when it is not the paper's (random
folds, all classes), so that runs of two schemes never share a folder (where the other
scheme's finished runs would be set aside); the paper's scheme keeps today's names exactly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from selfcross.config import compose
from selfcross.manifest import FoldsManifest, scheme_suffix, write_manifest

SHAPES = {m: {"seq_len": 4, "feat_dim": 3} for m in "TVA"}
ROOT = Path(__file__).resolve().parents[2]


def root_of(tmp_path: Path, split: str, class_set: str | None = None) -> Path:
    root = tmp_path / f"{split}-{class_set}"
    root.mkdir()
    names = ("angry", "happy", "sad", "neutral") if class_set else ("a", "b")
    held = {"name": class_set} if class_set else None
    write_manifest(root, FoldsManifest("iemocap", 5, names, SHAPES, split, class_set=held))
    return root


def names(*overrides: str) -> tuple[str, ...]:
    """(sweep folder of table1, of tune and tuned, the tuned runs' study, Hydra's sweep dir)."""
    table1 = compose(["experiment=table1", *overrides], with_hydra=True)
    tune = compose(["experiment=tune", *overrides])
    tuned = compose(["experiment=tuned", *overrides])
    return (
        table1.sweep_name,
        tune.sweep_name,
        tuned.sweep_name,
        tuned.tuned.study,
        str(table1.hydra.sweep.dir),
    )


def test_the_papers_scheme_keeps_todays_folder_names(tmp_path):
    expected = ("paper-iemocap", "tune-iemocap-self-TVA", "tuned-iemocap",
                "multirun/tune-iemocap-self-TVA", "multirun/paper-iemocap")  # fmt: skip
    assert names("data=iemocap", f"data.root={root_of(tmp_path, 'random')}") == expected
    assert names("data=iemocap", f"data.root={tmp_path / 'yoon'}") == expected  # no manifest
    assert names()[0] == "paper-synthetic-small"
    assert names("data=synthetic_session")[0] == "paper-synthetic-session-small"
    assert names("data=meld", f"data.root={root_of(tmp_path, 'official')}")[0] == "paper-meld"
    for preset, name in (("table2", "paper"), ("table3", "paper"), ("table5", "table5"),
                         ("modality_dropout", "modality-dropout"),
                         ("mask_padding", "mask_padding")):  # fmt: skip
        cfg = compose([f"experiment={preset}", "data=iemocap", f"data.root={tmp_path / 'yoon'}"])
        assert cfg.sweep_name == f"{name}-iemocap"


@pytest.mark.parametrize(
    "split, class_set, derived, suffix",
    [
        ("session", None, False, "-session"),
        ("speaker", None, False, "-speaker"),
        ("random", "4class", False, "-4class"),
        ("session", "4class", False, "-session-4class"),
        ("random", "4class", True, "-4class"),  # a root written with the set
    ],
)
def test_another_scheme_gets_its_own_folders(tmp_path, split, class_set, derived, suffix):
    root = root_of(tmp_path, split, class_set if derived else None)
    extra = [f"class_set={class_set}"] if class_set else []
    got = names("data=iemocap", f"data.root={root}", *extra)
    assert got == (f"paper-iemocap{suffix}", f"tune-iemocap{suffix}-self-TVA",
                   f"tuned-iemocap{suffix}", f"multirun/tune-iemocap{suffix}-self-TVA",
                   f"multirun/paper-iemocap{suffix}")  # fmt: skip
    assert scheme_suffix(root, class_set) == suffix


def test_an_unreadable_manifest_leaves_the_name_to_validation(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "dataset.json").write_text("{ not json")
    assert scheme_suffix(root) == ""


def test_the_makefile_names_the_same_folders(tmp_path):
    session = root_of(tmp_path, "session")
    out = subprocess.run(["make", "-n", "table4", "DATA=iemocap", f"DATA_ROOT={session}"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "sweep_name=paper-iemocap-session " in out
    assert "--results multirun/paper-iemocap-session " in out
    assert "--tuned multirun/tuned-iemocap-session" in out
    random = root_of(tmp_path, "random")
    out = subprocess.run(["make", "-n", "table1", "DATA=iemocap", f"DATA_ROOT={random}"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "sweep_name=paper-iemocap " in out and "paper-iemocap-" not in out
