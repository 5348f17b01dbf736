"""The models of conf/model/*.yaml, composed from the real configs rather than copied by hand,
for the tests that build an EmotionNet directly: a model added or changed there is tested as
it is configured."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from selfcross.config import CONFIG_DIR, compose

MODELS = tuple(sorted(path.stem for path in (CONFIG_DIR / "model").glob("*.yaml")))
"""Every selectable model (conf/model/base/ holds what they share)."""

ARCHITECTURE = ("fusion", "pooling", "transformer", "num_layers", "ffn_dim", "norm")
"""The network settings that make a model what it is; sizes and dropouts stay the tests' own."""


@cache
def _architecture(model: str) -> tuple:
    network = compose([f"model={model}"]).model.network
    return tuple((key, network[key]) for key in ARCHITECTURE if key in network)


def architecture(model: str) -> dict:
    """EmotionNet's keyword arguments of conf/model/<model>.yaml's architecture: fusion and
    pooling, and the layer settings of the transformer models."""
    return dict(_architecture(model))


def train_tiny_run(tmp: Path, run_dir: Path, data_dir: Path, *overrides: str) -> Path:
    """Train and test one run on the tiny synthetic preset (2 epochs, no sanity check) into
    ``run_dir``, as ``selfcross.run`` leaves it; ``overrides`` pick the model and modality."""
    from selfcross.training.experiment import train_and_test
    from tests.conftest import base_overrides

    cfg = compose([*base_overrides(tmp), f"paths.output_dir={run_dir}",
                   f"paths.data_dir={data_dir}", "data.preset=tiny", *overrides,
                   "trainer.max_epochs=2", "trainer.num_sanity_val_steps=0"])  # fmt: skip
    assert train_and_test(cfg).status == "done"
    return run_dir


def save_untrained_run(
    tmp: Path, run_dir: Path, data_dir: Path, model: str, modality: str, *extra: str,
    wa: float, uwa: float,
) -> Path:  # fmt: skip
    """A run folder as ``selfcross.run`` leaves it (result.json with the resolved configuration
    and the fold's data, checkpoints/best.ckpt) with untrained, seeded weights: cheap to make.
    ``extra``: more overrides; ``wa``, ``uwa``: the record's test scores."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from tests.conftest import base_overrides
    from tests.helpers.recordkit import write_run

    cfg = compose([*base_overrides(tmp), f"paths.output_dir={run_dir}",
                   f"paths.data_dir={data_dir}", "data.preset=tiny", f"model={model}",
                   f"modality={modality}", *extra])  # fmt: skip
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    torch.manual_seed(0)
    module = instantiate(cfg.model)
    (run_dir / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "epoch": 0}, run_dir / "checkpoints/best.ckpt")
    write_run(
        run_dir, model, modality, 1, 1, wa, uwa,
        data={"name": "synthetic", "preset": "tiny", "root": str(datamodule.root),
              "fold_path": str(datamodule.fold_path),
              "fingerprint": datamodule.fold_data.fingerprint},
        config=OmegaConf.to_container(cfg, resolve=True),
    )  # fmt: skip
    return run_dir
