"""W&B: offline by default, the test metrics in its files, never fatal, no secrets written."""

from __future__ import annotations

import json

import pytest

from selfcross.config import compose
from selfcross.training import tracking
from selfcross.training.experiment import train_and_test
from tests.conftest import base_overrides
from tests.helpers.wandb_records import config_values, logged_values

SECRET = "0123456789abcdef0123456789abcdef01234567"


def test_mode_follows_config_then_environment_then_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert not tracking.has_credentials()
    assert tracking.resolve_mode(None) == "offline"
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    assert tracking.has_credentials() and tracking.resolve_mode(None) == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert tracking.resolve_mode(None) == "offline"
    assert tracking.resolve_mode("disabled") == "disabled"
    with pytest.raises(ValueError, match="mode"):
        tracking.resolve_mode("sometimes")


def test_run_id_is_stable_per_output_folder(tmp_path):
    a = tracking.run_id(tmp_path / "x", "self-TVA-fold1-seed1")
    assert a == tracking.run_id(tmp_path / "x", "self-TVA-fold1-seed1")
    assert a != tracking.run_id(tmp_path / "y", "self-TVA-fold1-seed1")


def test_offline_run_files_hold_the_test_metrics_and_no_key(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)  # present, but this run is told to stay offline
    cfg = compose([*base_overrides(tmp_path), f"paths.data_dir={data_dir}", "debug=fast",
                   "logger=wandb", "logger.wandb.mode=offline"])  # fmt: skip
    result = train_and_test(cfg).record
    runs = list((tmp_path / "out" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    (run_file,) = runs[0].glob("run-*.wandb")
    values = logged_values(run_file)
    assert values["test/uwa"] == pytest.approx(result.test_uwa)
    assert values["test/wa"] == pytest.approx(result.test_wa)
    assert values["n_params"] == result.n_params
    assert "val/uwa" in values and "val/wa" in values and "lr" in values
    assert "test/confusion_matrix_table/_type" in values  # the confusion-matrix plot
    config = config_values(run_file)
    assert config["model"]["name"] == "self" and config["fold"] == 1
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_run_goes_on_when_wandb_cannot_start(tmp_path, monkeypatch, data_dir, caplog):
    import lightning.pytorch.loggers as loggers

    def broken(*args, **kwargs):
        raise RuntimeError("cannot reach the W&B service")

    monkeypatch.setattr(loggers, "WandbLogger", broken)
    cfg = compose(
        [
            *base_overrides(tmp_path),
            f"paths.data_dir={data_dir}",
            "debug=fast",
            "logger=wandb",
            "logger.wandb.mode=offline",
            "trainer.max_epochs=1",
        ]
    )
    result = train_and_test(cfg).record
    assert "W&B could not start (cannot reach the W&B service)" in caplog.text
    assert (
        json.loads((tmp_path / "out" / "result.json").read_text())["test_uwa"] == result.test_uwa
    )


def test_unreachable_server_falls_back_to_offline(tmp_path, monkeypatch, data_dir, caplog):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(tracking, "_online_failed", False)
    overrides = [*base_overrides(tmp_path), f"paths.data_dir={data_dir}", "debug=fast",
                 "logger=wandb", "logger.wandb.mode=online", "logger.wandb.init_timeout=3",
                 "trainer.max_epochs=1"]  # fmt: skip
    result = train_and_test(compose(overrides)).record
    assert "W&B online could not start" in caplog.text
    assert "logging offline instead (upload later with `wandb sync" in caplog.text
    (run_dir,) = (tmp_path / "out" / "wandb").glob("offline-run-*")
    (run_file,) = run_dir.glob("run-*.wandb")
    assert logged_values(run_file)["test/uwa"] == pytest.approx(result.test_uwa)
    # the next run of this process does not wait for the server again
    caplog.clear()
    logger = tracking.make_wandb_logger(
        "selfcross", str(tmp_path / "next"), "next", mode="online", init_timeout=3
    )
    assert "online failed earlier in this process" in caplog.text
    assert logger.experiment.settings.mode == "offline"
    tracking.finish([logger])
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_dashboard_is_built_offline_with_table1_panels():
    from selfcross.training.workspace import build_workspace

    workspace = build_workspace("my-team", data_label="iemocap")
    spec = workspace._to_model().model_dump_json()  # the payload W&B would receive
    assert workspace.project == "selfcross" and workspace.name == "selfcross Table 1 (iemocap)"
    titles = [p.title for s in workspace.sections for p in s.panels]
    assert any("Test UWA" in t for t in titles) and any("Test WA" in t for t in titles)
    assert "summary_metrics.test/uwa" in spec and "data.label" in spec
    assert "model.value.name" in spec and "modality.value.name" in spec  # runs grouped by cell


def test_dashboard_without_credentials_explains_and_exits_2(monkeypatch, tmp_path, capsys):
    from selfcross import dashboard

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    with pytest.raises(SystemExit) as exit_info:
        dashboard.main(["--entity", "my-team"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the dashboard is saved to W&B and needs W&B credentials")
    assert len(err.strip().splitlines()) == 1


def test_a_feature_set_other_than_the_papers_joins_the_wandb_group_and_tags(tmp_path, monkeypatch):
    """The root's manifest names the feature set; build_loggers tells the W&B logger, whose
    group and tags then name it (a paper run's group and tags are unchanged)."""
    from selfcross.manifest import FoldsManifest, write_manifest
    from selfcross.training.experiment import build_loggers
    from tests.helpers.foldkit import SHAPES, make_root, shape_overrides

    root = tmp_path / "folds"
    make_root(root, folds=(1,))
    wavlm = {"encoder": "wavlm", "weights": "1a2b3c4d5e6f7a8b", "layer": "last", "width": 2,
             "rate": 50.0}  # fmt: skip
    dims = {m: {"seq_len": s["seq_len"], "feat_dim": s["feat_dim"]} for m, s in SHAPES.items()}
    names = ("angry", "excited", "happy", "sad", "frustrated", "surprise", "neutral")
    write_manifest(root, FoldsManifest("iemocap", 1, names, dims, "random", {"set": {"A": wavlm}}))
    seen = {}
    monkeypatch.setattr(tracking, "make_wandb_logger", lambda **kw: seen.update(kw))
    cfg = compose([*base_overrides(tmp_path), "logger=wandb", "data=iemocap", f"data.root={root}",
                   *shape_overrides(SHAPES), "model=cross", "modality=TA"])  # fmt: skip
    build_loggers(cfg)
    assert seen["feature_set"] == "T=glove V=resnet101 A=wavlm@1a2b3c4d/last"
    group, tags = tracking.feature_group(seen["group"], seen["tags"], seen["feature_set"])
    assert group == "cross-TA [T=glove V=resnet101 A=wavlm@1a2b3c4d/last]"
    assert tags[-3:] == ["features:T=glove", "features:V=resnet101",
                         "features:A=wavlm@1a2b3c4d/last"]  # fmt: skip
    assert tracking.feature_group("cross-TA", ["cross"], "paper") == ("cross-TA", ["cross"])
