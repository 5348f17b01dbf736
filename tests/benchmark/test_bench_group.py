"""``selfcross.bench --seed-group K``: a group against K single runs, FLOP share, memory."""

from __future__ import annotations

import json

import pytest
import torch
from hydra.utils import instantiate

from selfcross import bench
from selfcross.benchmark.group import Group, Singles, step_flops
from selfcross.benchmark.variants import network_config, random_batch
from selfcross.models.streams import SeedStream

TINY = ["--preset", "tiny", "--steps", "1", "--warmup", "0", "--threads", "1"]


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_a_row_per_cell_with_ratio_share_of_peak_and_memory(capsys):
    assert bench.main([*TINY, "--seed-group", "2", "--models", "cross", "--modalities", "TV"]) == 0
    out, err = capsys.readouterr()
    (row,) = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert (row["model"], row["modality"], row["seed_group"]) == ("cross", "TV", 2)
    assert row["speedup"] == pytest.approx(row["singles_step_ms"] / row["group_step_ms"], rel=0.05)
    assert row["group_samples_per_s"] == pytest.approx(64e3 / row["group_step_ms"], rel=0.01)
    assert row["gemm_peak_gflops"] > 0 and row["step_gflop"] > 0
    rate = (
        row["step_gflop"] / row["group_step_ms"] * 1e3 / row["gemm_peak_gflops"]
    )  # FLOP/s / peak
    assert row["group_share_of_peak"] == pytest.approx(rate, rel=0.1, abs=0.002)
    ratio = row["group_share_of_peak"] / row["singles_share_of_peak"]
    assert ratio == pytest.approx(row["speedup"], rel=0.1)
    assert row["group_step_mb"] > 0 and row["peak_rss_mb"] >= row["group_step_mb"]
    assert (row["device"], row["precision"]) == ("cpu", "32-true")
    assert "group_peak_gpu_mb" not in row  # GPU memory only on CUDA
    assert "peak %" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_group_is_timed_on_the_gpu_with_its_peak_memory(capsys):
    args = ["--seed-group", "2", "--models", "cross", "--modalities", "TV", "--device", "cuda"]
    assert bench.main([*TINY, *args]) == 0
    out, _ = capsys.readouterr()
    (row,) = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert row["device"].startswith("cuda") and row["group_step_ms"] > 0
    assert row["group_peak_gpu_mb"] > 0 and row["singles_peak_gpu_mb"] > 0


def test_the_per_layer_split_of_a_group_is_cpu_only(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(SystemExit) as exit_:
        bench.main([*TINY, "--seed-group", "2", "--layers", "--device", "cuda"])
    assert exit_.value.code == 2
    assert "--seed-group --layers: on --device cpu" in capsys.readouterr().err


def test_the_group_and_the_singles_compute_the_same_networks_on_the_same_batches():
    net_cfg, shapes = network_config("self", "TV", "tiny")
    streams = [SeedStream(s) for s in (1, 2)]
    nets = [s.build(lambda: instantiate(net_cfg)) for s in streams]
    batches = [random_batch(shapes, nets[0].modalities, 4, "cpu", torch.float32) for _ in nets]
    group = Group(nets, streams, batches)
    Singles(nets, batches)  # its own optimisers, the same networks
    with torch.no_grad():
        logits = group.net.eval()(group.batch).view(2, 4, -1)
        for net, batch, member in zip(nets, batches, logits, strict=True):
            torch.testing.assert_close(member, net.eval()(batch), rtol=1e-4, atol=1e-5)
    assert not torch.equal(logits[0], logits[1])  # two initialisations


def test_step_flops_counts_forward_and_backward():
    linear = torch.nn.Linear(8, 3)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = linear

        def forward(self, batch):
            return self.linear(batch["x"])

    batch = {"x": torch.randn(5, 8), "label": torch.zeros(5, dtype=torch.long)}
    # forward 2*5*8*3; backward: the weight's gradient as much again (the data need none)
    assert step_flops(Net(), batch) == 2 * 2 * 5 * 8 * 3
    batch["x"].requires_grad_()  # and the input's gradient as much again
    assert step_flops(Net(), batch) == 3 * 2 * 5 * 8 * 3


@pytest.mark.parametrize("k", ["0", "-1"])
def test_a_group_needs_a_positive_count(capsys, k):
    with pytest.raises(SystemExit) as exit_info:
        bench.main([*TINY, "--seed-group", k])
    assert exit_info.value.code == 2
    assert "--seed-group: a count of at least 1" in capsys.readouterr().err


def test_layers_mode_times_each_stacked_layer_against_k_single_ones(capsys):
    assert bench.main([*TINY, "--seed-group", "2", "--layers"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[:1] == "{"]
    names = [r["layer"] for r in rows]
    assert names[:3] == ["T encoder 8x16", "V encoder 5x24", "A encoder 12x20"]
    assert "A->A self-attention" in names and "T->A cross-attention" in names
    for r in rows:
        assert r["singles_ms"] > 0 and r["group_ms"] > 0
        assert r["speedup"] == pytest.approx(r["singles_ms"] / r["group_ms"], rel=0.05)
