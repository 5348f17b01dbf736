"""A seed group trains where its single run would (``trainer.accelerator``/``devices`` and the
job's GPU slot, :func:`selfcross.training.gpus.run_device`) and in its precision. Without a GPU
the device-generic code runs on the CPU (the same function picks the device, bf16 autocast on
the CPU); the CUDA cases run where a GPU is present.

On CUDA a member replays its single run's initialisation and shuffling (both drawn on the CPU)
but not its dropout masks: PyTorch's CUDA dropout draws with fused kernels of its own, so a
member draws its masks from a CUDA generator seeded with its seed
(``selfcross/models/streams.py``); the CUDA test checks determinism and checkpoints, not
equality with the single run."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from selfcross.errors import ConfigError
from selfcross.models.streams import SeedStream
from selfcross.training import gpus, groupplan, groupstate
from selfcross.training.group import train_group

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def trainer(accelerator="auto", devices=1):
    return OmegaConf.create({"accelerator": accelerator, "devices": devices})


@pytest.mark.parametrize(
    ("accelerator", "devices", "slot", "cuda", "expected"),
    [
        ("cpu", 1, None, True, "cpu"),
        ("auto", 1, None, False, "cpu"),
        ("auto", 1, None, True, "cuda:0"),
        ("auto", "auto", None, True, "cuda:0"),
        ("gpu", [2], None, True, "cuda:2"),
        ("cuda", "3,", None, True, "cuda:3"),
        ("gpu", 1, 1, True, "cuda:1"),  # the slot wins, as in the single run's trainer
        ("cpu", 1, 1, True, "cuda:1"),
        ("cpu", 1, 1, False, "cpu"),  # a slot without CUDA changes nothing
    ],
)
def test_a_group_trains_on_its_single_runs_device(
    monkeypatch, accelerator, devices, slot, cuda, expected
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert gpus.run_device(trainer(accelerator, devices), slot) == torch.device(expected)
    single = {"accelerator": accelerator, "devices": devices, **gpus.trainer_devices(slot)}
    assert (single["devices"] == [slot]) == (slot is not None and cuda)


@pytest.mark.parametrize(
    ("accelerator", "devices", "message"),
    [("gpu", 2, "trainer.devices=2: a seed group trains on one device"),
     ("gpu", [0, 1], "trainer.devices=\\[0, 1\\]"),
     ("mps", 1, "trainer.accelerator=mps: a seed group trains on cpu or cuda only")],
)  # fmt: skip
def test_several_devices_or_another_accelerator_are_refused(
    monkeypatch, accelerator, devices, message
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ConfigError, match=message):
        gpus.run_device(trainer(accelerator, devices))


def group_cfg(make_cfg, data_dir, tmp_path, *extra):
    return make_cfg(f"paths.data_dir={data_dir}", "debug=fast", "model=cross", "modality=TV",
                    f"paths.output_dir={tmp_path / 'group'}", "seed=1", *extra)  # fmt: skip


def test_bf16_mixed_trains_the_group_under_autocast_and_16_mixed_is_refused(
    make_cfg, data_dir, tmp_path
):
    plain = train_group(group_cfg(make_cfg, data_dir, tmp_path), (1, 2))
    bf16 = train_group(group_cfg(make_cfg, data_dir, tmp_path, "trainer.precision=bf16-mixed"),
                       (1, 2))  # fmt: skip
    for a, b in zip(plain, bf16, strict=True):
        losses = [h["train/loss"] for h in b.history]
        assert losses[-1] < losses[0]
        assert b.history[-1]["val/uwa"] > 0.25  # four classes
        # the same run in bfloat16: near the float32 numbers, not equal to them
        assert a.history[0]["train/loss"] != losses[0]
        assert losses[0] == pytest.approx(a.history[0]["train/loss"], abs=0.05)
    with pytest.raises(ConfigError, match="trainer.precision=16-mixed: a seed group trains"):
        train_group(group_cfg(make_cfg, data_dir, tmp_path, "trainer.precision=16-mixed"), (1,))


def test_auto_measures_the_gpu_when_the_group_trains_on_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (6 * 2**30, 80 * 2**30))
    budget = groupplan.memory_budget(torch.device("cuda", 0))
    assert budget == int(6 * 2**30 * groupplan.CPU_BUDGET_SHARE)
    assert groupplan.memory_budget(torch.device("cpu")) == groupplan.memory_budget()


@needs_cuda
def test_a_members_cuda_masks_come_from_a_cuda_generator_of_its_seed():
    stream = SeedStream(7)
    x = torch.ones(1000, device="cuda")
    first = stream.dropout(x, 0.5)
    expected = torch.empty_like(x).bernoulli_(
        0.5, generator=torch.Generator("cuda").manual_seed(7)
    )
    assert torch.equal(first, expected / 0.5)
    saved, cpu = stream.device_state(), stream.generator.get_state()
    again = SeedStream(7)
    again.set_device_state(saved)
    assert torch.equal(again.dropout(x, 0.5), stream.dropout(x, 0.5))
    assert torch.equal(stream.generator.get_state(), cpu)  # the CPU stream drew nothing


@needs_cuda
def test_a_group_on_cuda_is_deterministic_and_saves_what_a_cpu_loads(make_cfg, data_dir, tmp_path):
    cfg = group_cfg(make_cfg, data_dir, tmp_path, "trainer.accelerator=gpu")
    saved = []

    def save(members, net, optimizer, epoch):
        saved.append(groupstate.member_checkpoint(members[0], 0, net, optimizer, epoch))

    first = train_group(cfg, (1, 2), on_epoch=save)
    second = train_group(cfg, (1, 2))
    for a, b in zip(first, second, strict=True):  # the same masks; CUDA's sums to rounding
        assert [h["epoch"] for h in a.history] == [h["epoch"] for h in b.history]
        for x, y in zip(a.history, b.history, strict=True):
            assert y == pytest.approx(x, abs=1e-4)
        assert a.history[-1]["train/loss"] < a.history[0]["train/loss"]
    tensors = [v for v in saved[-1]["state_dict"].values()]
    tensors += saved[-1]["seed_group"]["exp_avg"] + list(first[0].best_state.values())
    assert {t.device.type for t in tensors} == {"cpu"}
    path = tmp_path / "ckpt"
    torch.save(saved[-1], path)
    assert torch.load(path, map_location="cpu", weights_only=True)["epoch"] == saved[-1]["epoch"]


def test_a_group_holds_one_gpu_slot_and_records_it_for_every_member(
    make_cfg, data_dir, tmp_path, monkeypatch
):
    from selfcross.training.grouprun import run_group

    monkeypatch.setenv(gpus.ENV_GPUS, "1")  # a job of the local_gpus launcher
    monkeypatch.setenv(gpus.ENV_SLOT_DIR, str(tmp_path / "slots"))
    cfgs = [make_cfg(f"paths.data_dir={data_dir}", "debug=fast", "trainer.max_epochs=1",
                     f"seed={s}", f"paths.output_dir={tmp_path / f'seed{s}'}")
            for s in (1, 2)]  # fmt: skip
    records = [o.record for o in run_group(cfgs)]
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"  # slot 0's GPU where CUDA is
    assert [(r.gpu_slot, r.device) for r in records] == [(0, expected), (0, expected)]


def test_an_unsupported_precision_is_refused_before_any_folder(make_cfg, data_dir, tmp_path):
    from selfcross.training.grouprun import run_group

    cfgs = [make_cfg(f"paths.data_dir={data_dir}", "debug=fast", "trainer.accelerator=cpu",
                     "trainer.precision=16-mixed", f"seed={s}",
                     f"paths.output_dir={tmp_path / f'seed{s}'}")
            for s in (1, 2)]  # fmt: skip
    with pytest.raises(ConfigError, match="trainer.precision=16-mixed: a seed group trains"):
        run_group(cfgs)
    assert not (tmp_path / "seed1").exists() and not (tmp_path / "seed2").exists()
