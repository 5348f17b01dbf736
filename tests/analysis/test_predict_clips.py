"""selfcross.predict on new clips: a clip of the fake MELD release that is also in the prepared
fold's test split gives the logits of the run's test pass; bad inputs are one line each."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from selfcross.analysis.reload import reload_run
from selfcross.predict import main as predict_main
from tests.helpers import meldkit
from tests.helpers.foldkit import shape_overrides
from tests.helpers.releasekit import prepare_quietly


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return meldkit.make_meld(tmp_path_factory.mktemp("meld"))


def train(folds: Path, tmp: Path, modality: str) -> Path:
    from selfcross.config import compose
    from selfcross.training.experiment import train_and_test
    from tests.conftest import base_overrides

    run_dir = tmp / f"run-{modality}"
    cfg = compose([*base_overrides(tmp), f"paths.output_dir={run_dir}", "data=meld",
                   f"data.root={folds}", *shape_overrides(meldkit.SHAPES), "model=cross",
                   f"modality={modality}", "trainer.max_epochs=2",
                   "trainer.num_sanity_val_steps=0"])  # fmt: skip
    assert train_and_test(cfg).status == "done"
    return run_dir


@pytest.fixture(scope="module")
def runs(release, tmp_path_factory):
    """The fake release prepared once; a tri-modal and an audio+video run trained on it."""
    tmp = tmp_path_factory.mktemp("meld-runs")
    prepare_quietly(meldkit.overrides(release, tmp / "folds"))
    return {m: train(tmp / "folds", tmp, m) for m in ("TVA", "VA")}


def test_logits_by_id(run_dir: Path) -> dict[str, np.ndarray]:
    run = reload_run(run_dir)
    data = run.datamodule.datasets["test"]
    with torch.inference_mode():
        logits = run.module(data.__getitems__(list(range(len(data))))).numpy()
    ids = json.loads((run.datamodule.fold_path / "manifest.json").read_text())["test"]
    assert len(ids) == len(logits)  # MELD: every kept clip has video
    return dict(zip(ids, logits, strict=True))


test_logits_by_id.__test__ = False


def transcript(clip) -> str:
    """The clip's line as preparation read it (the release's mis-decoded characters repaired)."""
    return meldkit.REPAIRED.get(clip.text, clip.text)


def write_manifest(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["id", "path", "transcript"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_test_clip_gives_the_runs_test_logits(release, runs, tmp_path, capsys):
    expected = test_logits_by_id(runs["TVA"])
    clips = [c for c in release.kept if c.split == "test"][:3]
    manifest = write_manifest(tmp_path / "clips.csv", [
        {"id": c.id, "path": str(c.clip), "transcript": transcript(c)} for c in clips
    ])  # fmt: skip
    out = tmp_path / "p.json"
    predict_main([str(runs["TVA"]), "--manifest", str(manifest), "--out", str(out)])
    rows = json.loads(out.read_text())["predictions"]
    assert [r["id"] for r in rows] == [c.id for c in clips]
    names = list(meldkit.CLASSES)
    for row, clip in zip(rows, clips, strict=True):
        np.testing.assert_allclose(row["logits"], expected[clip.id], rtol=0, atol=1e-5)
        assert row["predicted"] == names[int(np.argmax(expected[clip.id]))]
        assert row["modalities"] == "TVA"
    # one clip on the command line, its transcript given, with the release's word vectors
    clip = clips[0]
    predict = predict_main([str(runs["TVA"]), "--clip", str(clip.clip), "--text", transcript(clip),
                            f"glove={release.glove}"])  # fmt: skip
    np.testing.assert_allclose(predict.logits[0], expected[clip.id], rtol=0, atol=1e-5)
    assert "predicted" in capsys.readouterr().out


def test_an_exported_folder_predicts_the_clip_through_onnx_runtime_and_pytorch(
    release, runs, tmp_path, capsys
):
    from selfcross.export import main as export_main

    expected = test_logits_by_id(runs["TVA"])
    folder = tmp_path / "model"
    export_main([str(runs["TVA"]), "--out", str(folder)])
    clip = next(c for c in release.kept if c.split == "test")
    args = [str(folder), "--clip", str(clip.clip), "--text", transcript(clip)]
    with pytest.raises(SystemExit) as exit_info:  # no fold beside it: the word vectors are asked
        predict_main(args)
    assert exit_info.value.code == 2
    assert "pass glove=" in capsys.readouterr().err
    for backend in ("onnx", "torch"):
        got = predict_main([*args, f"glove={release.glove}", "--backend", backend]).logits[0]
        np.testing.assert_allclose(got, expected[clip.id], rtol=0, atol=1e-5)


def test_new_words_are_reported_and_other_word_vectors_refused(release, runs, tmp_path, capsys):
    clip = next(c for c in release.kept if c.split == "test")
    args = [str(runs["TVA"]), "--clip", str(clip.clip), "--text", "zzzunknown words here"]
    predictions = predict_main(args)
    assert any("zzzunknown" in n for n in predictions.notes)
    assert "out of vocabulary: zzzunknown" in capsys.readouterr().out
    other = tmp_path / "glove.txt"
    meldkit.write_glove(other, seed=5)
    with pytest.raises(SystemExit) as exit_info:
        predict_main([*args, f"glove={other}"])
    assert exit_info.value.code == 2
    assert "not those the run was trained with" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("run", "case", "message"),
    [
        ("TVA", "no_audio", "holds no audio stream"),
        ("TVA", "unreadable", "cannot be"),
        ("TVA", "missing", "no such file"),
        ("TVA", "empty_text", "empty transcript"),
        ("VA", "text", "the model uses no text (modalities VA): drop the transcript"),
        ("TVA", "no_text", "the model uses text (modalities TVA): give the transcript"),
    ],
)
def test_bad_inputs_are_one_line_with_exit_status_2(release, runs, capsys, run, case, message):
    good = next(c for c in release.kept if c.split == "test")
    path = {
        "no_audio": release.by_id("test-dia1_utt0").clip,
        "unreadable": release.by_id("dev-dia0_utt1").clip,
        "missing": good.clip.with_name("nothing.mp4"),
    }.get(case, good.clip)
    text = {"empty_text": " ", "no_text": None}.get(case, "hello")
    args = [str(runs[run]), "--clip", str(path), *(["--text", text] if text is not None else [])]
    with pytest.raises(SystemExit) as exit_info:
        predict_main(args)
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("warning: ")]  # fmt: skip
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def opened(features: dict | None, modalities=("A",)):
    from selfcross.analysis.inputs import OpenedModel
    from selfcross.data.inputs import RunInputs

    inputs = RunInputs(modalities=modalities, class_names=("a", "b"),
                       shapes={m: {"seq_len": 5, "feat_dim": 120} for m in modalities},
                       audio_standardize="none", audio_mean=None, audio_std=None,
                       drop_zero_video=False, vocabulary=None, embedding_sha256=None,
                       dataset="iemocap", features=features)  # fmt: skip
    return OpenedModel(Path("run"), "run", "self", inputs, {})


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (
            {"audio": {"kind": "wav2vec2", "layer": 6}},
            "features.audio.kind=wav2vec2: this selfcross computes only mfcc for new clips",
        ),
        (
            {"audio": {"n_mfcc": 40, "pre_emphasis": 0.97}},
            "features.audio: unknown settings pre_emphasis",
        ),
        ({"text": {}}, "features.audio: no settings recorded"),
        (None, "its data were not prepared by selfcross"),
    ],
)
def test_feature_settings_it_cannot_reproduce_are_refused(features, message):
    from selfcross.analysis.featurize import Featurizer, Resources
    from selfcross.errors import DataError

    with pytest.raises(DataError, match=message.replace(".", r"\.")):
        Featurizer(opened(features), Resources())
