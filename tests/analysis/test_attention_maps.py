"""python -m selfcross.attention (attention maps, entropy, attention on padding) and the
masking table (python -m selfcross.tables masking)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from scipy import stats

from selfcross.analysis.attention import HeadStats, attention_sites, pick_utterances, row_entropy
from selfcross.analysis.records import (
    ATTENTION_FILE,
    AttentionRecord,
    NewerSchema,
    read_attention,
)
from selfcross.attention import main as attention_main
from selfcross.config import compose
from tests.conftest import base_overrides, run_cli
from tests.helpers.recordkit import write_run
from tests.helpers.reportkit import md_tables, rate, run_main

# -- statistics on hand-made attention --------------------------------------------------------


def test_entropy_of_a_hand_made_attention_matrix():
    weights = torch.tensor([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25] * 4])
    torch.testing.assert_close(row_entropy(weights), torch.tensor([math.log(2), 0.0, math.log(4)]))


def test_head_statistics_on_hand_made_weights():
    # One utterance, 2 heads, 3 query steps (the last is padding), 4 keys (the last is padding).
    head0 = [[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 1.0]]
    head1 = [[0.0, 0.0, 0.0, 1.0], [0.4, 0.1, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0]]
    weights = torch.tensor([[head0, head1]])
    query_valid = torch.tensor([[True, True, False]])
    key_valid = torch.tensor([[True, True, True, False]])
    s = HeadStats(2)
    s.add(weights, query_valid, key_valid, masked=False)
    out = s.summary()
    assert out["rows"] == 2  # the padded query row is not counted
    assert out["entropy"] == pytest.approx(
        [(math.log(2) + math.log(4)) / 2, _h([0.4, 0.1, 0.5]) / 2]
    )
    assert out["padding_share"] == pytest.approx([0.25 / 2, (1.0 + 0.5) / 2])
    assert out["uniform_entropy"] == pytest.approx(math.log(4))  # unmasked: all 4 keys
    masked = HeadStats(2)
    masked.add(weights, query_valid, key_valid, masked=True)
    assert masked.summary()["uniform_entropy"] == pytest.approx(math.log(3))
    # An utterance without a valid key adds no row.
    empty = HeadStats(2)
    empty.add(weights, query_valid, torch.zeros(1, 4, dtype=torch.bool), masked=True)
    assert empty.summary()["rows"] == 0


def _h(p):
    return -sum(x * math.log(x) for x in p if x > 0)


def test_picked_utterances_span_the_classes_reproducibly():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    picked = pick_utterances(labels, 4)
    assert sorted(labels[picked].tolist()) == [0, 1, 2, 3]
    assert picked == pick_utterances(labels, 4)
    six = pick_utterances(labels, 6)
    assert six[:4] == picked and len(set(six)) == 6
    assert len(pick_utterances(labels, 50)) == len(labels)


# -- a finished run, made by hand: configuration, weights, result.json ------------------------


def make_run(tmp: Path, data_root: Path, model: str, mask: bool, folder: str) -> Path:
    """A run folder as selfcross.run leaves it: result.json (resolved config, fold fingerprint)
    and checkpoints/best.ckpt (a Lightning checkpoint's state_dict)."""
    run_dir = tmp / folder
    overrides = [
        *base_overrides(tmp),
        f"paths.output_dir={run_dir}",
        f"paths.data_dir={data_root}",
        "data.preset=tiny",
        "data.drop_zero_video=false",
        f"model={model}",
        f"model.network.mask_padding={str(mask).lower()}",
    ]
    cfg = compose(overrides)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    torch.manual_seed(0)
    module = instantiate(cfg.model)
    (run_dir / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "epoch": 0}, run_dir / "checkpoints/best.ckpt")
    write_run(
        run_dir, model, "TVA", 1, 1, 0.5, 0.5,
        data={"fingerprint": dm.fold_data.fingerprint, "root": str(dm.root)},
        config=OmegaConf.to_container(cfg, resolve=True),
    )  # fmt: skip
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attention")
    data_root = tmp / "data"
    return {
        (model, mask): make_run(tmp, data_root, model, mask, f"{model}-{mask}")
        for model in ("cross_self", "cross_transformer")
        for mask in (False, True)
    }


