"""Missing-modality evaluation and modality dropout: the blanking, the dropout masks, the
ablation of a real tiny run (its full set reproduces result.json), and the table built from
ablation.json files."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import stats

from selfcross.ablate import main
from selfcross.analysis.ablation import BlankedSplit, ablate_results, present_subsets
from selfcross.analysis.records import (
    ABLATION_FILE,
    ABLATION_SCHEMA,
    AblationRecord,
    read_ablation,
)
from selfcross.models.blanking import blank, dropout_masks, train_means
from selfcross.report.ablation import make_ablation_report
from selfcross.training.record import read_record
from tests.helpers.modelkit import train_tiny_run
from tests.helpers.recordkit import write_run


def expect_error(capsys, *args: str) -> str:
    """Run ``selfcross.ablate`` expecting exit status 2; its one stderr line."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# -- blanking ----------------------------------------------------------------------------------


def hand_batch(b: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "T": torch.randn(b, 4, 5, generator=g) + 1.0,
        "V": torch.randn(b, 2, 3, generator=g) + 1.0,
        "A": torch.randn(b, 6, 2, generator=g) + 1.0,
        "label": torch.tensor([0, 1, 2][:b]),
        "lengths_A": torch.tensor([6, 3, 1][:b]),
    }


def test_blank_zeros_every_sample_and_nothing_else():
    batch = hand_batch()
    out = blank(batch, {"V": True}, "zeros")
    assert torch.equal(out["V"], torch.zeros(3, 2, 3))
    for key in ("T", "A", "label", "lengths_A"):
        assert out[key] is batch[key]
    assert (batch["V"] != 0).all()  # the input batch is not modified


def test_blank_rows_with_train_mean():
    batch = hand_batch()
    means = {"A": torch.tensor([10.0, -20.0])}
    out = blank(batch, {"A": torch.tensor([False, True, False])}, "train_mean", means)
    expected = batch["A"].clone()
    expected[1, :, 0] = 10.0
    expected[1, :, 1] = -20.0
    assert torch.equal(out["A"], expected)
    assert torch.equal(out["T"], batch["T"]) and torch.equal(out["V"], batch["V"])


def test_blank_refuses_an_unknown_fill_and_a_missing_mean():
    with pytest.raises(Exception, match="fill='ones'"):
        blank(hand_batch(), {"T": True}, "ones")
    with pytest.raises(ValueError, match="train mean of T"):
        blank(hand_batch(), {"T": True}, "train_mean", {})


def test_train_means_are_the_mean_over_every_train_frame():
    rng = np.random.default_rng(1)
    audio = rng.normal(size=(5, 7, 3)).astype(np.float32)  # N, L, D all different
    audio[:, 5:] = 0.0  # padding counts as frames
    ids = rng.integers(0, 4, size=(5, 6))
    embedding = rng.normal(size=(4, 2)).astype(np.float32)
    train = SimpleNamespace(features={"A": audio, "T": ids})
    dm = SimpleNamespace(fold_data=SimpleNamespace(splits={"train": train}, embedding=embedding))
    means = train_means(dm, ["T", "A"])
    hand_a = [
        sum(float(audio[n, t, d]) for n in range(5) for t in range(7)) / 35 for d in range(3)
    ]
    hand_t = [
        sum(float(embedding[ids[n, t], d]) for n in range(5) for t in range(6)) / 30
        for d in range(2)
    ]
    assert means["A"].shape == (3,) and means["T"].shape == (2,)
    np.testing.assert_allclose(means["A"].numpy(), hand_a, rtol=1e-6)
    np.testing.assert_allclose(means["T"].numpy(), hand_t, rtol=1e-6)


# -- modality dropout ----------------------------------------------------------------------------


def test_dropout_never_blanks_every_modality_and_keeps_its_rate():
    torch.manual_seed(0)
    n, p = 20000, 0.9
    masks = dropout_masks(n, "TVA", p)
    dropped = torch.stack([masks[m] for m in "TVA"], dim=1)
    assert not dropped.all(dim=1).any()
    # Per modality: drawn blank (p), minus the all-blank draws where it is the one kept.
    expected = p - p**3 / 3
    for m in "TVA":
        assert abs(masks[m].float().mean().item() - expected) < 0.015
    assert (dropped.sum(dim=1) == 2).float().mean().item() > 0.5  # mostly one kept
    two = dropout_masks(n, "TA", p)
    assert not (two["T"] & two["A"]).any()


