"""selfcross.prepare on a tiny fake IEMOCAP release: what it writes. Counts, fold format and
labels, audio (MFCCs, resampling), text (tokens, GloVe rows), vision (frames, ResNet-101), the
root's manifest, and the 4-class set of the 7-class folds (fixtures: tests/prepare/conftest.py).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from selfcross.data.npy import SPLITS
from selfcross.errors import ConfigError
from selfcross.prepare.audio import AudioSettings, mfcc_features, read_wav
from selfcross.prepare.resnet import FrameEncoder, load_resnet101
from selfcross.prepare.text import read_glove_rows, tokenize
from selfcross.prepare.video import FrameSettings, sample_times, video_frames
from tests.helpers.foldkit import shape_overrides
from tests.helpers.preparekit import (
    CLASSES,
    GLOVE_DIM,
    SHAPES,
    STEMS,
    find_row,
    load,
    manifest,
    overrides,
    write_glove,
    write_video,
)


# -- the release: labels, counts ------------------------------------------------------------
def test_counts_per_class_session_and_dropped_label(prepared, release):
    out, summary, text = prepared
    kept = Counter(u.label for u in release.kept)
    assert summary["counts"]["per_class"] == {c: kept[c] for c in CLASSES}
    assert summary["counts"]["dropped_labels"] == {"xxx": 2, "fea": 1, "oth": 1}
    assert summary["counts"]["kept"] == len(release.kept) == 27
    per_session = summary["counts"]["per_session"]
    assert per_session["Session1"] == {"kept": 13, "dropped": 2}
    assert per_session["Session2"] == {"kept": 14, "dropped": 2}
    # our counts printed beside the paper's
    assert "  0  ang  angry            4 /  1,103" in text
    assert "  5  sur  surprise         3 /    107" in text
    assert "total           27 /  7,487" in text
    assert "Dropped labels: xxx 2, fea 1, oth 1 (total 4)" in text


def test_fold_files_have_the_format_shapes_and_dtypes(prepared, release):
    out, summary, _ = prepared
    kept = {u.id for u in release.kept}
    assert summary["folds"] == [f"fold{k:02d}" for k in range(1, 6)]
    for k in range(1, 6):
        fold = out / f"fold{k:02d}"
        ids = manifest(fold)
        assert sorted(ids["train"] + ids["dev"] + ids["test"]) == sorted(kept)
        for split in SPLITS:
            n = len(ids[split])
            assert n > 0
            for stem, (dtype, shape) in STEMS.items():
                array = load(fold, split, stem)
                assert array.dtype == dtype, (fold, split, stem)
                assert array.shape == (n, *shape), (fold, split, stem)
            assert not load(fold, split, "audio_prosody").any()
        emb = np.load(fold / "W_embedding.npy", allow_pickle=False)
        vocab = json.loads((fold / "vocab.json").read_text())
        assert emb.dtype == np.float32 and emb.shape == (len(vocab["tokens"]), GLOVE_DIM)
        assert not (fold / "dic.pkl").exists()
    assert [c["fold"] for c in summary["checked"]] == summary["folds"]


def test_labels_are_class_ids_in_the_configured_order(prepared, release):
    out, _, _ = prepared
    fold = out / "fold02"
    for split in SPLITS:
        labels = load(fold, split, "label")
        expected = [CLASSES.index(release.by_id(i).label) for i in manifest(fold)[split]]
        np.testing.assert_array_equal(labels, expected)
    dropped = {u.id for u in release.utterances} - {u.id for u in release.kept}
    every_id = set().union(*(manifest(fold)[s] for s in SPLITS))
    assert len(dropped) == 4 and not dropped & every_id


# -- audio ----------------------------------------------------------------------------------
def test_mfcc_equal_librosa_on_the_wav(prepared, release):
    import librosa
    import soundfile

    out, _, _ = prepared
    cut = 0
    for utt in release.kept[:6] + release.kept[-6:]:
        y, sr = soundfile.read(utt.wav, dtype="float32")
        mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40, n_fft=512, hop_length=160,
                                    win_length=400, window="hamming", n_mels=40)  # fmt: skip
        expected = np.concatenate(
            [mfcc, librosa.feature.delta(mfcc, width=9), librosa.feature.delta(mfcc, order=2)]
        ).T
        fold, split, row = find_row(out, utt.id)
        n = int(load(fold, split, "audio_seqN")[row])
        features = load(fold, split, "audio_mfcc")[row]
        assert n == min(len(expected), 150) and len(expected) == 1 + len(y) // 160
        np.testing.assert_allclose(features[:n], expected[:n], rtol=1e-4, atol=1e-3)
        assert not features[n:].any()
        cut += len(expected) > 150
    assert cut >= 1  # an utterance longer than audio.max_frames was cut, not dropped


@pytest.mark.filterwarnings("ignore:n_fft=512 is too large:UserWarning")
def test_deltas_narrow_for_very_short_utterances():
    settings = AudioSettings()
    rng = np.random.default_rng(0)
    for samples, frames in ((800, 6), (320, 3), (100, 1)):
        features = mfcc_features(rng.normal(size=samples).astype(np.float32), settings)
        assert features.shape == (frames, 120) and np.isfinite(features).all()
    assert not mfcc_features(np.ones(100, np.float32), settings)[:, 40:].any()


# -- text -----------------------------------------------------------------------------------
def test_tokenizer_lowercases_and_splits_words_punctuation_and_clitics():
    assert tokenize("Hello, I don't know what you mean.") == [
        "hello", ",", "i", "do", "n't", "know", "what", "you", "mean", "."
    ]  # fmt: skip
    assert tokenize("Why... [LAUGHTER] I'm -- FINE!") == [
        "why", "...", "[", "laughter", "]", "i", "'m", "--", "fine", "!"
    ]  # fmt: skip
    assert tokenize("Why... [LAUGHTER] fine", drop_markers=True) == ["why", "...", "fine"]


def test_glove_reader_exact_cased_and_spaced_tokens(tmp_path):
    path = tmp_path / "g.txt"
    vectors = write_glove(path, dim=4)
    extra = "Mean 9 9 9 9\n"  # a cased entry after the exact one: the exact one wins
    path.write_text(path.read_text() + extra)
    rows = read_glove_rows(path, {"hello", "mean", ".", "zorblax"}, 4)
    assert set(rows) == {"hello", "mean", "."}
    assert rows["hello"][0] == "Hello"
    np.testing.assert_array_equal(rows["hello"][1], vectors["Hello"])
    np.testing.assert_array_equal(rows["mean"][1], vectors["mean"])
    np.testing.assert_array_equal(rows["."][1], vectors["."])  # not the ". . ." entry


def test_token_ids_map_to_glove_rows(prepared, release):
    out, summary, _ = prepared
    glove = write_glove(release.glove.parent / "again.txt")  # the same vectors, regenerated
    fold = out / "fold01"
    emb = np.load(fold / "W_embedding.npy", allow_pickle=False)
    tokens = json.loads((fold / "vocab.json").read_text())["tokens"]
    assert tokens[0] == "<pad>" and not emb[0].any()
    checked = set()
    for utt in release.kept:
        f, split, row = find_row(out, utt.id)
        ids = load(f, split, "nlp_trans")[row]
        words = tokenize(utt.text)[:10]
        assert [tokens[i] for i in ids[: len(words)]] == words
        assert not ids[len(words) :].any()
        for word, i in zip(words, ids, strict=False):
            source = "Hello" if word == "hello" else word
            if source in glove:
                np.testing.assert_array_equal(emb[i], glove[source])
                checked.add(word)
    assert {"hello", "n't", "...", "laughter"} <= checked
    oov = [tokens.index(w) for w in ("zorblax", "quixotl")]
    assert summary["vocabulary"]["oov"] == 2
    for i in oov:
        assert emb[i].any() and np.abs(emb[i]).max() <= 0.25
        np.testing.assert_array_equal(
            emb[i], np.load(out / "fold05" / "W_embedding.npy", allow_pickle=False)[i]
        )
    assert not np.array_equal(emb[oov[0]], emb[oov[1]])


# -- vision ---------------------------------------------------------------------------------
def test_frames_are_sampled_at_3_per_second_from_the_speakers_half(tmp_path):
    video = tmp_path / "v.avi"
    write_video(video, n_frames=30, fps=6, size=(64, 48), level=lambda i: (8 * i, 250 - 8 * i))
    requests = [
        (sample_times(1.0, 2.0, 3), "left"),  # 1.0, 1.33, 1.67 s: frames 6, 8, 10
        (sample_times(1.0, 1.5, 3), "right"),  # frames 6, 8 of the other half
        (sample_times(4.5, 6.0, 3), "left"),  # frames 27, 29; later samples are past the end
    ]
    for seek_gap in (10.0, 0.5):  # decoding straight through, and seeking to each utterance
        crops = video_frames(video, requests, FrameSettings(crop=16, seek_gap=seek_gap))
        assert [c.shape for c in crops] == [(3, 16, 16, 3), (2, 16, 16, 3), (2, 16, 16, 3)]
        means = [c.reshape(len(c), -1).mean(axis=1) for c in crops]
        np.testing.assert_allclose(means[0], [48, 64, 80], atol=4)
        np.testing.assert_allclose(means[1], [250 - 48, 250 - 64], atol=4)
        np.testing.assert_allclose(means[2], [8 * 27, 8 * 29], atol=4)
    # a half smaller than the crop (32 x 48 here) is enlarged to fit it
    (large,) = video_frames(video, requests[:1], FrameSettings(crop=40))
    assert large.shape == (3, 40, 40, 3)
    np.testing.assert_allclose(large.reshape(3, -1).mean(axis=1), [48, 64, 80], atol=4)


def test_video_features_are_resnet_of_the_crops_and_zero_without_video(prepared, release):
    out, summary, _ = prepared
    assert summary["no_video_dialogs"] == list(release.no_video)
    without = [u for u in release.kept if u.dialog in release.no_video]
    assert summary["no_video_utterances"] == len(without) > 0
    for utt in without:
        fold, split, row = find_row(out, utt.id)
        assert load(fold, split, "video_seqN")[row] == 0
        assert not load(fold, split, "video")[row].any()
    encoder = FrameEncoder(load_resnet101(None, seed=0), torch.device("cpu"), cpu_threads=1)
    settings = FrameSettings(crop=32)
    with_video = [u for u in release.kept if u.dialog not in release.no_video]
    for utt in with_video[:2]:
        fold, split, row = find_row(out, utt.id)
        n = int(load(fold, split, "video_seqN")[row])
        assert n == min(int(np.ceil((utt.end - utt.start) * 3)), 4) > 0
        video = release.root / f"Session{utt.session}/dialog/avi/DivX/{utt.dialog}.avi"
        side = "left" if utt.id.rsplit("_", 1)[1][0] == "F" else "right"
        crops = video_frames(video, [(sample_times(utt.start, utt.end, 3), side)], settings)[0]
        features = load(fold, split, "video")[row]
        # batched with other frames in the run: equal up to float32 summation order
        np.testing.assert_allclose(features[:n], encoder(crops)[:n], rtol=1e-3, atol=5e-3)
        assert not features[n:].any()


def test_resnet101_has_torchvision_parameter_names_and_loads_strictly(tmp_path):
    model = load_resnet101(None, seed=3)
    state = model.state_dict()
    assert len(state) == 626
    assert sum(p.numel() for p in model.parameters()) == 44_549_160
    expected = {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.num_batches_tracked": (),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer2.0.conv2.weight": (128, 128, 3, 3),
        "layer3.22.conv3.weight": (1024, 256, 1, 1),
        "layer4.2.bn3.running_var": (2048,),
        "fc.weight": (1000, 2048),
        "fc.bias": (1000,),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert "layer3.23.conv1.weight" not in state and "layer1.1.downsample.0.weight" not in state
    path = tmp_path / "resnet101-test.pth"
    torch.save(state, path)
    loaded = load_resnet101(path)
    crops = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    a = FrameEncoder(model, torch.device("cpu"), cpu_threads=1)(crops)
    b = FrameEncoder(loaded, torch.device("cpu"), cpu_threads=1)(crops)
    assert a.shape == (2, 2048)
    np.testing.assert_array_equal(a, b)


def test_the_roots_manifest_says_what_preparation_produced(prepared):
    """dataset.json: the folds' number, class names in id order, shapes, split and settings."""
    from selfcross.manifest import read_manifest

    out, _, _ = prepared
    manifest = read_manifest(out)
    assert (manifest.dataset, manifest.n_folds, manifest.split) == ("iemocap", 5, "random")
    assert manifest.class_names == (
        "angry", "excited", "happy", "sad", "frustrated", "surprise", "neutral"
    )  # fmt: skip
    assert manifest.shapes == {
        m: {"seq_len": s["seq_len"], "feat_dim": s["feat_dim"]} for m, s in SHAPES.items()
    }
    features = manifest.features
    assert features["audio"]["n_mfcc"] == 40 and features["audio"]["hop_ms"] == 10
    assert features["text"]["oov"] == "random" and features["text"]["dim"] == GLOVE_DIM
    assert features["vision"]["weights"] == "random-0"
    assert features["vision"]["region"] == "speaker"


