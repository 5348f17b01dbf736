"""MELD: preparation of a fake release with every mess of the real one, check, training, and the
preparation benchmark script (the tables on MELD results: test_meld_tables.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from selfcross.data.npy import SPLITS
from selfcross.prepare.audio import read_clip_audio
from selfcross.prepare.meld_release import REPAIRS, repair_text
from selfcross.prepare.resnet import FrameEncoder, load_resnet101
from selfcross.prepare.text import tokenize
from selfcross.prepare.video import FrameSettings, sample_times, video_frames
from tests.helpers.foldkit import shape_overrides
from tests.helpers.meldkit import (
    AUDIO_RATE,
    CLASSES,
    CORRUPT,
    EMPTY,
    FOLDERS,
    MISSING,
    NO_AUDIO,
    NO_VIDEO,
    REASONS,
    REPAIRED,
    SHAPES,
    UNDECODABLE,
    UNLISTED,
    make_meld,
    overrides,
    write_clip,
)
from tests.helpers.preparekit import fold_stems
from tests.helpers.releasekit import copy_release, prepare_quietly, run_error

PUBLISHED = {
    "train": [1109, 271, 268, 1743, 4710, 683, 1205],
    "dev": [153, 22, 40, 163, 470, 111, 150],
    "test": [345, 68, 50, 402, 1256, 208, 281],
}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_meld(tmp_path_factory.mktemp("meld"))


@pytest.fixture(scope="module")
def prepared(release, tmp_path_factory):
    """The fake release prepared once, by two worker processes (a bad clip fails in one)."""
    out = tmp_path_factory.mktemp("meld-prepared") / "folds"
    summary, text = prepare_quietly(overrides(release, out, "jobs=2"))
    return out, summary, text


def load(split, stem, out):
    return np.load(out / "fold01" / f"{split}_{stem}.npy", allow_pickle=False)


def manifest(out):
    return json.loads((out / "fold01" / "manifest.json").read_text())


def row_of(out, utt_id):
    for split in SPLITS:
        if utt_id in manifest(out)[split]:
            return split, manifest(out)[split].index(utt_id)
    raise AssertionError(f"{utt_id} not in fold01")


# -- counts and the official split ------------------------------------------------------------
def test_one_fold_with_the_official_split_and_exact_counts(prepared, release):
    out, summary, text = prepared
    assert summary["folds"] == ["fold01"] and not (out / "fold02").exists()
    ids = manifest(out)
    for split in SPLITS:
        expected = [c.id for c in release.kept if c.split == split]
        assert ids[split] == expected  # csv order, the release's split
        counts = release.counts(split)
        assert list(summary["counts"]["per_split"][split].values()) == counts
        labels = load(split, "label", out)
        np.testing.assert_array_equal(np.bincount(labels, minlength=7), counts)
        np.testing.assert_array_equal(
            labels, [CLASSES.index(release.by_id(i).label) for i in expected]
        )
    assert release.counts("train") == [1, 2, 1, 3, 3, 1, 2]  # the kit's own arithmetic
    assert release.counts("dev") == [0, 0, 1, 1, 1, 1, 1]
    assert release.counts("test") == [1, 0, 1, 1, 1, 1, 1]
    assert summary["counts"]["kept"] == 24 and summary["counts"]["listed_total"] == 30
    assert summary["counts"]["published"] == PUBLISHED
    # printed beside the published counts, class ids alphabetical
    assert (
        "  0   anger            1 /  1,109       0 /    153       1 /    345       2 /  1,607"
        in text
    )  # noqa: E501
    assert (
        "  3   joy              3 /  1,743       1 /    163       1 /    402       5 /  2,308"
        in text
    )  # noqa: E501
    assert (
        "      total           13 /  9,989       5 /  1,109       6 /  2,610      24 / 13,708"
        in text
    )  # noqa: E501
    assert "Listed in the csv files: train 16, dev 7, test 7 (total 30)" in text
    root = json.loads((out / "dataset.json").read_text())  # the root's manifest
    assert (root["dataset"], root["n_folds"], root["split"]) == ("meld", 1, "official")
    assert root["class_names"] == list(CLASSES) and root["features"]["vision"]["region"] == "whole"


def test_fold_has_the_iemocap_format(prepared):
    out, summary, _ = prepared
    stems = fold_stems(SHAPES)  # MELD's shapes, the IEMOCAP fold's files
    for split in SPLITS:
        n = len(manifest(out)[split])
        for stem, (dtype, shape) in stems.items():
            array = load(split, stem, out)
            assert array.dtype == dtype and array.shape == (n, *shape), (split, stem)
        assert (load(split, "video_seqN", out) > 0).all()  # no kept clip without frames
    assert (out / "fold01" / "W_embedding.npy").is_file()
    assert (out / "fold01" / "vocab.json").is_file()
    assert summary["checked"] == [
        {"fold": "fold01", "train": 13, "dev": 5, "test": 6, "dropped_no_video": 0}
    ]


# -- the messes -------------------------------------------------------------------------------
def test_unusable_clips_are_dropped_everywhere_and_listed_with_their_reason(prepared, release):
    out, summary, text = prepared
    listed = {e["id"]: e["reason"] for e in summary["unusable"]}
    expected = {f"{s}-dia{d}_utt{u}": reason for (s, d, u), reason in REASONS.items()}
    assert set(listed) == set(expected)
    for utt_id, reason in expected.items():
        assert listed[utt_id].startswith(reason), (utt_id, listed[utt_id])
    assert manifest(out)["unusable"] == summary["unusable"]
    every_row = set().union(*(manifest(out)[s] for s in SPLITS))
    assert not every_row & set(expected)
    utterances = json.loads((out / "utterances.json").read_text())
    assert {u["id"] for u in utterances} == every_row
    split, dialog, utt = UNLISTED
    unlisted = [e["clip"] for e in summary["unlisted"]]
    assert unlisted == [str(release.root / FOLDERS[split] / f"dia{dialog}_utt{utt}.mp4")]
    assert manifest(out)["unlisted"] == summary["unlisted"]
    assert "warning: 6 listed utterances are unusable" not in text  # warnings go to stderr
    assert "  dropped train-dia1_utt2: " in text and "clip is missing" in text
    assert summary["computed"]["audio"] == 24  # the corrupt clip failed in a worker


def test_mis_decoded_characters_are_repaired_and_quoted_commas_kept(prepared, release):
    out, summary, _ = prepared
    tokens = json.loads((out / "fold01" / "vocab.json").read_text())["tokens"]
    utterances = {u["id"]: u for u in json.loads((out / "utterances.json").read_text())}
    for clip in release.kept:
        assert utterances[clip.id]["text"] == REPAIRED[clip.text]
        split, row = row_of(out, clip.id)
        ids = load(split, "nlp_trans", out)[row]
        words = tokenize(REPAIRED[clip.text])[:10]
        assert [tokens[i] for i in ids[: len(words)]] == words
    assert summary["vocabulary"]["oov"] == 0  # every repaired token is a GloVe word
    assert summary["repaired_texts"] == sum(
        REPAIRED[c.text] != c.text.replace("\n", " ") for c in release.clips
    )


def test_repair_table():
    assert repair_text("it\u0092s \u201cfine\u201d\u0085 \u2014 isn\u2019t it") == (
        "it's \"fine\"... -- isn't it",
        6,
    )
    assert repair_text("it\u00e2\u20ac\u2122s") == ("it's", 1)  # UTF-8 read as cp1252
    assert repair_text("a\u0081b  c") == ("ab c", 1)  # a stray C1 control is removed
    for bad, good in REPAIRS.items():
        assert repair_text(f"x{bad}y")[0] == " ".join(f"x{good}y".split())


# -- features ---------------------------------------------------------------------------------
def test_audio_is_the_clips_track_at_16_khz_mono(tmp_path):
    clip = tmp_path / "c.mp4"
    write_clip(clip, 1.5, seed=3)
    samples = read_clip_audio(clip, 16000)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 1.5 * 16000) <= 2048 / 3  # AAC priming, at most a frame
    rng = np.random.default_rng(3)
    frequency = rng.uniform(150, 400)  # the kit's tone: left channel 0.3, right 0.15
    spectrum = np.abs(np.fft.rfft(samples[2000:-2000]))
    peak = np.fft.rfftfreq(len(samples) - 4000, 1 / 16000)[spectrum.argmax()]
    assert abs(peak - frequency) < 2
    assert np.sqrt(np.mean(samples[2000:-2000] ** 2)) == pytest.approx(0.225 / np.sqrt(2), 0.1)
    assert AUDIO_RATE == 48000


def test_audio_rows_are_mfccs_of_the_whole_clip(prepared, release):
    from selfcross.prepare.audio import AudioSettings, mfcc_features

    out, _, _ = prepared
    for clip in release.kept[:3]:
        split, row = row_of(out, clip.id)
        n = int(load(split, "audio_seqN", out)[row])
        expected = mfcc_features(read_clip_audio(clip.clip, 16000), AudioSettings())
        assert abs(len(expected) - (1 + clip.seconds * 100)) <= 8
        assert n == min(len(expected), SHAPES["A"]["seq_len"])
        np.testing.assert_allclose(load(split, "audio_mfcc", out)[row][:n], expected[:n],
                                   rtol=1e-5, atol=1e-4)  # fmt: skip


def test_whole_frame_is_kept_not_a_speaker_half(tmp_path):
    from tests.helpers.preparekit import write_video

    video = tmp_path / "v.avi"
    write_video(video, n_frames=30, fps=6, size=(64, 48), level=lambda i: (40, 200))
    settings = FrameSettings(region="whole", crop=16)
    (crops,) = video_frames(video, [(sample_times(0.0, 1.0, 3), "whole")], settings)
    assert crops.shape == (3, 16, 16, 3)
    np.testing.assert_allclose(crops[:, :, :7].mean(), 40, atol=3)  # left half of the frame
    np.testing.assert_allclose(crops[:, :, 9:].mean(), 200, atol=3)  # right half of it


def test_video_rows_are_resnet_of_whole_frames(prepared, release):
    out, _, _ = prepared
    encoder = FrameEncoder(load_resnet101(None, seed=0), torch.device("cpu"), cpu_threads=1)
    settings = FrameSettings(region="whole", crop=32)
    for clip in release.kept[:2]:
        split, row = row_of(out, clip.id)
        n = int(load(split, "video_seqN", out)[row])
        assert n == min(int(np.ceil(clip.seconds * 3 - 1e-9)), 4)
        (crops,) = video_frames(clip.clip, [(sample_times(0, clip.seconds, 3), "whole")],
                                settings)  # fmt: skip
        features = load(split, "video", out)[row]
        np.testing.assert_allclose(features[:n], encoder(crops)[:n], rtol=1e-3, atol=5e-3)
        assert not features[n:].any()


# -- cache, strict, errors --------------------------------------------------------------------
def test_rerun_resumes_from_the_cache(prepared, release, monkeypatch):
    from selfcross.prepare import extract

    out, _, _ = prepared
    before = load("train", "video", out).copy()
    tried = []
    real = extract.compute_audio

    def only_the_failed_clip(path, settings):
        tried.append(path.name)
        if path.name != "dia3_utt1.mp4":
            raise AssertionError(f"features of {path} recomputed")
        return real(path, settings)

    def forbidden(*args, **kwargs):
        raise AssertionError("frames decoded again")

    monkeypatch.setattr(extract, "compute_audio", only_the_failed_clip)
    monkeypatch.setattr(extract, "video_frames", forbidden)
    summary, text = prepare_quietly(overrides(release, out))
    assert summary["reused"] == {"audio": 24, "video": 24}
    assert summary["computed"] == {"audio": 0, "video": 0, "frames": 0}
    assert "audio 24 and video 24 of 25 cached (reused); 1 clips to process" in text
    assert "[GloVe rows reused from the cache]" in text
    np.testing.assert_array_equal(load("train", "video", out), before)
    # the clip that failed during extraction left nothing in the cache: it is tried again
    assert tried == ["dia3_utt1.mp4"]
    assert len(summary["unusable"]) == 6


@pytest.fixture
def copy(release, tmp_path):
    return copy_release(release.root, release.glove, tmp_path / "copy")


def test_strict_names_each_unusable_clip_in_turn(release, copy, tmp_path, capsys):
    """strict=true stops at the first problem, naming the file; fixed one by one, each of the
    next problems is named in turn, and the release without them prepares."""
    args = overrides(release, tmp_path / "o", f"raw={copy}", "strict=true")

    def clip(key):
        split, dialog, utt = key
        return copy / FOLDERS[split] / f"dia{dialog}_utt{utt}.mp4"

    line = run_error(args, capsys)
    assert line == f"error: {clip(UNLISTED)}: no row of train_sent_emo.csv lists this clip " \
        "(strict=true)"  # fmt: skip
    clip(UNLISTED).unlink()
    for key in (MISSING, EMPTY, UNDECODABLE, NO_VIDEO, NO_AUDIO, CORRUPT):
        line = run_error(args, capsys)
        assert line.startswith(f"error: {clip(key)}: {REASONS[key]}"), (key, line)
        assert line.endswith("; strict=true)")
        write_clip(clip(key), 1.0, seed=5)
    summary, _ = prepare_quietly(args)
    assert summary["counts"]["kept"] == 30 and summary["unusable"] == []


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace("Emotion", "Feeling", 1), "has no column Emotion"),
        (lambda t: t.replace(",joy,", ",bored,", 1), "emotion 'bored' is neither in classes"),
        (lambda t: t.replace(",neutral,0,0,", ",neutral,x,0,", 1), "are not numbers"),
    ],
)
def test_a_malformed_csv_is_a_one_line_error(release, copy, tmp_path, capsys, edit, message):
    csv_file = copy / "train_sent_emo.csv"
    csv_file.write_text(edit(csv_file.read_text(encoding="utf-8")), encoding="utf-8")
    line = run_error(overrides(release, tmp_path / "o", f"raw={copy}"), capsys)
    assert line.startswith(f"error: {csv_file}: ") and message in line


def test_missing_raw_names_meld(capsys):
    line = run_error(["dataset=meld", "glove=x", "out=y", "vision.random_weights=true"], capsys)
    assert line.startswith("error: raw is not set: point it at MELD.Raw")
    line = run_error(["dataset=meld", "raw=x", "glove=x", "out=y", "split=random",
                      "vision.random_weights=true"], capsys)  # fmt: skip
    assert line == "error: split=random: expected one of official"


# -- use: check, training, tables -------------------------------------------------------------
def test_check_reads_the_meld_fold(prepared, capsys):
    from selfcross.check import main as check

    out, _, _ = prepared
    with pytest.raises(SystemExit) as exit_info:
        check(["data=meld", f"data.root={out}", *shape_overrides(SHAPES)])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "1 of 1 folds valid" in text
    assert "class ids 0 anger, 1 disgust, 2 fear, 3 joy, 4 neutral, 5 sadness, 6 surprise" in text
    assert "  0 anger                    1       0       1       2    1607" in text


def test_training_on_meld_uses_its_class_names(prepared, tmp_path):
    from selfcross.config import compose
    from selfcross.training.experiment import train_and_test
    from tests.conftest import base_overrides

    out = prepared[0]
    cfg = compose([*base_overrides(tmp_path), "data=meld", f"data.root={out}",
                   *shape_overrides(SHAPES), "model=cross", "modality=TVA", "fold=1",
                   "trainer.max_epochs=1"])  # fmt: skip
    record = train_and_test(cfg).record
    assert record.epochs == 1 and 0 <= record.test_uwa <= 1
    assert list(record.class_names) == list(CLASSES)
    assert {k: v["n"] for k, v in record.data.splits.items()} == {
        "train": 13, "dev": 5, "test": 6
    }  # fmt: skip
    assert record.data.name == "meld"
    with pytest.raises(Exception, match="fold=2: folds are numbered 1..1"):
        train_and_test(compose([*base_overrides(tmp_path), "data=meld", f"data.root={out}",
                                "fold=2"]))  # fmt: skip


def test_preparation_benchmark_measures_each_size_and_fails_loudly(tmp_path):
    """scripts/bench_prepare.py (docs/preparing-meld.md's figures) on two tiny releases."""
    import subprocess
    import sys

    from selfcross.config import CONFIG_DIR

    script = CONFIG_DIR.parent / "scripts" / "bench_prepare.py"
    small = ["vision.crop=32", "vision.batch_size=8", "vision.cpu_threads=1", "jobs=1"]
    command = [sys.executable, str(script), "--clips", "5", "3", "--work", str(tmp_path)]
    done = subprocess.run([*command, *small], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["clips"], r["utterances"]) for r in rows] == [(3, 3), (5, 5)]  # smallest first
    for r in rows:
        summary = json.loads((tmp_path / f"prepared-{r['clips']}" / "prepare.json").read_text())
        assert r["frames"] == summary["computed"]["frames"] > 0
        assert summary["reused"] == {"audio": 0, "video": 0}  # measured from an empty cache
        assert 100 < r["peak_rss_mb"] < 8000 and r["cpu_s"] > 0
    assert rows[0]["peak_vs_smallest"] == 1.0
    assert rows[1]["peak_vs_smallest"] == round(rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"], 2)
    assert "peak RSS MB" in done.stderr

    failed = subprocess.run([*command, "vision.crop=0"], capture_output=True, text=True)
    assert failed.returncode != 0
    assert failed.stderr.strip().endswith("preparation failed with exit code 2")
    assert str(tmp_path / "prepared-3.log") in failed.stderr