def test_dropout_is_reproducible_and_off_at_zero():
    torch.manual_seed(5)
    a = dropout_masks(64, "TV", 0.3)
    torch.manual_seed(5)
    b = dropout_masks(64, "TV", 0.3)
    assert all(torch.equal(a[m], b[m]) for m in "TV")
    state = torch.get_rng_state()
    zero = dropout_masks(64, "TVA", 0.0)
    assert not any(zero[m].any() for m in "TVA")
    assert torch.equal(state, torch.get_rng_state())  # p=0 draws nothing: the paper's runs
    assert not dropout_masks(64, "A", 0.9)["A"].any()  # one modality: nothing to drop


class Recording(torch.nn.Module):
    """Wraps a network and keeps the inputs it was called with."""

    def __init__(self, network):
        super().__init__()
        self.inner = network
        self.seen: list[dict[str, torch.Tensor]] = []
        self.classifier = network.classifier

    def forward(self, batch):
        self.seen.append({k: v.clone() for k, v in batch.items()})
        return self.inner(batch)


def test_module_drops_modalities_in_training_only(make_cfg):
    from hydra.utils import instantiate

    cfg = make_cfg("data.preset=tiny", "model=cross", "model.modality_dropout=0.9")
    module = instantiate(cfg.model)
    module.network = Recording(module.network)
    module.log = lambda *args, **kwargs: None  # no trainer here
    batch = {
        "T": torch.randn(64, 8, 16) + 2.0,
        "V": torch.randn(64, 5, 24) + 2.0,
        "A": torch.randn(64, 12, 20) + 2.0,
        "label": torch.randint(0, 7, (64,)),
    }
    torch.manual_seed(0)
    module.train()
    module.training_step(batch, 0)
    seen = module.network.seen[-1]
    blanked = torch.stack([(seen[m] == 0).flatten(1).all(dim=1) for m in "TVA"], dim=1)
    kept = torch.tensor([[torch.equal(seen[m][i], batch[m][i]) for m in "TVA"] for i in range(64)])
    assert torch.equal(blanked, ~kept)  # each modality either untouched or all zeros
    assert blanked.any() and not blanked.all(dim=1).any()
    module.eval()
    with torch.no_grad():
        first = module.validation_step(batch, 0) or module(batch)
        second = module(batch)
        module.test_step(batch, 0)
    for inputs in module.network.seen[1:]:
        assert all(torch.equal(inputs[m], batch[m]) for m in "TVA")
    assert torch.equal(first, second)


def test_module_dropout_fills_with_train_means(make_cfg):
    from hydra.utils import instantiate

    cfg = make_cfg(
        "data.preset=tiny",
        "modality=TV",
        "model.modality_dropout=0.5",
        "model.modality_dropout_fill=train_mean",
    )
    module = instantiate(cfg.model)
    module.network = Recording(module.network)
    module.log = lambda *args, **kwargs: None
    module.fill_means = {"T": torch.arange(16.0) + 100.0, "V": -torch.arange(24.0) - 100.0}
    batch = {"T": torch.randn(40, 8, 16), "V": torch.randn(40, 5, 24)}
    batch["label"] = torch.randint(0, 7, (40,))
    torch.manual_seed(1)
    module.training_step(batch, 0)
    seen = module.network.seen[-1]
    for m in "TV":
        filled = (seen[m] == module.fill_means[m]).all(dim=(1, 2))
        untouched = (seen[m] == batch[m]).all(dim=(1, 2))
        assert filled.any() and torch.equal(filled, ~untouched)
    assert not ((seen["T"][:, 0, 0] >= 100) & (seen["V"][:, 0, 0] <= -100)).any()