@pytest.mark.parametrize("model", ["cross_self", "cross_transformer"])
def test_attention_report_masked_and_unmasked(runs, model, capsys):
    plain = runs[(model, False)]
    attention_main([str(plain), "--utterances", "3"])
    out = capsys.readouterr().out
    result = json.loads((plain / "attention" / "attention.json").read_text())
    assert result["mask_padding"] is False and result["n_utterances"] > 0
    expected = (
        {"self_attention.T", "self_attention.V", "self_attention.A"}
        | {f"cross_attention.{p}" for p in ("V2T", "A2T", "T2V", "A2V", "T2A", "V2A")}
        if model == "cross_self"
        else {f"cross_attention.{p}.layers.0" for p in ("V2T", "A2T", "T2V", "A2V", "T2A", "V2A")}
    )
    assert set(result["modules"]) == expected
    assert list(result) == ATTENTION_KEYS  # the layout of files written before the record
    assert read_attention(plain / "attention" / ATTENTION_FILE).to_dict() == result
    for name, m in result["modules"].items():
        assert len(m["entropy"]) == len(m["padding_share"]) == m["heads"] == 6
        assert 0 <= m["entropy_mean"] <= m["uniform_entropy"] + 1e-9
        assert name in out
    # The tiny fold pads every modality: unmasked attention puts mass on padding.
    assert all(m["padding_share_mean"] > 0 for m in result["modules"].values())
    pngs = sorted((plain / "attention").glob("*.png"))
    assert len(pngs) == 3 == len(result["utterances"])
    assert {u["png"] for u in result["utterances"]} == {p.name for p in pngs}
    assert all(p.stat().st_size > 10_000 for p in pngs)

    masked = runs[(model, True)]
    attention_main([str(masked)])
    masked_result = json.loads((masked / "attention" / "attention.json").read_text())
    assert masked_result["mask_padding"] is True
    assert len(masked_result["utterances"]) == 4  # the default
    for m in masked_result["modules"].values():
        assert m["padding_share"] == [0.0] * 6
        assert m["rows"] > 0


ATTENTION_KEYS = [
    "schema_version", "run", "model", "modality", "fold", "seed", "mask_padding", "checkpoint",
    "split", "n_utterances", "valid_rule", "modules", "utterances",
]  # fmt: skip


def test_attention_record_reads_old_files_and_names_what_it_cannot_read(runs, tmp_path):
    """A file written before schema_version existed reads as version 1; a newer or broken one
    is a ValueError saying why, never a crash or a silent default."""
    run_dir = runs[("cross_self", False)]
    attention_main([str(run_dir), "--utterances", "1", "--out", str(tmp_path / "new")])
    raw = json.loads((tmp_path / "new" / ATTENTION_FILE).read_text())
    assert raw["schema_version"] == 1
    old = {k: v for k, v in raw.items() if k != "schema_version"}
    record = AttentionRecord.from_dict(old)
    assert record.schema_version == 1 and record.to_dict() == raw
    module = next(iter(record.modules.values()))
    assert module.heads == len(module.entropy) == 6
    assert record.utterances[0].png.endswith(".png")
    with pytest.raises(NewerSchema, match="schema_version 2 is newer than this selfcross"):
        AttentionRecord.from_dict({**raw, "schema_version": 2})
    with pytest.raises(ValueError, match="missing key modules.self_attention.T.rows"):
        bad = {k: v for k, v in raw["modules"]["self_attention.T"].items() if k != "rows"}
        AttentionRecord.from_dict({**raw, "modules": {"self_attention.T": bad}})
    broken = tmp_path / ATTENTION_FILE
    broken.write_text(json.dumps(raw)[:50])
    with pytest.raises(ValueError, match="not valid JSON"):
        read_attention(broken)
    assert read_attention(tmp_path / "absent.json") is None


