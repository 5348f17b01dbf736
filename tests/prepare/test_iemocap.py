"""selfcross.prepare on a tiny fake IEMOCAP release: folds, features, cache, errors, training."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from selfcross.data.npy import SPLITS
from selfcross.errors import ConfigError
from selfcross.prepare.audio import AudioSettings, mfcc_features, read_wav
from selfcross.prepare.extract import ExtractStats, FramePacker
from selfcross.prepare.resnet import FrameEncoder, load_resnet101
from selfcross.prepare.splits import random_folds, session_folds
from selfcross.prepare.text import read_glove_rows, tokenize
from selfcross.prepare.video import FrameSettings, sample_times, video_frames
from tests.conftest import run_cli
from tests.helpers.foldkit import shape_overrides
from tests.helpers.preparekit import (
    GLOVE_DIM,
    SHAPES,
    make_release,
    overrides,
    write_glove,
    write_video,
)
from tests.helpers.releasekit import copy_release, prepare_quietly, run_error

CLASSES = ["ang", "exc", "hap", "sad", "fru", "sur", "neu"]
STEMS = {
    "audio_mfcc": (np.float32, (SHAPES["A"]["seq_len"], 120)),
    "audio_seqN": (np.int64, ()),
    "audio_prosody": (np.float32, (35,)),
    "nlp_trans": (np.int64, (SHAPES["T"]["seq_len"],)),
    "video": (np.float32, (SHAPES["V"]["seq_len"], 2048)),
    "video_seqN": (np.int64, ()),
    "label": (np.int64, ()),
}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def prepared(release, tmp_path_factory):
    """The fake release prepared once (random split, two worker processes, random ResNet)."""
    out = tmp_path_factory.mktemp("prepared") / "folds"
    summary, text = prepare_quietly(overrides(release, out, "jobs=2"))
    assert "2 worker(s)" in text
    return out, summary, text


def load(fold_dir, split, stem):
    return np.load(fold_dir / f"{split}_{stem}.npy", allow_pickle=False)


def manifest(fold_dir):
    return json.loads((fold_dir / "manifest.json").read_text())


def find_row(out, utt_id):
    """(fold01 directory, split, row) of an utterance, from the manifest."""
    fold = out / "fold01"
    for split in SPLITS:
        ids = manifest(fold)[split]
        if utt_id in ids:
            return fold, split, ids.index(utt_id)
    raise AssertionError(f"{utt_id} not in fold01")


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


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, message",
    [
        ({"raw": "/no/such/release"}, "error: /no/such/release: no such directory"),
        ({"sessions": "[1,2,3]"}, "Session3: session folder is missing"),
        ({"text.dim": "300"}, "glove.txt: holds 8-dimensional vectors, expected 300"),
        ({"vision.random_weights": "false"}, "error: vision.weights is not set"),
        ({"glove": "/no/glove.txt"}, "error: /no/glove.txt: GloVe file is missing"),
        ({"split": "fancy"}, "error: split=fancy: expected one of random, session"),
        ({"nosuchkey": "1"}, "error: Could not override 'nosuchkey'"),
    ],
)
def test_bad_arguments_are_one_line_errors(release, tmp_path, capsys, change, message):
    args = [a for a in overrides(release, tmp_path / "o") if a.split("=")[0] not in change]
    args += [f"{k}={v}" for k, v in change.items()]
    assert message in run_error(args, capsys)
    assert not (tmp_path / "o" / "fold01").exists()


def test_missing_raw_is_a_one_line_error(capsys):
    line = run_error(["glove=x", "out=y", "vision.random_weights=true"], capsys)
    assert line.startswith("error: raw is not set: point it at IEMOCAP_full_release")


@pytest.fixture
def broken_copy(release, tmp_path):
    """A copy of the fake release (GloVe file included) to break in one test."""
    return copy_release(release.root, release.glove, tmp_path / "copy")


def test_unreadable_wav_is_named(release, broken_copy, tmp_path, capsys):
    wav = broken_copy / "Session2/sentences/wav/Ses02F_impro02/Ses02F_impro02_M001.wav"
    wav.write_bytes(b"RIFF not really a wave file")
    args = overrides(release, tmp_path / "o", f"raw={broken_copy}")
    assert f"error: {wav}: cannot be read as audio" in run_error(args, capsys)


def test_unreadable_video_is_named(release, broken_copy, tmp_path, capsys):
    video = broken_copy / "Session1/dialog/avi/DivX/Ses01F_impro01.avi"
    video.write_bytes(b"\x00" * 1000)
    args = overrides(release, tmp_path / "o", f"raw={broken_copy}")
    assert f"error: {video}: cannot be opened as video" in run_error(args, capsys)


def test_unknown_label_is_named(release, broken_copy, tmp_path, capsys):
    labels = broken_copy / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    labels.write_text(labels.read_text().replace("\tsur\t", "\tbored\t"))
    args = overrides(release, tmp_path / "o", f"raw={broken_copy}")
    assert f"error: {labels}: utterance Ses01F_impro01_F006 has label 'bored'" in run_error(
        args, capsys
    )


def test_weights_that_are_not_resnet101_are_named(release, tmp_path, capsys):
    weights = tmp_path / "resnet50.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, weights)
    args = overrides(release, tmp_path / "o", "vision.random_weights=false",
                     f"vision.weights={weights}")  # fmt: skip
    line = run_error(args, capsys)
    assert line.startswith(f"error: {weights}: is not torchvision's resnet101 state dict")


def test_cli_reports_a_wrong_path_in_one_line(tmp_path):
    proc = run_cli("selfcross.prepare", f"raw={tmp_path / 'nope'}", f"glove={tmp_path}",
                   f"out={tmp_path / 'o'}", "vision.random_weights=true")  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: no such directory (expected IEMOCAP_full_release)"
    ]


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