def test_module_takes_the_train_means_once_from_its_trainers_datamodule(make_cfg, monkeypatch):
    """fill=train_mean: the first training step computes the means of the modalities present
    from the trainer's datamodule; later steps reuse them."""
    from types import SimpleNamespace

    from hydra.utils import instantiate

    means = {"T": torch.arange(16.0) + 100.0, "V": -torch.arange(24.0) - 100.0}
    calls = []
    monkeypatch.setattr(
        "selfcross.models.module.train_means",
        lambda datamodule, modalities: calls.append((datamodule, list(modalities))) or means,
    )
    cfg = make_cfg("data.preset=tiny", "modality=TV", "model.modality_dropout=0.5",
                   "model.modality_dropout_fill=train_mean")  # fmt: skip
    module = instantiate(cfg.model)
    module.network = Recording(module.network)
    module.log = lambda *args, **kwargs: None
    module.trainer = SimpleNamespace(datamodule="the datamodule")
    batch = {"T": torch.randn(40, 8, 16), "V": torch.randn(40, 5, 24)}
    batch["label"] = torch.randint(0, 7, (40,))
    torch.manual_seed(1)
    module.training_step(batch, 0)
    module.training_step(batch, 1)
    assert calls == [("the datamodule", ["T", "V"])]
    for seen in module.network.seen:
        filled = (seen["V"] == means["V"]).all(dim=(1, 2))
        assert filled.any() and torch.equal(filled, ~(seen["V"] == batch["V"]).all(dim=(1, 2)))


def test_modality_dropout_default_keeps_config_hashes(make_cfg):
    from omegaconf import open_dict

    from selfcross.training.resume import config_hash

    default = make_cfg()
    before = make_cfg()  # a configuration written before these keys existed
    with open_dict(before):
        del before.model["modality_dropout"]
        del before.model["modality_dropout_fill"]
    assert config_hash(before) == config_hash(default)
    default = config_hash(default)
    assert config_hash(make_cfg("model.modality_dropout=0.1")) != default


# -- ablation of a real tiny run -----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    """One tiny T+V cross run (3 subsets), trained once for this module."""
    tmp = tmp_path_factory.mktemp("ablation")
    run_dir = tmp / "sweep" / "cross" / "TV" / "fold1" / "seed1"
    return train_tiny_run(tmp, run_dir, data_dir, "model=cross", "modality=TV")


def copy_run(run_dir: Path, dest: Path) -> Path:
    target = dest / "cross" / "TV" / "fold1" / "seed1"
    shutil.copytree(run_dir, target)
    (target / ABLATION_FILE).unlink(missing_ok=True)
    return target


def test_full_set_reproduces_result_json_and_subsets_are_blanked(trained_run):
    outcome = ablate_results(trained_run.parents[3], "zeros")
    assert [r.status for r in outcome.runs] == ["scored"]
    record = read_record(trained_run / "result.json")
    stored = json.loads((trained_run / ABLATION_FILE).read_text())
    entries = stored["fills"]["zeros"]["entries"]
    assert [e["present"] for e in entries] == ["TV", "T", "V"]
    assert [e["absent"] for e in entries] == ["", "V", "T"]
    full = entries[0]
    assert full["test_wa"] == record.test_wa and full["test_uwa"] == record.test_uwa
    assert full["confusion"] == record.confusion
    assert stored["data_fingerprint"] == record.data.fingerprint
    assert len(stored["checkpoint"]["sha256"]) == 64
    # Present T: the network sees V as zeros. Recompute by hand from the checkpoint.
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(record.config)
    dm = instantiate(cfg.data)
    dm.setup("test")
    module = instantiate(cfg.model)
    state = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    module.load_state_dict(state["state_dict"])
    module.eval()
    test = dm.datasets["test"]
    batch = test.__getitems__(list(range(len(test))))
    with torch.no_grad():
        preds = module({**batch, "V": torch.zeros_like(batch["V"])}).argmax(-1)
    labels = batch["label"]
    assert entries[1]["test_uwa"] == pytest.approx((preds == labels).float().mean().item())
    confusion = np.zeros((7, 7), dtype=int)
    np.add.at(confusion, (labels.numpy(), preds.numpy()), 1)
    assert entries[1]["confusion"] == confusion.tolist()
    # The blanked split passes labels through and blanks only V.
    blanked = BlankedSplit(test, ["V"], "zeros").__getitems__([0, 1])
    assert torch.equal(blanked["label"], labels[:2]) and torch.equal(blanked["T"], batch["T"][:2])
    assert not blanked["V"].any()