def test_recorded_rows_sum_to_one_and_match_the_module_output(runs):
    """The recorded weights are the real module's: each valid row is a distribution, and
    recording does not change the network's output."""
    from selfcross.analysis.reload import reload_run

    run = reload_run(runs[("cross_self", True)])
    network = run.module.network
    batch = next(iter(run.datamodule.test_dataloader()))
    with torch.no_grad():
        plain = network(batch)
        sites = attention_sites(network)
        for site in sites:
            site.module.record_weights = True
        recorded = network(batch)
        valid = network.valid_steps(batch)
    torch.testing.assert_close(recorded, plain, rtol=1e-5, atol=1e-6)
    for site in sites:
        weights = site.module.last_weights  # [B, H, Lq, Lk]
        has_keys = valid[site.key].any(-1)
        sums = weights.sum(-1)
        torch.testing.assert_close(sums[has_keys], torch.ones_like(sums[has_keys]))
        assert sums[~has_keys].abs().max() == 0 if (~has_keys).any() else True
        assert weights.masked_select(~valid[site.key][:, None, None, :]).abs().max() == 0


def test_cli_errors_are_one_line(tmp_path, runs, capsys):
    def error(*args) -> str:
        with pytest.raises(SystemExit) as info:
            attention_main(list(args))
        assert info.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        return lines[0]

    assert "no such run folder" in error(str(tmp_path / "nowhere"))
    assert "result.json: missing" in error(str(tmp_path))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "result.json").write_text("{not json")
    assert "malformed" in error(str(broken))
    pruned = tmp_path / "pruned"
    pruned.mkdir()
    source = runs[("cross_self", False)]
    (pruned / "result.json").write_text((source / "result.json").read_text())
    line = error(str(pruned))
    assert "checkpoints: no best checkpoint" in line and "keep_checkpoints" in line
    assert "--utterances 0" in error(str(source), "--utterances", "0")


def test_cli_wrong_checkpoint_is_one_line(tmp_path, runs):
    other = tmp_path / "mismatch"
    source = runs[("cross_self", False)]
    (other / "checkpoints").mkdir(parents=True)
    (other / "result.json").write_text((source / "result.json").read_text())
    wrong = runs[("cross_transformer", False)] / "checkpoints/best.ckpt"
    (other / "checkpoints/best.ckpt").write_bytes(wrong.read_bytes())
    done = run_cli("selfcross.attention", str(other))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "best.ckpt: cannot be loaded into the run's model" in lines[0]


# -- the masking table ------------------------------------------------------------------------

