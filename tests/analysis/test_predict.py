"""selfcross.predict on processed folds: what predict needs is saved with the run when it trains
(``inputs.json``) and recomputed from the fold for older runs; the predictions on the run's own
test split are the logits of its test pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from selfcross.analysis.inputs import run_inputs
from selfcross.analysis.reload import reload_run
from selfcross.data.inputs import INPUTS_FILE, read_inputs
from selfcross.predict import main as predict_main
from selfcross.training.record import read_record
from tests.helpers.modelkit import train_tiny_run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir) -> Path:
    """One tiny tri-modal cross run on synthetic data (2 epochs)."""
    tmp = tmp_path_factory.mktemp("predict")
    return train_tiny_run(tmp, tmp / "run", data_dir, "model=cross", "modality=TVA")


def test_logits(run) -> np.ndarray:
    """The reloaded run's logits over its test split, batch by batch as its test pass ran."""
    data = run.datamodule.datasets["test"]
    with torch.inference_mode():
        return run.module(data.__getitems__(list(range(len(data))))).numpy()


test_logits.__test__ = False


def test_training_saves_the_inputs_and_an_older_run_gets_the_same_from_its_fold(
    trained_run, tmp_path
):
    saved = read_inputs(trained_run / INPUTS_FILE)
    run = reload_run(trained_run)
    fold = run.datamodule.fold_data
    assert saved.modalities == ("T", "V", "A")
    assert saved.class_names == tuple(read_record(trained_run / "result.json").class_names)
    assert saved.audio_standardize == "feature"
    assert saved.audio_mean.dtype == np.float32
    np.testing.assert_array_equal(saved.audio_mean, fold.audio_mean)  # bit for bit
    np.testing.assert_array_equal(saved.audio_std, fold.audio_std)
    assert saved.shapes["A"] == {k: run.cfg.data.shapes.A[k] for k in ("seq_len", "feat_dim")}
    older = tmp_path / "older"
    shutil.copytree(trained_run, older)
    (older / INPUTS_FILE).unlink()
    recomputed = run_inputs(older)
    assert json.dumps(recomputed.to_json()) == json.dumps(saved.to_json())


def test_fold_predictions_are_the_runs_test_logits(trained_run, tmp_path, capsys):
    run = reload_run(trained_run)
    expected = test_logits(run)
    out = tmp_path / "p.json"
    predict_main([str(trained_run), "--fold", str(run.datamodule.fold_path), "--split", "test",
                  "--out", str(out)])  # fmt: skip
    rows = json.loads(out.read_text())["predictions"]
    got = np.array([r["logits"] for r in rows], np.float32)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    names = run.record.class_names
    assert [r["predicted"] for r in rows] == [names[i] for i in expected.argmax(1)]
    labels = run.datamodule.fold_data.splits["test"].labels
    assert [r["label"] for r in rows] == [names[i] for i in labels]
    assert all(r["modalities"] == "TVA" for r in rows)
    probs = np.array([[r["probabilities"][n] for n in names] for r in rows])
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-9)
    printed = capsys.readouterr().out
    assert "predicted" in printed and "accuracy" in printed


def test_fold_predictions_use_the_runs_statistics_not_the_folds(trained_run, tmp_path):
    """The audio of another fold is standardised with the run's train statistics."""
    from selfcross.analysis.inputs import open_model
    from selfcross.analysis.predict import fold_predictions

    model = open_model(trained_run)
    fold = Path(read_record(trained_run / "result.json").data.fold_path)
    before = fold_predictions(model, fold, "test").logits
    model.inputs.audio_mean = model.inputs.audio_mean + 1.0
    after = fold_predictions(model, fold, "test").logits
    assert np.abs(after - before).max() > 1e-4


def test_csv_output_has_one_probability_column_per_class(trained_run, tmp_path):
    fold = read_record(trained_run / "result.json").data.fold_path
    out = tmp_path / "p.csv"
    predict_main([str(trained_run), "--fold", fold, "--out", str(out)])
    lines = out.read_text().splitlines()
    names = read_record(trained_run / "result.json").class_names
    assert lines[0].split(",") == ["id", "predicted", "modalities", "label",
                                   *(f"p_{n}" for n in names)]  # fmt: skip
    assert len(lines) > 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text", "hi there"], "uses video and audio (modalities TVA): give a clip"),
        (["--fold", "/nonexistent/fold01"], "is not a fold folder"),
        (["--fold", "FOLD", "--split", "val"], "--split val: expected one of train, dev, test"),
        (["--clip", "x.mp4", "--backend", "onnx"], "only an exported folder"),
    ],
)
def test_bad_requests_are_one_line_with_exit_status_2(trained_run, capsys, args, message):
    fold = read_record(trained_run / "result.json").data.fold_path
    args = [a.replace("FOLD", fold) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        predict_main([str(trained_run), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_a_run_on_synthetic_data_has_no_features_to_reproduce(trained_run, tmp_path, capsys):
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        predict_main([str(trained_run), "--clip", str(clip), "--text", "hello"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "its data were not prepared by selfcross" in err