def test_release_labels_per_class_come_from_the_dataset_config(release, tmp_path, capsys):
    """conf/data/iemocap.yaml maps each class to its release labels; a class may keep several
    (here happy: [hap, exc]); the old ``classes=`` list still works, with a deprecation line."""
    from omegaconf import OmegaConf

    from selfcross.data.datasets import dataset
    from selfcross.prepare.__main__ import compose_prepare
    from selfcross.prepare.iemocap_release import counts, scan_release
    from selfcross.prepare.settings import class_labels, from_config

    facts = dataset("iemocap")
    assert dict(facts.labels) == {n: [c] for n, c in zip(facts.class_names, CLASSES, strict=True)}
    settings = from_config(compose_prepare(overrides(release, tmp_path / "o")))
    assert settings.classes == tuple(CLASSES)
    assert settings.label_ids == {c: i for i, c in enumerate(CLASSES)}
    assert "deprecated" not in capsys.readouterr().err
    old = from_config(compose_prepare([*overrides(release, tmp_path / "o"),
                                       "classes=[ang,exc,hap,sad,fru,sur,neu]"]))  # fmt: skip
    assert "warning: classes= is deprecated" in capsys.readouterr().err
    assert (old.classes, old.label_ids) == (settings.classes, settings.label_ids)

    four = OmegaConf.create({
        "class_names": ["angry", "happy", "sad", "neutral"],
        "labels": {"angry": ["ang"], "happy": ["hap", "exc"], "sad": ["sad"], "neutral": ["neu"]},
    })  # fmt: skip
    labels = class_labels(four, None, "four")
    label_ids = {label: i for i, group in enumerate(labels.values()) for label in group}
    classes = tuple("+".join(g) for g in labels.values())
    corpus = scan_release(release.root, [1, 2], classes, ("fru", "sur", "xxx", "fea", "oth"),
                          label_ids)  # fmt: skip
    kept = Counter(u.label for u in release.kept)
    assert counts(corpus)["per_class"] == {
        "ang": kept["ang"], "hap+exc": kept["hap"] + kept["exc"], "sad": kept["sad"],
        "neu": kept["neu"],
    }  # fmt: skip
    assert {corpus.class_id(u) for u in corpus.utterances if u.label in ("hap", "exc")} == {1}
    with pytest.raises(ConfigError, match="must give the release labels of each class"):
        class_labels(OmegaConf.create({"class_names": ["a", "b"], "labels": {"a": ["x"]}}),
                     None, "two")  # fmt: skip