KEYS = [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
WA = {
    ("self", False): [0.50, 0.52, 0.51, 0.53, 0.49, 0.50],
    ("self", True): [0.58, 0.60, 0.59, 0.61, 0.62, 0.57],
    ("cross", False): [0.45, 0.47, 0.44, 0.46, 0.48, 0.45],
    ("cross", True): [0.44, 0.43, 0.45, 0.42, 0.47],  # no fold 2 seed 3; below unmasked
}


def write_masking_runs(root: Path) -> None:
    for (model, mask), values in WA.items():
        for (fold, seed), wa in zip(KEYS, values, strict=False):
            folder = root / f"{model}/TVA/mask_padding-{str(mask).lower()}/fold{fold}/seed{seed}"
            config = {"model": {"network": {"mask_padding": True}}} if mask else {}
            write_run(folder, model, "TVA", fold, seed, wa, wa + 0.1, config=config)


def test_masking_table_from_result_files(tmp_path):
    write_masking_runs(tmp_path / "runs")
    out = tmp_path / "tables"
    run_main("masking", "--results", str(tmp_path / "runs"), "--out", str(out),
             "--folds", "1-2", "--seeds", "1-3")  # fmt: skip
    sections = md_tables((out / "masking.md").read_text())
    wa_rows = {r["Model"]: r for r in next(v for k, v in sections.items() if k.startswith("WA"))}
    for model, label in (("self", "Self"), ("cross", "Cross")):
        a, b = np.array(WA[(model, False)]), np.array(WA[(model, True)])
        row = wa_rows[label]
        assert row["Unmasked (paper)"].startswith(f"{rate(a.mean())} ± {rate(a.std(ddof=1))}")
        assert rate(b.mean()) in row["Masked"]
        p = stats.ttest_ind(b, a).pvalue
        assert row["p t-test"].rstrip("*") == ("<.0001" if p < 1e-4 else f"{p:.4f}"[1:])
        assert row["p t-test"].endswith("*") == (p < 0.05)
        n = min(len(a), len(b))
        p_rel = stats.ttest_rel(b[:n], a[:n]).pvalue
        assert row["p paired"] == f"{p_rel:.4f}".removeprefix("0")
        assert row["pairs"] == str(n)
    for model, label in (("self", "Self"), ("cross", "Cross")):  # masked mean - unmasked mean
        delta = np.mean(WA[(model, True)]) - np.mean(WA[(model, False)])
        sign = "+" if delta >= 0 else "-"
        assert wa_rows[label]["Masked - unmasked"] == sign + rate(abs(delta))
    assert wa_rows["Cross"]["Masked - unmasked"].startswith("-")
    assert "*" in wa_rows["Self"]["Masked"]  # the significant, higher side
    assert "†" in wa_rows["Cross"]["Masked"]  # 5 of 6 runs
    text = (out / "masking.md").read_text()
    assert "masked: Cross T+V+A: 5 of 6 runs; missing fold 2 seed 3" in text.replace("(", "")
    with (out / "masking.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    cells = {(r["metric"], r["model"]): r for r in rows if r["table"] == "masking"}
    tests = {(r["metric"], r["model"]): r for r in rows if r["table"] == "masking-test"}
    assert float(cells[("uwa", "self/masked")]["mean"]) == pytest.approx(
        np.mean(WA[("self", True)]) + 0.1
    )
    assert cells[("wa", "cross/masked")]["n"] == "5"
    assert tests[("wa", "self/masked")]["compared_with"] == "self/unmasked"
    assert float(tests[("wa", "self/masked")]["p_ttest_ind"]) == pytest.approx(
        stats.ttest_ind(WA[("self", True)], WA[("self", False)]).pvalue
    )


def test_masking_table_metrics_option_chooses_the_blocks(tmp_path):
    """``--metrics wf1,uwa``: a weighted F1 block (the records' test_wf1, here their WA) and a
    UWA block, in that order, each tested."""
    write_masking_runs(tmp_path / "runs")
    out = tmp_path / "tables"
    run_main("masking", "--results", str(tmp_path / "runs"), "--out", str(out),
             "--folds", "1-2", "--seeds", "1-3", "--metrics", "wf1,uwa")  # fmt: skip
    sections = md_tables((out / "masking.md").read_text())
    assert [k.split(" ")[0] for k in sections] == ["WF1", "UWA"]
    wf1 = {r["Model"]: r for r in next(iter(sections.values()))}
    a = np.array(WA[("self", False)])
    assert wf1["Self"]["Unmasked (paper)"].startswith(f"{a.mean():.3f}".removeprefix("0"))


def test_masking_table_without_runs_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as info:
        run_main("masking", "--results", str(tmp_path / "empty"))
    assert info.value.code == 2
    assert "nothing to tabulate" in capsys.readouterr().err


def test_masking_preset_sweeps_both_settings_into_separate_folders(tmp_path):
    """experiment=mask_padding's grid, and a reduced sweep of it: the masked and unmasked runs
    of one (model, fold, seed) land in separate folders and both reach the masking table."""
    from tests.helpers.sweepkit import TINY, hydra_cfg

    params = hydra_cfg("experiment=mask_padding").hydra.sweeper.params
    assert params.model == "self,cross" and params.modality == "TVA"
    assert params["model.network.mask_padding"] == "false,true"
    assert params.fold == "1,2,3,4,5" and params.seed == "range(1,11)"
    sweep = tmp_path / "sweep"
    proc = run_cli("selfcross.run", "-m", "experiment=mask_padding", "model=self", "fold=1",
                   "seed=1", *TINY, "trainer.max_epochs=1", f"paths.data_dir={tmp_path / 'd'}",
                   f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = sorted(p.parent.relative_to(sweep).as_posix() for p in sweep.rglob("result.json"))
    assert found == [
        "self/TVA/mask_padding-False/fold1/seed1",
        "self/TVA/mask_padding-True/fold1/seed1",
    ]
    masked = json.loads((sweep / found[1] / "result.json").read_text())
    assert masked["config"]["model"]["network"]["mask_padding"] is True
    run_main("masking", "--results", str(sweep), "--out", str(tmp_path / "t"),
             "--folds", "1", "--seeds", "1")  # fmt: skip
    rows = list(csv.DictReader((tmp_path / "t" / "masking.csv").open()))
    n = {r["model"]: r["n"] for r in rows if r["table"] == "masking" and r["metric"] == "wa"}
    assert n == {"self/unmasked": "1", "self/masked": "1", "cross/unmasked": "0",
                 "cross/masked": "0"}  # fmt: skip
