"""The synthetic generator: exact format, determinism, caching, class proportions."""

from __future__ import annotations

import numpy as np
import pytest

from selfcross.data import FoldReader, ReaderOptions, SyntheticSpec, ensure_synthetic
from selfcross.data.datasets import dataset
from selfcross.data.synthetic import class_counts

IEMOCAP_CLASS_COUNTS = tuple(dataset("iemocap").class_counts)

SHAPES = {
    "T": {"seq_len": 8, "feat_dim": 16},
    "V": {"seq_len": 5, "feat_dim": 24},
    "A": {"seq_len": 12, "feat_dim": 20},
}
SPEC = SyntheticSpec(IEMOCAP_CLASS_COUNTS, n_utterances=400, shapes=SHAPES, vocab_size=60)
STEMS = {  # file stem -> (shape after N, integer?)
    "audio_mfcc": ((12, 20), False),
    "audio_seqN": ((), True),
    "audio_prosody": ((35,), False),
    "video": ((5, 24), False),
    "video_seqN": ((), True),
    "nlp_trans": ((8,), True),
    "label": ((), True),
}


def test_writes_exactly_the_processed_format(tmp_path):
    root = ensure_synthetic(tmp_path, [2], SPEC)
    fold = root / "fold02"
    names = sorted(p.name for p in fold.iterdir())
    expected = sorted(
        [f"{s}_{stem}.npy" for s in ("train", "dev", "test") for stem in STEMS]
        + ["W_embedding.npy"]
    )
    assert names == expected
    total = 0
    for split in ("train", "dev", "test"):
        n = None
        for stem, (shape, integer) in STEMS.items():
            a = np.load(fold / f"{split}_{stem}.npy", allow_pickle=False)
            n = a.shape[0] if n is None else n
            assert a.shape == (n, *shape), (split, stem)
            assert np.issubdtype(a.dtype, np.integer if integer else np.floating)
        total += n
        lens = np.load(fold / f"{split}_audio_seqN.npy")
        audio = np.load(fold / f"{split}_audio_mfcc.npy")
        assert lens.min() >= 1 and lens.max() <= 12
        for i in range(n):  # zero padding after the valid length
            assert not audio[i, lens[i] :].any() and audio[i, lens[i] - 1].any()
        ids = np.load(fold / f"{split}_nlp_trans.npy")
        assert ids.min() >= 0 and ids.max() < 60
    assert total == 400
    emb = np.load(fold / "W_embedding.npy")
    assert emb.shape == (60, 16) and not emb[0].any()
    assert not (root / "fold01").exists()  # only the requested folds


def test_iemocap_class_counts_are_the_published_ones_and_synthetic_inherits_them():
    assert IEMOCAP_CLASS_COUNTS == (1103, 1041, 595, 1084, 1849, 107, 1708)
    assert sum(IEMOCAP_CLASS_COUNTS) == 7487
    synthetic = dataset("synthetic")
    assert tuple(synthetic.class_counts) == IEMOCAP_CLASS_COUNTS
    assert synthetic.class_names == dataset("iemocap").class_names
    assert synthetic.n_folds == dataset("iemocap").n_folds == 5


def test_spec_names_the_same_data_however_the_class_counts_are_given():
    """Counts read from a config list, numpy or whole floats: one tuple of ints, one digest."""
    for given in (
        list(IEMOCAP_CLASS_COUNTS),
        np.array(IEMOCAP_CLASS_COUNTS),
        [float(c) for c in IEMOCAP_CLASS_COUNTS],
    ):
        spec = SyntheticSpec(given, n_utterances=400, shapes=SHAPES, vocab_size=60)
        assert spec.class_counts == IEMOCAP_CLASS_COUNTS
        assert all(type(c) is int for c in spec.class_counts)
        assert spec.digest() == SPEC.digest()
    with pytest.raises(ValueError) as caught:
        SyntheticSpec((5, 6, 7))
    assert str(caught.value) == "class_counts=[5, 6, 7]: the generator has 7 classes"


def test_class_proportions_follow_iemocap():
    counts = class_counts(IEMOCAP_CLASS_COUNTS, 7487)
    assert counts.tolist() == list(IEMOCAP_CLASS_COUNTS)
    small = class_counts(IEMOCAP_CLASS_COUNTS, 2000)
    assert small.sum() == 2000
    np.testing.assert_allclose(small / 2000, np.array(IEMOCAP_CLASS_COUNTS) / 7487, atol=1e-3)


def test_deterministic_and_folds_repartition_the_same_utterances(tmp_path):
    a = ensure_synthetic(tmp_path / "a", [1, 3], SPEC)
    b = ensure_synthetic(tmp_path / "b", [3], SPEC)
    for name in ("train_audio_mfcc.npy", "test_nlp_trans.npy", "dev_label.npy"):
        assert (a / "fold03" / name).read_bytes() == (b / "fold03" / name).read_bytes()

    # The same 400 utterances in both folds, split differently.
    def all_labels(fold):
        return np.concatenate(
            [np.load(a / fold / f"{s}_label.npy") for s in ("train", "dev", "test")]
        )

    assert sorted(all_labels("fold01")) == sorted(all_labels("fold03"))
    assert not np.array_equal(
        np.load(a / "fold01/test_label.npy"), np.load(a / "fold03/test_label.npy")
    )