def test_wav_at_another_rate_is_resampled(tmp_path):
    import soundfile

    path = tmp_path / "a.wav"
    soundfile.write(path, np.zeros(8000, np.float32), 8000)
    assert read_wav(path, 16000).shape == (16000,)


def test_the_4class_set_of_the_prepared_7class_folds_has_the_releases_counts(
    prepared, release, tmp_path
):
    """class_set=4class on the prepared 7-class folds: each fold's three splits hold every kept
    utterance of ang, hap, exc, sad and neu once, hap and exc as happy, each with the release's
    label of its utterance id; fru and sur are left out."""
    from hydra.utils import instantiate

    from selfcross.config import compose, validate

    out = prepared[0]
    by_id = {u.id: u.label for u in release.utterances}
    four = {"ang": 0, "hap": 1, "exc": 1, "sad": 2, "neu": 3}
    kept = Counter(u.label for u in release.kept)
    expected = [kept["ang"], kept["hap"] + kept["exc"], kept["sad"], kept["neu"]]
    assert sum(expected) == len(release.kept) - kept["fru"] - kept["sur"] == 20
    for k in (1, 4):
        cfg = compose(["data=iemocap", f"data.root={out}", *shape_overrides(SHAPES), f"fold={k}",
                       "class_set=4class", "data.drop_zero_video=false",
                       f"data.cache_dir={tmp_path}"])  # fmt: skip
        validate(cfg)
        module = instantiate(cfg.data)
        module.setup("fit")
        counts = np.zeros(4, dtype=int)
        for split in SPLITS:
            inside = [i for i in manifest(out / f"fold{k:02d}")[split] if by_id[i] in four]
            labels = module.fold_data.splits[split].labels.tolist()
            assert labels == [four[by_id[i]] for i in inside]
            counts += np.bincount(labels, minlength=4)
        assert counts.tolist() == expected
