"""The benchmark: its JSON lines, the per-layer mode, the Table 1 projection and its errors."""

from __future__ import annotations

import json
import math

import pytest

from selfcross import bench
from selfcross.benchmark.projection import TABLE1, epoch_seconds, projection
from tests.conftest import run_cli

TINY = ["--preset", "tiny", "--steps", "2", "--warmup", "1", "--threads", "1"]


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture(autouse=True)
def keep_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_one_line_per_configuration_with_baseline_ratio(capsys):
    assert bench.main([*TINY, "--models", "self,cross", "--modalities", "TVA,TV"]) == 0
    out, err = capsys.readouterr()
    rows = json_lines(out)
    assert [(r["model"], r["modality"]) for r in rows] == [
        ("self", "TVA"), ("self", "TV"), ("cross", "TVA"), ("cross", "TV"),
    ]  # fmt: skip
    for r in rows:
        assert r["device"] == "cpu" and r["dtype"] == "float32" and r["batch"] == 32
        assert r["baseline_dtype"] == "float64"
        assert r["train_step_ms"] > 0 and r["eval_batch_ms"] > 0
        assert r["samples_per_s"] == pytest.approx(32e3 / r["train_step_ms"], rel=1e-2)
        assert r["train_speedup"] == pytest.approx(
            r["baseline_train_step_ms"] / r["train_step_ms"], abs=0.01
        )
        assert r["eval_speedup"] == pytest.approx(
            r["baseline_eval_batch_ms"] / r["eval_batch_ms"], abs=0.01
        )
        lo, hi = r["train_step_ms_range"]
        assert lo <= r["train_step_ms"] <= hi
        assert r["max_logit_diff"] < 1e-5  # same weights and inputs: same logits
        assert r["fast_paths"] == {
            "attention_weights": False,
            "fused_gru": True,
            "blocked_attention": True,
        }
        assert r["machine"]["threads"] == 1 and r["machine"]["torch"]
        assert r["machine"]["cpu"] and r["machine"]["gpu"] is None
    assert "train ms" in err and "cross  TV" in err


def test_overrides_and_no_baseline(capsys):
    bench.main(
        [*TINY, "--models", "self", "--modalities", "A", "--no-baseline", "--batch", "8"]
        + ["model.network.fused_gru=false"]
    )
    (row,) = json_lines(capsys.readouterr().out)
    assert row["batch"] == 8 and row["eval_batch"] == 8
    assert row["fast_paths"]["fused_gru"] is False
    assert not any(k.startswith("baseline") or k.endswith("speedup") for k in row)


def test_layers_mode_times_every_layer(capsys):
    bench.main([*TINY, "--layers"])
    rows = json_lines(capsys.readouterr().out)
    names = [r["layer"] for r in rows]
    # tiny preset: T [8, 16]; V [5, 24] -> conv 4; A [12, 20] -> conv 6
    assert names == [
        "T bi-GRU 8x16",
        "V conv 5->4", "V bi-GRU 4x24",
        "A conv 12->6", "A bi-GRU 6x20",
        "T self-attention 8x8", "V self-attention 4x4", "A self-attention 6x6",
        "V->T cross-attention 8x4", "A->T cross-attention 8x6",
        "T->V cross-attention 4x8", "A->V cross-attention 4x6",
        "T->A cross-attention 6x8", "V->A cross-attention 6x4",
    ]  # fmt: skip
    for r in rows:
        assert r["train_ms"] > 0 and r["eval_ms"] > 0 and r["baseline_train_ms"] > 0


def test_projection_formula():
    rows = [
        {"model": m, "modality": s, "batch": 32, "eval_batch": 64, "train_step_ms": 100.0,
         "eval_batch_ms": 50.0, "baseline_train_step_ms": 400.0, "baseline_eval_batch_ms": 100.0}
        for m, subsets in TABLE1.items() for s in subsets
    ]  # fmt: skip
    assert TABLE1 == {
        "self": ["T", "V", "A", "TV", "TA", "VA", "TVA"], "cross": ["TV", "TA", "VA", "TVA"],
    }  # fmt: skip
    p = projection(rows, epochs=30, parallel=2)
    assert p["runs"] == 550 and p["missing_cells"] == []
    epoch = math.ceil(5990 / 32) * 0.1 + math.ceil(374 / 64) * 0.05  # 188 steps, 6 batches
    assert p["epoch_s"]["cross TVA"] == pytest.approx(epoch)
    assert p["hours"] == pytest.approx(550 * 30 * epoch / 2 / 3600, abs=0.01)
    base_epoch = math.ceil(5990 / 32) * 0.4 + math.ceil(374 / 64) * 0.1
    assert p["baseline_hours"] == pytest.approx(550 * 30 * base_epoch / 2 / 3600, abs=0.01)
    partial = projection(rows[:3], epochs=30, parallel=1)
    assert "hours" not in partial and "cross TVA" in partial["missing_cells"]


def test_sweep_measures_the_eleven_cells_and_projects(capsys):
    bench.main([*TINY, "--steps", "1", "--warmup", "0", "--sweep", "--no-baseline",
                "--epochs", "20", "--parallel", "4"])  # fmt: skip
    rows = json_lines(capsys.readouterr().out)
    cells, projected = rows[:-1], rows[-1]
    assert [(r["model"], r["modality"]) for r in cells] == [
        (m, s) for m, subsets in TABLE1.items() for s in subsets
    ]
    assert projected["projection"] == "table1" and projected["runs"] == 550
    assert projected["hours"] == pytest.approx(
        sum(50 * 20 * epoch_seconds(r) for r in cells) / 4 / 3600, abs=0.01
    )
    assert "baseline_hours" not in projected


@pytest.mark.parametrize(
    "args,message",
    [
        (["--device", "cuda"], "no CUDA device"),
        (["--models", "self,selfish"], "unknown model 'selfish'"),
        (["--modalities", "TX"], "'TX' is not a subset"),
        (["--models", "cross", "--modalities", "A"], "needs at least two modalities"),
        (["--precision", "bf16-mixed"], "CUDA fast path"),
        (["--steps", "0"], "at least 1"),
    ],
)
def test_bad_arguments_are_one_line_errors(capsys, args, message):
    import torch

    if args == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(SystemExit) as exit_info:
        bench.main([*TINY, *args])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_command_line():
    proc = run_cli("selfcross.bench", *TINY, "--models", "self", "--modalities", "T")
    assert proc.returncode == 0, proc.stderr
    (row,) = json_lines(proc.stdout)
    assert row["model"] == "self" and row["modality"] == "T" and row["train_speedup"] > 0
    assert "self   T" in proc.stderr


def test_transformer_variants_against_the_float64_reference_way(capsys):
    models = "self_transformer,cross_transformer"
    assert bench.main([*TINY, "--models", models, "--modalities", "TV"]) == 0
    rows = json_lines(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["self_transformer", "cross_transformer"]
    for r in rows:
        assert r["baseline_dtype"] == "float64"
        assert r["max_logit_diff"] < 1e-5  # the same layers, computed the reference way
        assert r["train_speedup"] == pytest.approx(
            r["baseline_train_step_ms"] / r["train_step_ms"], abs=0.01
        )