def test_rerun_reuses_and_a_second_fill_is_added(trained_run, capsys, tmp_path):
    root = trained_run.parents[3]
    ablate_results(root, "zeros")
    before = (trained_run / ABLATION_FILE).read_text()
    assert [r.status for r in ablate_results(root, "zeros").runs] == ["reused"]
    assert (trained_run / ABLATION_FILE).read_text() == before
    main(["--results", str(root), "--out", str(tmp_path / "t"), "--fill", "train_mean"])
    out = capsys.readouterr().out
    assert "1 runs scored" in out
    stored = json.loads((trained_run / ABLATION_FILE).read_text())
    assert set(stored["fills"]) == {"zeros", "train_mean"}
    record = read_record(trained_run / "result.json")
    assert stored["fills"]["train_mean"]["entries"][0]["test_uwa"] == record.test_uwa
    assert (tmp_path / "t" / "ablation.png").stat().st_size > 10000


def test_mismatching_full_set_is_an_error_naming_the_run(trained_run, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path / "r")
    raw = json.loads((run / "result.json").read_text())
    raw["test_uwa"] = raw["test_uwa"] + 0.01
    (run / "result.json").write_text(json.dumps(raw))
    line = expect_error(capsys, "--results", str(tmp_path / "r"), "--out", str(tmp_path / "t"))
    assert str(run) in line and "checkpoint or the data changed" in line
    assert not (run / ABLATION_FILE).exists()


def test_corrupted_checkpoint_is_an_error_naming_the_run(trained_run, tmp_path, capsys):
    run = copy_run(trained_run, tmp_path / "r")
    ckpt = run / "checkpoints" / "best.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:300])
    line = expect_error(capsys, "--results", str(tmp_path / "r"), "--out", str(tmp_path / "t"))
    assert str(run) in line and "best.ckpt: cannot be loaded into the run's model" in line


def test_pruned_checkpoint_is_listed_as_skipped(trained_run, tmp_path, capsys):
    kept = copy_run(trained_run, tmp_path / "r")
    pruned = tmp_path / "r" / "cross" / "TV" / "fold1" / "seed2"
    shutil.copytree(kept, pruned)
    shutil.rmtree(pruned / "checkpoints")
    raw = json.loads((pruned / "result.json").read_text())
    (pruned / "result.json").write_text(json.dumps({**raw, "seed": 2}))
    main(["--results", str(tmp_path / "r"), "--out", str(tmp_path / "t")])
    out = capsys.readouterr().out
    assert f"skipped  {pruned}: no best checkpoint" in out
    assert "1 runs scored, 0 reused, 1 skipped" in out
    md = (tmp_path / "t" / "ablation.md").read_text()
    assert f"skipped: {pruned}: no best checkpoint (pruned)" in md
    assert not (pruned / ABLATION_FILE).exists()


# -- the table from ablation.json files --------------------------------------------------------


def write_ablated(
    root: Path, model: str, fold: int, seed: int, scores: dict, p: float = 0.0, **change
) -> Path:
    """A hand-made run (result.json) with its ablation.json: scores[present] = (wa, uwa).

    The file is written as a literal dict in the layout selfcross has always written (schema
    1), not through the record class, so that the reader is held to old files; ``change``
    replaces top-level keys (None drops one)."""
    run_dir = root / model / "TVA" / f"p{p}" / f"fold{fold}" / f"seed{seed}"
    full = scores["TVA"]
    config = {"model": {"modality_dropout": p}}
    write_run(run_dir, model, "TVA", fold, seed, full[0], full[1], config=config)
    entries = [
        {"present": s, "absent": "", "test_wa": wa, "test_uwa": uwa, "test_f1": wa,
         "test_loss": 1.0, "confusion": []}
        for s, (wa, uwa) in scores.items()
    ]  # fmt: skip
    record = read_record(run_dir / "result.json")
    raw = {
        "schema_version": 1,
        "model": model,
        "modality": "TVA",
        "fold": fold,
        "seed": seed,
        "modality_dropout": p,
        "config_hash": record.config_hash,
        "finished": record.finished,
        "data_fingerprint": record.data.fingerprint,
        "checkpoint": {"file": "checkpoints/best.ckpt", "sha256": "x"},
        "fills": {"zeros": {"entries": entries, "scored": "2026-01-01T00:00:00+00:00"}},
    }
    raw.update(change)
    raw = {k: v for k, v in raw.items() if v is not None}
    (run_dir / ABLATION_FILE).write_text(json.dumps(raw, indent=2))
    return run_dir


