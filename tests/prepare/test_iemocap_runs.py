"""selfcross.prepare on the fake IEMOCAP release, run again and differently: the per-utterance
cache (frame batches, reuse, a crash resumed to the same folds), the session, random and speaker
splits, and training on the prepared folds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from selfcross.data.npy import SPLITS
from selfcross.prepare.extract import ExtractStats, FramePacker
from selfcross.prepare.splits import random_folds, session_folds
from tests.helpers.foldkit import shape_overrides
from tests.helpers.preparekit import SHAPES, STEMS, load, manifest, overrides
from tests.helpers.releasekit import prepare_quietly


# -- cache and resume -----------------------------------------------------------------------
class RecordingEmbed:
    """A stand-in ResNet: each frame's feature row is [its first pixel, the call number, ...]."""

    def __init__(self, batch_size):
        self.batch_size = batch_size
        self.calls: list[int] = []

    def __call__(self, crops):
        self.calls.append(len(crops))
        out = np.zeros((len(crops), 2048), np.float32)
        out[:, 0] = crops[:, 0, 0, 0]
        out[:, 1] = len(self.calls)
        return out


def test_frame_packer_runs_constant_batches_and_saves_each_utterance_its_own_frames():
    """Every batch but the last has batch_size frames (one input shape: the CPU backend keeps
    compiled code per shape, which grew a MELD run's memory with each new clip length), and
    each utterance gets the features of its own frames, in order, once they are all run."""
    sizes = {"a": 5, "b": 0, "c": 9, "d": 2, "e": 0, "f": 7, "g": 3}
    first, crops = 1, {}
    for utt, n in sizes.items():
        crops[utt] = np.zeros((n, 4, 4, 3), np.uint8)
        crops[utt][:, 0, 0, 0] = np.arange(first, first + n)  # distinct pixel per frame
        first += n
    saved: dict = {}
    stats = ExtractStats()
    embed = RecordingEmbed(batch_size=4)
    packer = FramePacker(embed, 4, lambda utt, f: saved.setdefault(utt, f), stats)
    packer.add("a", crops["a"])
    assert embed.calls == [4] and saved == {}  # a's fifth frame waits
    packer.add("b", crops["b"])
    assert list(saved) == []  # b (no frame) waits behind a: order kept
    for utt in "cdefg":
        packer.add(utt, crops[utt])
    assert embed.calls == [4] * 6 and list(saved) == list("abcdef")
    packer.flush()
    assert embed.calls == [4] * 6 + [2]  # 26 frames
    assert list(saved) == list(sizes) and stats.n_video == 7 and stats.n_frames == 26
    for utt, n in sizes.items():
        assert saved[utt].shape == (n, 2048) and saved[utt].dtype == np.float32
        np.testing.assert_array_equal(saved[utt][:, 0], crops[utt][:, 0, 0, 0])
    np.testing.assert_array_equal(saved["c"][:, 1], [2, 2, 2, 3, 3, 3, 3, 4, 4])
    packer.flush()  # nothing left: no call, no save
    assert len(embed.calls) == 7 and stats.n_video == 7


