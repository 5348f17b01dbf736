"""A finished run rebuilt from its folder (selfcross.analysis.reload): the record carries values,
never code. Its ``_target_`` keys never decide what is built; an unknown key or a value of the
wrong kind is one line naming the file."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from selfcross.analysis.reload import reload_run
from selfcross.attention import main as attention_main
from selfcross.data import FoldDataModule
from selfcross.errors import DataError
from selfcross.models import EmotionRecognizer
from tests.helpers.modelkit import save_untrained_run

CALLS: list = []


def spy(*args, **kwargs):
    """What a tampered record points its ``_target_`` keys at: it records every call."""
    CALLS.append((args, kwargs))
    return "spied"


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory, data_dir) -> Path:
    """A run folder as selfcross.run leaves it (result.json with the resolved configuration and
    the fold's fingerprint, checkpoints/best.ckpt), with untrained weights: cheap to make."""
    tmp = tmp_path_factory.mktemp("reload")
    return save_untrained_run(tmp, tmp / "run", data_dir, "cross", "TV",
                              "model.scheduler.patience=3", wa=0.5, uwa=0.5)  # fmt: skip


def tampered(saved_run: Path, dest: Path, change) -> Path:
    """A copy of ``saved_run`` in ``dest`` whose record's config ``change(config)`` edited."""
    dest.mkdir(parents=True)
    (dest / "checkpoints").mkdir()
    best = saved_run / "checkpoints" / "best.ckpt"
    (dest / "checkpoints" / "best.ckpt").write_bytes(best.read_bytes())
    raw = json.loads((saved_run / "result.json").read_text())
    config = copy.deepcopy(raw["config"])
    change(config)
    (dest / "result.json").write_text(json.dumps({**raw, "config": config}))
    return dest


REDIRECTED = (
    "model._target_",
    "model.network._target_",
    "model.optimizer._target_",
    "model.scheduler._target_",
    "data._target_",
    "trainer._target_",
    "callbacks.model_checkpoint._target_",
)


def set_key(config: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


@pytest.mark.parametrize("target", ["tests.analysis.test_reload.spy", "subprocess.run"])
def test_a_records_targets_never_decide_what_is_built(saved_run, tmp_path, monkeypatch, target):
    """Fails on the code before issue 23: the record's _target_ keys were instantiated."""
    import subprocess

    monkeypatch.setattr(subprocess, "run", spy)
    CALLS.clear()

    def redirect(config):
        for dotted in REDIRECTED:
            set_key(config, dotted, target)
        config["model"]["optimizer"]["_partial_"] = False
        config["model"]["_args_"] = ["rm -rf /"]

    run_dir = tampered(saved_run, tmp_path / "run", redirect)
    run = reload_run(run_dir)
    assert CALLS == []
    assert type(run.module) is EmotionRecognizer and type(run.datamodule) is FoldDataModule
    assert run.cfg.model._target_ == "selfcross.models.EmotionRecognizer"
    assert (
        run.cfg.model.optimizer._target_ == "torch.optim.Adam"
        and run.cfg.model.optimizer._partial_
    )
    assert run.cfg.trainer._target_ == "lightning.pytorch.Trainer"
    assert "_args_" not in run.cfg.model
    state = torch.load(saved_run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    for name, tensor in run.module.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    optimizer = run.module.configure_optimizers()
    assert CALLS == [] and type(optimizer["optimizer"]) is torch.optim.Adam


def test_the_records_values_are_taken_and_old_class_names_still_reload(saved_run, tmp_path):
    """The values (not the code) of the record make the rebuilt configuration; a record written
    before the data module's rename (IemocapDataModule) and before keys existed reloads."""

    def old(config):
        config["data"]["_target_"] = "selfcross.data.IemocapDataModule"
        del config["model"]["modality_dropout"], config["data"]["labels"]

    run = reload_run(tampered(saved_run, tmp_path / "old", old))
    assert type(run.datamodule) is FoldDataModule
    assert run.cfg.model.scheduler.patience == 3  # the record's value, not conf's 10
    assert run.cfg.model.modality_dropout == 0.0  # absent from the record: conf's default
    assert run.cfg.data.preset == "tiny" and list(run.cfg.modality.modalities) == ["T", "V"]
    recorded = json.loads((saved_run / "result.json").read_text())["config"]
    assert (
        OmegaConf.to_container(run.cfg.model.network, resolve=True) == recorded["model"]["network"]
    )


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        ("model.network.evil", 1, "config: model.network.evil: no such configuration key"),
        ("surprise", {"a": 1}, "config: surprise: no such configuration key"),
        ("model.network.hidden", "sixty", "config: model.network.hidden='sixty': expected an "
                                          "integer (the default is 60)"),
        ("model.optimizer.lr", [0.1], "config: model.optimizer.lr=[0.1]: expected a number"),
        ("data.batch_size", True, "config: data.batch_size=True: expected an integer"),
        ("model.network.input_dropout", 0.5, "config: model.network.input_dropout=0.5: "
                                             "expected a mapping"),
        ("data.root", "${oc.env:HOME}", "config: data.root='${oc.env:HOME}': an interpolation"),
        ("model.name", "../../../etc/passwd", "model='../../../etc/passwd' is no option of"),
    ],
)  # fmt: skip
def test_an_unknown_key_or_a_wrong_kind_is_one_line_naming_the_file(
    saved_run, tmp_path, capsys, dotted, value, message
):
    """Fails on the code before issue 23: such a record was rebuilt as it said (or crashed)."""
    run_dir = tampered(saved_run, tmp_path / "run", lambda c: set_key(c, dotted, value))
    with pytest.raises(DataError) as info:
        reload_run(run_dir)
    assert str(info.value).startswith(f"{run_dir / 'result.json'}: ")
    assert message in str(info.value)
    with pytest.raises(SystemExit) as exit_info:
        attention_main([str(run_dir)])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {info.value}"]