def test_table_cells_and_drop_tests_recomputed_from_ablation_files(tmp_path):
    rng = np.random.default_rng(3)
    keys = [(f, s) for f in (1, 2) for s in (1, 2, 3)]
    subsets = present_subsets("TVA")
    truth = {}
    for model, shift in (("self", 0.0), ("cross", 0.05)):
        for fold, seed in keys:
            scores = {
                s: (
                    float(rng.uniform(0.2, 0.6) - shift * (s != "TVA")),
                    float(rng.uniform(0.3, 0.7)),
                )
                for s in subsets
            }
            truth[(model, fold, seed)] = scores
            write_ablated(tmp_path / "runs", model, fold, seed, scores)
    # A multi-modal run without ablation.json or checkpoint: listed, not used.
    write_run(tmp_path / "runs" / "self" / "TV" / "fold1" / "seed1", "self", "TV", 1, 1, 0.5, 0.5)
    make_ablation_report(tmp_path / "runs", tmp_path / "out", "zeros")
    with (tmp_path / "out" / "ablation.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    cells = {(r["model"], r["present"], r["metric"]): r for r in rows if r["table"] == "ablation"}
    tests = {(r["present"], r["metric"]): r for r in rows if r["table"] == "ablation-test"}
    assert len(cells) == 2 * 7 * 2 and len(tests) == 6 * 2
    index = {"wa": 0, "uwa": 1}
    for (model, present, metric), row in cells.items():
        values = [truth[(model, *k)][present][index[metric]] for k in keys]
        drops = [
            truth[(model, *k)]["TVA"][index[metric]] - truth[(model, *k)][present][index[metric]]
            for k in keys
        ]
        assert float(row["mean"]) == pytest.approx(np.mean(values))
        assert float(row["std"]) == pytest.approx(np.std(values, ddof=1))
        assert row["n"] == "6"
        if present == "TVA":
            assert row["drop_mean"] == ""
        else:
            assert float(row["drop_mean"]) == pytest.approx(np.mean(drops))
            assert float(row["drop_std"]) == pytest.approx(np.std(drops, ddof=1))
    for (present, metric), row in tests.items():
        i = index[metric]
        drop = {
            m: [truth[(m, *k)]["TVA"][i] - truth[(m, *k)][present][i] for k in keys]
            for m in ("self", "cross")
        }
        assert float(row["p_ttest_ind"]) == pytest.approx(
            stats.ttest_ind(drop["self"], drop["cross"]).pvalue
        )
        assert float(row["p_ttest_rel"]) == pytest.approx(
            stats.ttest_rel(drop["self"], drop["cross"]).pvalue
        )
        assert row["n_pairs"] == "6"
    md = (tmp_path / "out" / "ablation.md").read_text()
    assert "skipped: " + str(tmp_path / "runs" / "self" / "TV" / "fold1" / "seed1") in md
    assert "no best checkpoint (pruned)" in md
    assert (tmp_path / "out" / "ablation.png").is_file()


# -- the ablation.json record -----------------------------------------------------------------

TVA_SCORES = {s: (0.5, 0.6) for s in ("TVA", "TV", "TA", "VA", "T", "V", "A")}


def test_old_ablation_files_read_and_write_back_key_for_key(tmp_path):
    run_dir = write_ablated(tmp_path, "self", 1, 1, TVA_SCORES)
    raw = json.loads((run_dir / ABLATION_FILE).read_text())
    record = read_ablation(run_dir / ABLATION_FILE)
    assert record.schema_version == 1 and record.fills["zeros"].entries[0].present == "TVA"
    assert json.dumps(record.to_dict()) == json.dumps(raw)  # same keys, same order
    assert record.belongs_to(read_record(run_dir / "result.json"))
    unversioned = write_ablated(tmp_path, "self", 1, 2, TVA_SCORES, schema_version=None)
    assert read_ablation(unversioned / ABLATION_FILE).schema_version == 1
    assert read_ablation(tmp_path / "nowhere.json") is None
    with pytest.raises(ValueError, match="missing key fills.zeros.entries\\[0\\].absent"):
        AblationRecord.from_dict({**raw, "fills": {"zeros": {"entries": [{"present": "T"}]}}})
    with pytest.raises(ValueError, match="unknown key checkpoint.size"):
        AblationRecord.from_dict({**raw, "checkpoint": {"file": "f", "sha256": "x", "size": 1}})
    with pytest.raises(ValueError, match="test_wa is 'high', expected a number"):
        bad = [{**raw["fills"]["zeros"]["entries"][0], "test_wa": "high"}]
        AblationRecord.from_dict({**raw, "fills": {"zeros": {"entries": bad, "scored": ""}}})


def test_newer_or_corrupt_ablation_files_are_named_and_left_out(tmp_path):
    root = tmp_path / "runs"
    keys = [(1, 1), (1, 2), (2, 1)]
    for model in ("self", "cross"):
        for fold, seed in keys:
            write_ablated(root, model, fold, seed, TVA_SCORES)
    newer = write_ablated(root, "self", 2, 2, TVA_SCORES, schema_version=ABLATION_SCHEMA + 1)
    corrupt = write_ablated(root, "cross", 2, 2, TVA_SCORES)
    (corrupt / ABLATION_FILE).write_text('{"schema_version": 1, "fills": {')
    keyless = write_ablated(root, "cross", 3, 1, TVA_SCORES, modality_dropout=None)
    report = make_ablation_report(root, tmp_path / "out", "zeros")
    assert len(report.missing) == 3
    md = (tmp_path / "out" / "ablation.md").read_text()
    assert (
        f"skipped: {newer}: {ABLATION_FILE} schema_version {ABLATION_SCHEMA + 1} is newer than "
        "this selfcross reads" in md
    )
    assert f"skipped: {corrupt}: {ABLATION_FILE} cannot be read (not valid JSON" in md
    unread = f"skipped: {keyless}: {ABLATION_FILE} cannot be read"
    assert f"{unread} (missing key modality_dropout)" in md
    # Without a checkpoint to score again, scoring leaves a newer file alone (with a warning).
    before = (newer / ABLATION_FILE).read_text()
    outcome = ablate_results(root, "zeros")
    by_dir = {r.run_dir: r for r in outcome.runs}
    assert (
        by_dir[newer].status == "skipped" and "newer than this selfcross" in by_dir[newer].reason
    )
    assert (newer / ABLATION_FILE).read_text() == before
    assert by_dir[corrupt].status == "skipped"  # no checkpoint to score it again
    assert by_dir[corrupt].reason.endswith("(pruned: resume.keep_checkpoints)")
    assert by_dir[root / "self/TVA/p0.0/fold1/seed1"].status == "reused"


def test_an_unusable_ablation_file_is_set_aside_with_a_warning_not_overwritten(
    trained_run, tmp_path, capsys
):
    """A corrupt or newer-schema ablation.json of a run that can be scored again is kept under
    another name, with a warning line, before the new one is written (before, a corrupt file
    was replaced silently and a newer one left the run unscored)."""
    for name, text, problem in (
        ("corrupt", '{"schema_version": 1, "fills": {', "cannot be read (not valid JSON"),
        ("newer", json.dumps({"schema_version": 9}), "schema_version 9 is newer than this"),
    ):
        run = copy_run(trained_run, tmp_path / name)
        (run / ABLATION_FILE).write_text(text)
        outcome = ablate_results(tmp_path / name, "zeros")
        assert [r.status for r in outcome.runs] == ["scored"]
        aside = [p for p in run.iterdir() if p.name.startswith(f"{ABLATION_FILE}.unusable-")]
        assert len(aside) == 1 and aside[0].read_text() == text
        assert read_ablation(run / ABLATION_FILE).fills["zeros"].entries[0].present == "TV"
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"warning: {run / ABLATION_FILE}: {problem}")
        assert err[0].endswith(f"; kept as {aside[0].name}, the run is scored again")