def test_rerun_reuses_the_cache_without_recomputing(prepared, release, monkeypatch):
    out, _, _ = prepared
    before = {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*.npz")}
    fold_before = load(out / "fold03", "train", "video").copy()

    def forbidden(*args, **kwargs):
        raise AssertionError("features recomputed")

    monkeypatch.setattr("selfcross.prepare.extract.compute_audio", forbidden)
    monkeypatch.setattr("selfcross.prepare.extract.video_frames", forbidden)
    summary, text = prepare_quietly(overrides(release, out))
    assert summary["reused"] == {"audio": 27, "video": 20}
    assert summary["computed"] == {"audio": 0, "video": 0, "frames": 0}
    assert "audio 27 of 27 cached (reused), video 20 of 20 cached (reused)" in text
    assert "[GloVe rows reused from the cache]" in text
    assert {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*.npz")} == before
    np.testing.assert_array_equal(load(out / "fold03", "train", "video"), fold_before)


def test_crash_then_resume_gives_the_same_folds(prepared, release, tmp_path, monkeypatch):
    """Resumed in-process after a crash, the folds equal those of the worker processes."""
    from selfcross.prepare import extract

    calls = []
    real = extract.compute_audio

    def crashing(*args):
        calls.append(args[0])
        if len(calls) == 10:
            raise RuntimeError("simulated crash")
        return real(*args)

    out = tmp_path / "folds"
    monkeypatch.setattr(extract, "compute_audio", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        prepare_quietly(overrides(release, out))
    assert not list(out.glob("fold*"))
    assert len(list((out / "cache").glob("audio-*/*/*.npz"))) == 9
    assert len(list((out / "cache").glob("video-*/*/*.npz"))) == 7  # the first dialog's
    monkeypatch.undo()

    summary, text = prepare_quietly(overrides(release, out))
    assert summary["reused"] == {"audio": 9, "video": 7}
    assert summary["computed"]["audio"] == 18 and summary["computed"]["video"] == 13
    assert "audio 9 of 27 cached (reused), video 7 of 20 cached (reused)" in text
    reference = prepared[0]
    for k in (1, 4):
        for split in SPLITS:
            for stem in STEMS:
                np.testing.assert_allclose(
                    load(out / f"fold{k:02d}", split, stem),
                    load(reference / f"fold{k:02d}", split, stem),
                    rtol=1e-5,
                    atol=1e-5,
                    err_msg=f"fold{k:02d} {split}_{stem}",
                )


# -- splits ---------------------------------------------------------------------------------
def test_session_split_tests_on_one_session(prepared, release, tmp_path):
    out = tmp_path / "by_session"
    cache = prepared[0] / "cache"
    summary, _ = prepare_quietly(overrides(release, out, "split=session", f"cache={cache}"))
    assert summary["folds"] == ["fold01", "fold02"] and summary["computed"]["audio"] == 0
    assert not (out / "fold03").exists()
    assert json.loads((out / "dataset.json").read_text())["n_folds"] == 2
    assert json.loads((out / "dataset.json").read_text())["split"] == "session"
    for session in (1, 2):
        ids = manifest(out / f"fold{session:02d}")
        assert sorted(ids["test"]) == sorted(u.id for u in release.kept if u.session == session)
        others = sorted(u.id for u in release.kept if u.session != session)
        assert sorted(ids["train"] + ids["dev"]) == others and ids["dev"]


def iemocap_labels():
    counts = (1103, 1041, 595, 1084, 1849, 107, 1708)
    return np.repeat(np.arange(7), counts)


def test_random_folds_are_stratified_8_05_15_with_disjoint_tests():
    labels = iemocap_labels()
    folds = random_folds(labels, [1, 2, 3, 4, 5], (8, 0.5, 1.5), seed=0)
    tests = [set(folds[k]["test"]) for k in range(1, 6)]
    assert all(not a & b for i, a in enumerate(tests) for b in tests[i + 1 :])
    for parts in folds.values():
        assert sorted(np.concatenate([parts[s] for s in SPLITS])) == list(range(len(labels)))
        for c, n in enumerate((1103, 1041, 595, 1084, 1849, 107, 1708)):
            sizes = [int((labels[parts[s]] == c).sum()) for s in SPLITS]
            assert sizes[2] == round(0.15 * n) and sizes[1] == round(0.05 * n)
    again = random_folds(labels, [3], (8, 0.5, 1.5), seed=0)[3]
    other = random_folds(labels, [3], (8, 0.5, 1.5), seed=1)[3]
    np.testing.assert_array_equal(again["dev"], folds[3]["dev"])
    assert not np.array_equal(other["test"], folds[3]["test"])


def test_session_folds_draw_dev_from_the_other_sessions():
    labels = iemocap_labels()
    sessions = np.random.default_rng(0).integers(1, 6, len(labels))
    folds = session_folds(labels, sessions, [1, 2, 3, 4, 5], (8, 0.5, 1.5), seed=0)
    for k, parts in folds.items():
        np.testing.assert_array_equal(parts["test"], np.flatnonzero(sessions == k))
        assert not (sessions[parts["dev"]] == k).any()
        assert len(parts["dev"]) == pytest.approx(0.5 / 8.5 * (sessions != k).sum(), abs=7)


# -- training on the prepared folds ---------------------------------------------------------
def test_training_runs_on_the_prepared_folds(prepared, tmp_path):
    from selfcross.config import compose
    from selfcross.training.experiment import train_and_test
    from tests.conftest import base_overrides

    out = prepared[0]
    cfg = compose(
        [
            *base_overrides(tmp_path),
            "data=iemocap",
            f"data.root={out}",
            *shape_overrides(SHAPES),
            "model=cross",
            "modality=TVA",
            "fold=2",
            "trainer.max_epochs=1",
        ]
    )
    result = train_and_test(cfg).record
    assert result.epochs == 1 and 0 <= result.test_uwa <= 1
    with_video = len(manifest(out / "fold02")["train"]) - sum(
        1 for i in manifest(out / "fold02")["train"] if i.startswith("Ses02M_script02_1")
    )
    assert result.data.splits["train"]["n"] == with_video


def test_speaker_split_shares_no_speaker_between_train_dev_and_test(prepared, release, tmp_path):
    """split=speaker on two sessions: four folds (dataset.json says so); fold 2k-1 validates on
    session k's F speaker and tests on its M speaker, fold 2k the reverse, train is the other
    session; checked from the release's utterance ids (speaker = session and the letter of the
    id's last part)."""
    out = tmp_path / "by_speaker"
    cache = prepared[0] / "cache"
    summary, _ = prepare_quietly(overrides(release, out, "split=speaker", f"cache={cache}"))
    assert summary["folds"] == ["fold01", "fold02", "fold03", "fold04"]
    assert json.loads((out / "dataset.json").read_text())["n_folds"] == 4
    assert json.loads((out / "dataset.json").read_text())["split"] == "speaker"

    def speaker(utt_id):
        return utt_id[:5], utt_id.rsplit("_", 1)[1][0]  # ("Ses01", "F")

    every_test = []
    for fold, (session, dev, test) in enumerate(
        [(1, "F", "M"), (1, "M", "F"), (2, "F", "M"), (2, "M", "F")], start=1
    ):
        ids = manifest(out / f"fold{fold:02d}")
        held = [u for u in release.kept if u.session == session]
        assert sorted(ids["test"]) == sorted(u.id for u in held if speaker(u.id)[1] == test)
        assert sorted(ids["dev"]) == sorted(u.id for u in held if speaker(u.id)[1] == dev)
        assert sorted(ids["train"]) == sorted(u.id for u in release.kept if u.session != session)
        tested = {speaker(i) for i in ids["test"]}
        assert len(tested) == 1
        assert not tested & {speaker(i) for i in ids["train"] + ids["dev"]}
        every_test += ids["test"]
    assert sorted(every_test) == sorted(u.id for u in release.kept)  # each tested once
