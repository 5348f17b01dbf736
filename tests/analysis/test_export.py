"""selfcross.export: every model family exports to ONNX whose logits match PyTorch's (the
network as trained, fast CPU kernels included) at several batch sizes and text lengths; the
folder holds safetensors weights, config.json and a model card; selfcross.predict gives the
same predictions from it, through ONNX Runtime and through PyTorch, as from the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from selfcross.analysis.export import TOLERANCE, export_run
from selfcross.export import main as export_main
from selfcross.predict import main as predict_main
from tests.helpers.modelkit import MODELS, save_untrained_run


def saved_run(tmp: Path, data_dir: Path, model: str, modality: str, *extra: str) -> Path:
    """A run folder as selfcross.run leaves it, with untrained (seeded) weights: cheap."""
    return save_untrained_run(tmp, tmp / f"{model}-{modality}", data_dir, model, modality,
                              *extra, wa=0.61, uwa=0.55)  # fmt: skip


CASES = [(m, "TVA") for m in MODELS] + [("self", "A"), ("cross", "TV"), ("self_nosp", "VA")]


@pytest.mark.parametrize(("model", "modality"), CASES)
def test_every_model_exports_and_onnx_matches_pytorch(tmp_path, data_dir, model, modality):
    run_dir = saved_run(tmp_path, data_dir, model, modality)
    out, config = export_run(run_dir, tmp_path / "exported")
    check = config["onnx"]["checked"]
    assert check["tolerance"] == TOLERANCE and check["max_abs_diff"] <= TOLERANCE
    sizes = {c["batch"] for c in check["cases"]}
    assert {1, 3, 8} <= sizes and len(sizes) >= 4  # and the whole test split
    if "T" in modality:
        assert len({c["tokens"] for c in check["cases"]}) == 2
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "model.onnx", "model.safetensors"
    ]  # fmt: skip
    weights = load_file(str(out / "model.safetensors"))
    state = torch.load(run_dir / "checkpoints/best.ckpt", weights_only=True)["state_dict"]
    for key, value in weights.items():
        assert torch.equal(value, state[f"network.{key}"])
    assert config["modalities"] == list(modality) and config["model"] == model


def test_masked_padding_exports_with_length_inputs(tmp_path, data_dir):
    run_dir = saved_run(tmp_path, data_dir, "cross", "TVA", "model.network.mask_padding=true")
    _, config = export_run(run_dir, tmp_path / "exported")
    assert config["onnx"]["lengths_inputs"] is True
    assert config["onnx"]["checked"]["max_abs_diff"] <= TOLERANCE


@pytest.fixture(scope="module")
def exported(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("export")
    run_dir = saved_run(tmp, data_dir, "cross_self", "TVA")
    export_main([str(run_dir), "--out", str(tmp / "model")])
    return run_dir, tmp / "model"


def test_the_folder_predicts_as_the_run_through_onnx_and_pytorch(exported, tmp_path):
    run_dir, folder = exported
    fold = json.loads((run_dir / "result.json").read_text())["data"]["fold_path"]
    logits = {}
    for name, source, backend in (("run", run_dir, "torch"), ("torch", folder, "torch"),
                                  ("onnx", folder, "onnx")):  # fmt: skip
        predictions = predict_main([str(source), "--fold", fold, "--backend", backend])
        logits[name] = predictions.logits
        assert len(predictions.ids) == len(predictions.logits) > 1
    np.testing.assert_array_equal(logits["torch"], logits["run"])
    np.testing.assert_allclose(logits["onnx"], logits["run"], rtol=TOLERANCE, atol=TOLERANCE)
    assert (logits["onnx"].argmax(1) == logits["run"].argmax(1)).all()


def test_config_and_model_card_carry_what_rebuilding_and_reading_need(exported):
    run_dir, folder = exported
    config = json.loads((folder / "config.json").read_text())
    record = json.loads((run_dir / "result.json").read_text())
    assert config["class_names"] == record["class_names"]
    assert config["inputs"]["audio"]["standardize"] == "feature"
    assert len(config["inputs"]["audio"]["mean"]) == config["inputs"]["shapes"]["A"]["feat_dim"]
    assert config["network"]["fusion"] == "cross_self"
    assert config["onnx"]["inputs"]["V"][0] == "batch" and config["onnx"]["inputs"]["T"][1] == (
        "tokens"
    )
    assert "_target_" not in json.dumps(config)
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlicense: other\n")
    assert "| WA | 0.6100 |" in card and "| UWA | 0.5500 |" in card
    assert f"{config['n_params']:,} parameters" in card
    for name in record["class_names"]:
        assert f"| {name} |" in card
    assert "Licence" in card and "Intended use" in card


def test_an_existing_folder_that_is_no_model_is_not_overwritten(exported, tmp_path, capsys):
    run_dir, _ = exported
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(SystemExit) as exit_info:
        export_main([str(run_dir), "--out", str(tmp_path / "mine")])
    assert exit_info.value.code == 2
    assert "is not an exported model folder" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