def test_cached_until_parameters_change(tmp_path):
    root = ensure_synthetic(tmp_path, [1], SPEC)
    marker = root / "fold01" / "train_label.npy"
    stamp = marker.stat().st_mtime_ns
    ensure_synthetic(tmp_path, [1], SPEC)
    assert marker.stat().st_mtime_ns == stamp  # reused
    changed = SyntheticSpec(IEMOCAP_CLASS_COUNTS, n_utterances=300, shapes=SHAPES, vocab_size=60)
    ensure_synthetic(tmp_path, [1], changed)
    n = sum(len(np.load(root / "fold01" / f"{s}_label.npy")) for s in ("train", "dev", "test"))
    assert n == 300


def test_some_videos_are_empty_and_every_split_has_every_class(tmp_path):
    root = ensure_synthetic(
        tmp_path, [1], SyntheticSpec(IEMOCAP_CLASS_COUNTS, n_utterances=2000, shapes=SHAPES)
    )
    data = FoldReader(root / "fold01", ReaderOptions()).load()
    dropped = sum(s.n_dropped for s in data.splits.values())
    assert 0.01 * 2000 < dropped < 0.06 * 2000
    for split in data.splits.values():
        assert set(split.labels.tolist()) == set(range(7))
    sizes = {k: len(v) + v.n_dropped for k, v in data.splits.items()}
    assert sizes["train"] / 2000 == pytest.approx(0.8, abs=0.01)
    assert sizes["dev"] / 2000 == pytest.approx(0.05, abs=0.01)
    assert sizes["test"] / 2000 == pytest.approx(0.15, abs=0.01)


def test_interrupted_generation_leaves_no_fold(tmp_path, monkeypatch):
    import selfcross.data.synthetic as synthetic

    def broken(directory, spec, fold):
        (directory / "train_label.npy").write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "_write_fold", broken)
    with pytest.raises(RuntimeError):
        ensure_synthetic(tmp_path, [1], SPEC)
    assert not (tmp_path / "fold01").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".fold")] == []


def _pooled(split, embedding):
    """Per utterance and modality, the mean over valid frames or tokens: [N, D] each."""
    out = {}
    for m in ("A", "V"):
        x, n = split.features[m], split.lengths[m]
        mask = np.arange(x.shape[1])[None, :] < n[:, None]
        out[m] = (x * mask[..., None]).sum(1) / np.maximum(n, 1)[:, None]
    ids = split.features["T"]
    out["T"] = embedding[ids].sum(1) / np.maximum((ids > 0).sum(1), 1)[:, None]
    return out


def _linear_gaussian_accuracy(train_x, train_y, test_x, test_y, shrink=0.5):
    """A shared-covariance Gaussian classifier (LDA) on standardised features, its covariance
    shrunk towards the identity: a good linear rule for hundreds of dimensions and few
    utterances."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-8
    train_x, test_x = (train_x - mu) / sd, (test_x - mu) / sd
    classes = np.unique(train_y)
    means = np.stack([train_x[train_y == c].mean(0) for c in classes])
    centred = train_x - means[np.searchsorted(classes, train_y)]
    cov = (1 - shrink) * centred.T @ centred / len(train_x) + shrink * np.eye(train_x.shape[1])
    w = np.linalg.solve(cov, means.T)  # [D, C]
    prior = np.log(np.bincount(train_y)[classes] / len(train_y))
    scores = test_x @ w - 0.5 * np.sum(means.T * w, axis=0) + prior
    return float((classes[scores.argmax(1)] == test_y).mean())


def test_fusion_helps_on_the_small_preset(tmp_path):
    """No modality alone separates the classes; the three together clearly do better."""
    shapes = {
        "T": {"seq_len": 24, "feat_dim": 100},
        "V": {"seq_len": 12, "feat_dim": 256},
        "A": {"seq_len": 60, "feat_dim": 120},
    }  # the `small` preset of conf/config.yaml
    spec = SyntheticSpec(IEMOCAP_CLASS_COUNTS, n_utterances=2000, shapes=shapes, vocab_size=400)
    root = ensure_synthetic(tmp_path, [1], spec)
    data = FoldReader(root / "fold01", ReaderOptions()).load()
    train = _pooled(data.splits["train"], data.embedding)
    test = _pooled(data.splits["test"], data.embedding)
    y_train, y_test = data.splits["train"].labels, data.splits["test"].labels
    single = {
        m: _linear_gaussian_accuracy(train[m], y_train, test[m], y_test) for m in ("T", "V", "A")
    }
    every = _linear_gaussian_accuracy(
        np.hstack([train[m] for m in "TVA"]), y_train, np.hstack([test[m] for m in "TVA"]), y_test
    )
    majority = np.bincount(y_test).max() / len(y_test)
    assert all(acc > majority + 0.1 for acc in single.values()), single  # each one learns
    assert every > max(single.values()) + 0.1, (every, single)  # and fusion clearly helps


def test_within_group_zero_is_a_valid_corpus(tmp_path):
    """``within_group=0`` (classes of a group identical in that modality) is a limit of the
    knob, not a division by zero: the fold is finite and reads back."""
    spec = SyntheticSpec(
        IEMOCAP_CLASS_COUNTS, n_utterances=200, shapes=SHAPES, vocab_size=60, within_group=0.0
    )
    root = ensure_synthetic(tmp_path, [1], spec)
    fold = FoldReader(root / "fold01", ReaderOptions(shapes=SHAPES)).load()
    assert len(fold.splits["train"]) > 0
