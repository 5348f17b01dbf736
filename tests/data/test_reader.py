"""The fold reader on hand-written folds: round trip, dropping, standardisation, text,
fingerprints, and the data module's arguments.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfcross.data import IemocapDataModule, npy, preprocess
from selfcross.errors import ConfigError, DataError
from tests.helpers.checkkit import read
from tests.helpers.foldkit import (
    SHAPES,
    SIZES,
    edit_keeping_size_and_mtime,
    flip_first_label,
)


def test_round_trip_without_dropping_or_standardising(fold):
    directory, arrays = fold
    data = read(directory, drop_zero_video=False, audio_standardize="none")
    for split, n in SIZES.items():
        s = data.splits[split]
        assert len(s) == n and s.n_dropped == 0
        np.testing.assert_array_equal(s.labels, arrays[f"{split}_label"])
        np.testing.assert_array_equal(s.features["A"], arrays[f"{split}_audio_mfcc"])
        np.testing.assert_array_equal(s.features["V"], arrays[f"{split}_video"])
        np.testing.assert_array_equal(s.features["T"], arrays[f"{split}_nlp_trans"])
        assert s.features["A"].dtype == np.float32 and s.features["A"].flags.c_contiguous
    np.testing.assert_array_equal(data.embedding, arrays["W_embedding"])


def test_zero_length_videos_are_dropped_from_every_split(fold):
    directory, arrays = fold
    data = read(directory, audio_standardize="none")
    for split in SIZES:
        keep = arrays[f"{split}_video_seqN"] > 0
        s = data.splits[split]
        assert s.n_dropped == int((~keep).sum()) > 0
        np.testing.assert_array_equal(s.labels, arrays[f"{split}_label"][keep])
        np.testing.assert_array_equal(s.features["A"], arrays[f"{split}_audio_mfcc"][keep])
        np.testing.assert_array_equal(s.lengths["V"], arrays[f"{split}_video_seqN"][keep])


def test_dropping_applies_to_every_modality_subset(fold):
    directory, arrays = fold
    data = read(directory, modalities=("A",), audio_standardize="none")
    keep = arrays["test_video_seqN"] > 0
    assert set(data.splits["test"].features) == {"A"}
    np.testing.assert_array_equal(data.splits["test"].labels, arrays["test_label"][keep])


def test_audio_standardised_with_train_statistics_over_valid_frames(fold):
    directory, arrays = fold
    data = read(directory, drop_zero_video=False)
    audio, lens = arrays["train_audio_mfcc"], arrays["train_audio_seqN"]
    valid = np.concatenate([audio[i, : lens[i]] for i in range(len(audio))]).astype(np.float64)
    mean, std = valid.mean(axis=0), valid.std(axis=0)
    np.testing.assert_allclose(data.audio_mean, mean, rtol=1e-5)
    np.testing.assert_allclose(data.audio_std, std, rtol=1e-5)
    for split in SIZES:
        raw, n = arrays[f"{split}_audio_mfcc"], arrays[f"{split}_audio_seqN"]
        got = data.splits[split].features["A"]
        for i in range(len(raw)):
            np.testing.assert_allclose(got[i, : n[i]], (raw[i, : n[i]] - mean) / std, atol=1e-5)
            assert not got[i, n[i] :].any()  # padding stays at zero (the standardised mean)
    # Standardised train frames have zero mean and unit variance; dev/test use the same
    # transform, so theirs do not in general.
    tr = data.splits["train"]
    frames = np.concatenate([tr.features["A"][i, : lens[i]] for i in range(len(lens))])
    np.testing.assert_allclose(frames.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(frames.std(axis=0), 1, atol=1e-5)


def test_dev_and_test_do_not_influence_the_statistics(tmp_path, fold):
    directory, _ = fold
    before = read(directory, drop_zero_video=False)
    np.save(directory / "test_audio_mfcc.npy", np.full((14, 8, 2), 1e3, np.float32))
    after = read(directory, drop_zero_video=False)
    np.testing.assert_array_equal(before.audio_mean, after.audio_mean)
    np.testing.assert_array_equal(before.audio_std, after.audio_std)


def test_frame_feature_standardisation_is_per_position(fold):
    directory, arrays = fold
    data = read(directory, drop_zero_video=False, audio_standardize="frame_feature")
    raw = arrays["train_audio_mfcc"].astype(np.float64)
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    std = np.where(std < 1e-8, 1.0, std)
    np.testing.assert_allclose(data.audio_mean, mean, rtol=1e-5)
    np.testing.assert_allclose(
        data.splits["dev"].features["A"], (arrays["dev_audio_mfcc"] - mean) / std, atol=1e-4
    )


def test_constant_feature_keeps_std_one_and_small_stds_are_not_floored(fold):
    """A feature constant over the valid train frames has std 0: it is divided by 1, not
    blown up; a feature of std 0.1 is divided by its own std, whatever its size."""
    directory, arrays = fold
    lens = arrays["train_audio_seqN"]
    valid = (np.arange(8)[None, :] < lens[:, None])[..., None]
    audio = np.random.default_rng(5).normal(0.0, 0.1, (21, 8, 2)).astype(np.float32)
    audio[..., 0] = 5.0
    np.save(directory / "train_audio_mfcc.npy", audio * valid, allow_pickle=False)
    data = read(directory, drop_zero_video=False)
    assert data.audio_mean.dtype == np.float32 and data.audio_std.dtype == np.float32
    frames = np.concatenate([audio[i, : lens[i], 1] for i in range(21)]).astype(np.float64)
    np.testing.assert_allclose(data.audio_mean, [5.0, frames.mean()], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(data.audio_std, [1.0, frames.std()], rtol=1e-5)
    assert 0.05 < data.audio_std[1] < 0.2
    dev, n = arrays["dev_audio_mfcc"], arrays["dev_audio_seqN"]
    got = data.splits["dev"].features["A"]
    for i in range(len(dev)):
        np.testing.assert_allclose(got[i, : n[i], 0], dev[i, : n[i], 0] - 5.0, atol=1e-5)


@pytest.mark.parametrize("mode", ["feature", "frame_feature"])
def test_standardisation_in_small_blocks_equals_one_block_and_bounds_the_float64_copy(
    fold, monkeypatch, mode
):
    """The statistics are summed over blocks of rows, each copied to float64: with blocks of
    three train utterances (8 bytes a value), every row is counted once and the result is the
    one-block result; a block never holds more rows than fit, and each is released after use."""
    directory, _ = fold
    whole = read(directory, drop_zero_video=False, audio_standardize=mode)
    monkeypatch.setattr(npy, "BLOCK_BYTES", 3 * 8 * 2 * 8)  # 3 utterances of [8, 2] float64
    spans = []
    release = preprocess.release_rows

    def spy(array, start, stop, written=False):
        spans.append((array, start, stop, written))
        release(array, start, stop, written)

    monkeypatch.setattr(preprocess, "release_rows", spy)
    blocked = read(directory, drop_zero_video=False, audio_standardize=mode)
    np.testing.assert_allclose(blocked.audio_mean, whole.audio_mean, rtol=1e-6)
    np.testing.assert_allclose(blocked.audio_std, whole.audio_std, rtol=1e-6)
    for split in SIZES:
        np.testing.assert_allclose(
            blocked.splits[split].features["A"], whole.splits[split].features["A"], atol=1e-6
        )
    # every block is released from memory once used: copied rows (6 float32 utterances a
    # block) flushed, rows read for the statistics (3 in float64) dropped, standardised rows
    # flushed
    train = blocked.splits["train"].features["A"]
    assert [(start, stop, written) for a, start, stop, written in spans if a is train] == [
        *[(start, min(start + 6, 21), True) for start in range(0, 21, 6)],
        *[(start, start + 3, False) for start in range(0, 21, 3)],
        *[(start, start + 6, True) for start in range(0, 21, 6)],
    ]


def test_dense_text_file_is_accepted_and_equals_the_lookup(fold):
    directory, arrays = fold
    emb = arrays["W_embedding"]
    for split in SIZES:
        np.save(directory / f"{split}_text.npy", emb[arrays[f"{split}_nlp_trans"]])
    dense = read(directory, text_source="dense", audio_standardize="none")
    ids = read(directory, text_source="ids", audio_standardize="none")
    assert dense.embedding is None
    looked_up = torch.nn.functional.embedding(
        torch.from_numpy(ids.splits["dev"].features["T"]), torch.from_numpy(ids.embedding)
    )
    np.testing.assert_allclose(dense.splits["dev"].features["T"], looked_up.numpy())


def test_auto_text_source_uses_dense_file_when_ids_are_absent(fold):
    directory, arrays = fold
    for split in SIZES:
        np.save(
            directory / f"{split}_text.npy", arrays["W_embedding"][arrays[f"{split}_nlp_trans"]]
        )
        (directory / f"{split}_nlp_trans.npy").unlink()
    data = read(directory, audio_standardize="none")
    assert data.splits["train"].features["T"].shape[1:] == (6, 5)


def test_datamodule_batches_hold_glove_vectors_and_labels(fold):
    directory, arrays = fold
    dm = IemocapDataModule(root=str(directory.parent), fold=1, shapes=SHAPES, batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    keep = arrays["dev_video_seqN"] > 0
    assert batch["T"].shape == (4, 6, 5) and batch["T"].dtype == torch.float32
    assert batch["V"].shape == (4, 4, 3) and batch["A"].shape == (4, 8, 2)
    first_ids = arrays["dev_nlp_trans"][keep][0]
    np.testing.assert_allclose(batch["T"][0].numpy(), arrays["W_embedding"][first_ids])
    assert batch["label"].tolist() == arrays["dev_label"][keep][:4].tolist()
    assert sum(len(b["label"]) for b in dm.train_dataloader()) == int(
        (arrays["train_video_seqN"] > 0).sum()
    )
    assert dm.summary()["dev"]["dropped_no_video"] == int((~keep).sum())


def test_fingerprint_changes_with_the_files(fold):
    directory, _ = fold
    first = read(directory).fingerprint
    assert read(directory).fingerprint == first
    np.save(directory / "dev_label.npy", np.zeros(8, dtype=np.int64))
    with pytest.raises(DataError):
        read(directory)  # dev now disagrees on N; fix it and the hash differs
    for stem in ("audio_mfcc", "audio_seqN", "video", "video_seqN", "nlp_trans"):
        a = np.load(directory / f"dev_{stem}.npy")
        np.save(directory / f"dev_{stem}.npy", np.concatenate([a, a[:1]]))
    assert read(directory).fingerprint != first


def test_fingerprint_covers_contents(fold):
    directory, _ = fold
    first = read(directory).fingerprint
    edit_keeping_size_and_mtime(directory / "dev_label.npy", flip_first_label)
    assert read(directory).fingerprint != first
    edit_keeping_size_and_mtime(
        directory / "dev_label.npy", lambda a: a.__setitem__(0, (a[0] + 6) % 7)
    )
    assert read(directory).fingerprint == first  # back to the same bytes: the same data


def test_same_data_compares_what_both_fingerprints_hold():
    from selfcross.training.record import same_data

    assert same_data("aaaa-1111", "aaaa-1111") and not same_data("aaaa-1111", "aaaa-2222")
    assert same_data("aaaa", "aaaa-2222")  # a record from before contents were hashed
    assert not same_data("aaaa", "bbbb-2222")


def test_memoised_digest_follows_a_same_size_edit_with_mtime_put_back(fold, tmp_path):
    from selfcross.data import fingerprint as fp

    directory, _ = fold
    memo = tmp_path / "memo"
    first = fp.fingerprint(directory, memo)
    assert len(list(memo.glob("*.json"))) == len(list(directory.glob("*.npy")))
    assert fp.fingerprint(directory, memo) == first == fp.fingerprint(directory)
    edit_keeping_size_and_mtime(directory / "test_label.npy", flip_first_label)
    assert fp.fingerprint(directory, memo) == fp.fingerprint(directory) != first


def test_datamodule_rejects_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="1..5"):
        IemocapDataModule(root=str(tmp_path), fold=6)
    with pytest.raises(ConfigError, match="subset"):
        IemocapDataModule(root=str(tmp_path), modalities=["X"])
    with pytest.raises(ConfigError, match="names"):
        IemocapDataModule(root=str(tmp_path), num_classes=4)


def test_one_data_module_reads_every_dataset_under_its_old_name_too(tmp_path):
    """FoldDataModule reads any dataset's folds; IemocapDataModule, the name configs and records
    written before the rename hold, still imports and hashes as the same configuration."""
    from selfcross import data
    from selfcross.config import compose
    from selfcross.training.resume import comparable_config, config_hash

    assert data.IemocapDataModule is data.FoldDataModule
    for name in ("iemocap", "meld", "synthetic"):
        assert compose([f"data={name}"]).data._target_ == "selfcross.data.FoldDataModule"
    new = compose(["data=iemocap", "data.root=/data/iemocap"])
    old = compose(["data=iemocap", "data.root=/data/iemocap",
                   "data._target_=selfcross.data.IemocapDataModule"])  # fmt: skip
    assert config_hash(new) == config_hash(old)
    as_dict = {"data": {"_target_": "selfcross.data.FoldDataModule"}}
    assert comparable_config(as_dict) == {"data._target_": '"selfcross.data.IemocapDataModule"'}


def test_the_data_module_takes_the_number_of_folds_from_the_roots_manifest(tmp_path):
    from selfcross.manifest import FoldsManifest, write_manifest

    dims = {m: {"seq_len": s["seq_len"], "feat_dim": s["feat_dim"]} for m, s in SHAPES.items()}
    IemocapDataModule(root=str(tmp_path), fold=5)  # no manifest: IEMOCAP's five folds
    write_manifest(tmp_path, FoldsManifest("iemocap", 2, tuple("abcdefg"), dims, "random"))
    assert IemocapDataModule(root=str(tmp_path), fold=2).n_folds == 2
    with pytest.raises(ConfigError, match=r"^fold=3: folds are numbered 1..2$"):
        IemocapDataModule(root=str(tmp_path), fold=3)
