"""features=pretrained with tiny random encoders of each family (helpers/encoderkit.py) on the
fake IEMOCAP and MELD releases: files, manifest, transformers equality, determinism, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from selfcross.prepare.audio import read_wav
from selfcross.prepare.encoders import (
    load_audio_encoder,
    load_text_encoder,
    load_vision_encoder,
    weights_digest,
)
from tests.helpers import encoderkit, meldkit
from tests.helpers.encoderkit import PROJECTION, WIDTH
from tests.helpers.preparekit import make_release, overrides
from tests.helpers.releasekit import prepare_quietly, run_error

AUDIO_FRAMES = 60
TOL = {"rtol": 2e-3, "atol": 2e-3}
"""Stored float16 vs a float32 forward pass: 11 significant bits on unit-scale features."""


@pytest.fixture(scope="session")
def encoders(tmp_path_factory):
    return encoderkit.save_all(tmp_path_factory.mktemp("encoders"))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("release"))


def pretrained_args(release, out, encoders, audio="wavlm", text="roberta", vision="clip_vision",
                    *extra):  # fmt: skip
    """The fast options without GloVe or ResNet weights, and the three encoders."""
    args = [a for a in overrides(release, out) if not a.startswith(("glove=", "vision.random"))]
    return [*args, "features=pretrained", f"audio.max_frames={AUDIO_FRAMES}",
            f"audio.encoder={encoders[audio]}", f"text.encoder={encoders[text]}",
            f"vision.encoder={encoders[vision]}", "audio.batch_size=4", "text.batch_size=4",
            *extra]  # fmt: skip


@pytest.fixture(scope="module")
def prepared(release, encoders, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained") / "folds"
    summary, _ = prepare_quietly(pretrained_args(release, out, encoders))
    return out, summary


def arrays(fold_dir) -> dict[str, np.ndarray]:
    return {p.name: np.load(p, allow_pickle=False) for p in sorted(fold_dir.glob("*.npy"))}


def rows_by_id(out, fold: int = 1) -> dict[str, tuple[str, int]]:
    manifest = json.loads((out / f"fold{fold:02d}" / "manifest.json").read_text())
    return {utt: (split, row) for split in ("train", "dev", "test")
            for row, utt in enumerate(manifest[split])}  # fmt: skip


def test_fold_files_hold_float16_features_of_each_encoder_width(prepared):
    out, _ = prepared
    files = arrays(out / "fold01")
    n = len(files["train_label.npy"])
    assert files["train_audio_mfcc.npy"].shape == (n, AUDIO_FRAMES, WIDTH)
    assert files["train_text.npy"].shape == (n, 10, WIDTH)
    assert files["train_video.npy"].shape == (n, 4, PROJECTION)
    for stem in ("audio_mfcc", "text", "video"):
        assert files[f"train_{stem}.npy"].dtype == np.float16
    assert "train_nlp_trans.npy" not in files and "W_embedding.npy" not in files
    assert not (out / "fold01" / "vocab.json").exists()


def test_the_manifest_names_each_modalitys_feature_set(prepared, encoders):
    from selfcross.manifest import read_manifest

    out, _ = prepared
    manifest = read_manifest(out)
    assert manifest.shapes == {"T": {"seq_len": 10, "feat_dim": WIDTH},
                               "V": {"seq_len": 4, "feat_dim": PROJECTION},
                               "A": {"seq_len": AUDIO_FRAMES, "feat_dim": WIDTH}}  # fmt: skip
    feature_set = manifest.features["set"]
    assert feature_set["A"] == {"encoder": "wavlm", "weights": weights_digest(encoders["wavlm"]),
                                "layer": "last", "width": WIDTH, "rate": 50.0}  # fmt: skip
    assert feature_set["T"]["encoder"] == "roberta" and feature_set["T"]["width"] == WIDTH
    assert feature_set["V"] == {"encoder": "clip_vision", "layer": None, "rate": None,
                                "weights": weights_digest(encoders["clip_vision"]),
                                "width": PROJECTION}  # fmt: skip


def test_audio_equals_a_direct_forward_pass_on_the_cut_wav(prepared, release, encoders):
    from transformers import AutoFeatureExtractor, WavLMModel

    out, _ = prepared
    model = WavLMModel.from_pretrained(encoders["wavlm"]).eval()
    extractor = AutoFeatureExtractor.from_pretrained(encoders["wavlm"])
    files, where = arrays(out / "fold01"), rows_by_id(out)
    samples = 320 * (AUDIO_FRAMES - 1) + 325  # the fewest samples giving AUDIO_FRAMES frames
    checked = 0
    for utt in release.kept[:6]:
        split, row = where[utt.id]
        wave = read_wav(utt.wav, 16000)[:samples]
        inputs = extractor(wave, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            direct = model(**inputs).last_hidden_state[0].numpy()
        n = int(files[f"{split}_audio_seqN.npy"][row])
        assert n == min(len(direct), AUDIO_FRAMES) and n > 0
        stored = files[f"{split}_audio_mfcc.npy"][row].astype(np.float32)
        np.testing.assert_allclose(stored[:n], direct[:n], **TOL)
        assert not stored[n:].any()
        checked += 1
    assert checked == 6


def test_text_equals_a_direct_forward_pass_on_the_transcript(prepared, release, encoders):
    from transformers import AutoTokenizer, RobertaModel

    out, _ = prepared
    model = RobertaModel.from_pretrained(encoders["roberta"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(encoders["roberta"])
    files, where = arrays(out / "fold01"), rows_by_id(out)
    for utt in release.kept[:6]:
        split, row = where[utt.id]
        inputs = tokenizer(utt.text, truncation=True, max_length=10, return_tensors="pt")
        with torch.no_grad():
            direct = model(**inputs).last_hidden_state[0].numpy()
        stored = files[f"{split}_text.npy"][row].astype(np.float32)
        np.testing.assert_allclose(stored[: len(direct)], direct, **TOL)
        assert not stored[len(direct) :].any()


def test_video_equals_clip_image_embeddings_of_the_speakers_frames(prepared, release, encoders):
    from transformers import CLIPImageProcessorPil, CLIPVisionModelWithProjection

    from selfcross.prepare.video import FrameSettings, sample_times, video_frames

    out, _ = prepared
    model = CLIPVisionModelWithProjection.from_pretrained(encoders["clip_vision"]).eval()
    processor = CLIPImageProcessorPil.from_pretrained(encoders["clip_vision"])
    files, where = arrays(out / "fold01"), rows_by_id(out)
    settings = FrameSettings(crop=32)
    utt = next(u for u in release.kept if u.dialog not in release.no_video)
    session = release.root / f"Session{utt.session}"
    video = session / "dialog" / "avi" / "DivX" / f"{utt.dialog}.avi"
    side = {"F": "left", "M": "right"}[utt.id.split("_")[-1][0]]
    crops = video_frames(video, [(sample_times(utt.start, utt.end, 3.0), side)], settings)[0]
    with torch.no_grad():
        pixels = processor(images=list(crops), return_tensors="pt")["pixel_values"]
        direct = model(pixel_values=pixels).image_embeds.numpy()
    split, row = where[utt.id]
    n = min(len(direct), 4)
    assert files[f"{split}_video_seqN.npy"][row] == n
    np.testing.assert_allclose(files[f"{split}_video.npy"][row][:n].astype(np.float32),
                               direct[:n], **TOL)  # fmt: skip


@pytest.mark.parametrize("family", encoderkit.SPEECH)
def test_every_speech_family_and_layer_choice_matches_transformers(encoders, family):
    """The function API: last, mean over the layers and an index; batched as one at a time."""
    import transformers

    folder = encoders[family]
    model = transformers.AutoModel.from_pretrained(folder).eval()
    rng = np.random.default_rng(0)
    waves = [rng.normal(0, 0.1, n).astype(np.float32) for n in (16000, 9000, 4000)]
    for layer in ("last", "mean", 1):
        encoder = load_audio_encoder(folder, layer=layer, device="cpu", batch_size=3)
        batched = encoder(waves)
        for wave, got in zip(waves, batched, strict=True):
            inputs = encoder.extractor(wave, sampling_rate=16000, return_tensors="pt")
            with torch.no_grad():
                outputs = model(**inputs, output_hidden_states=True)
            states = outputs.hidden_states
            want = {"last": outputs.last_hidden_state, "mean": torch.stack(states[1:]).mean(0),
                    1: states[1]}[layer][0].numpy()  # fmt: skip
            assert got.shape == want.shape == (encoder.frames(len(wave)), WIDTH)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert encoder.rate == 50.0 and encoder.frames(encoder.max_samples(7)) == 7


@pytest.mark.parametrize("family", encoderkit.TEXT)
def test_every_text_family_matches_transformers(encoders, family):
    import transformers

    folder = encoders[family]
    model = transformers.AutoModel.from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    texts = ["so happy", "why are you angry tell me what you mean", ""]  # padded in a batch
    got = load_text_encoder(folder, device="cpu", batch_size=2)(texts, max_tokens=6)
    for text, features in zip(texts, got, strict=True):
        inputs = tokenizer(text, truncation=True, max_length=6, return_tensors="pt")
        with torch.no_grad():
            want = model(**inputs).last_hidden_state[0].numpy()
        assert features.shape == want.shape and len(want) <= 6
        np.testing.assert_allclose(features, want, rtol=1e-4, atol=1e-4)


def test_a_whole_clip_model_gives_its_projected_image_features(encoders):
    from transformers import CLIPImageProcessorPil, CLIPModel

    folder = encoders["clip"]
    model = CLIPModel.from_pretrained(folder).eval()
    crops = np.random.default_rng(0).integers(0, 256, (5, 40, 40, 3), dtype=np.uint8)
    encoder = load_vision_encoder(folder, device="cpu", batch_size=2)
    processor = CLIPImageProcessorPil.from_pretrained(folder)
    pixels = processor(images=list(crops), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        want = model.get_image_features(pixel_values=pixels).pooler_output.numpy()
    assert encoder.width == PROJECTION
    np.testing.assert_allclose(encoder(crops), want, rtol=1e-4, atol=1e-4)


def test_the_same_run_twice_gives_identical_arrays(prepared, release, encoders, tmp_path):
    out, _ = prepared
    again = tmp_path / "again"
    prepare_quietly(pretrained_args(release, again, encoders))  # its own, empty cache
    first, second = arrays(out / "fold01"), arrays(again / "fold01")
    assert first.keys() == second.keys()
    for name in first:
        assert first[name].tobytes() == second[name].tobytes(), name


CHANGES = [("audio", "wavlm", "audio_mfcc"), ("text", "roberta", "text"),
           ("vision", "clip_vision", "video")]  # fmt: skip


@pytest.mark.parametrize("modality, family, stem", CHANGES)
def test_a_changed_encoder_changes_only_its_modalitys_arrays(
    prepared, release, encoders, tmp_path, modality, family, stem
):
    out, _ = prepared
    changed = {**encoders, family: encoderkit.perturb(encoders[family], tmp_path / family)}
    summary, _ = prepare_quietly(
        pretrained_args(
            release,
            tmp_path / "out",
            changed,
            "wavlm",
            "roberta",
            "clip_vision",
            f"cache={out / 'cache'}",
        )  # fmt: skip
    )
    before, after = arrays(out / "fold01"), arrays(tmp_path / "out" / "fold01")
    for name in before:
        same = before[name].tobytes() == after[name].tobytes()
        assert same == (not name.endswith(f"_{stem}.npy")), name
    if modality == "audio":  # the other modalities came from the shared cache
        assert summary["computed"]["audio"] > 0 and summary["computed"]["video"] == 0


def test_a_rerun_reuses_every_cached_feature(prepared, release, encoders, tmp_path):
    out, _ = prepared
    summary, text = prepare_quietly(
        pretrained_args(
            release,
            tmp_path / "out",
            encoders,
            "wavlm",
            "roberta",
            "clip_vision",
            f"cache={out / 'cache'}",
        )  # fmt: skip
    )
    assert summary["computed"] == {"audio": 0, "video": 0, "frames": 0}
    assert "features of 0 utterances computed" in text


def test_one_pretrained_modality_keeps_the_papers_others(release, encoders, tmp_path):
    """Only text.encoder: MFCC audio and ResNet video as with features=paper, no GloVe."""
    args = [a for a in overrides(release, tmp_path / "out") if not a.startswith("glove=")]
    prepare_quietly([*args, "features=pretrained", f"text.encoder={encoders['bert']}"])
    files = arrays(tmp_path / "out" / "fold01")
    assert files["train_audio_mfcc.npy"].shape[2] == 120
    assert files["train_audio_mfcc.npy"].dtype == np.float32
    assert files["train_video.npy"].shape[2] == 2048
    assert files["train_text.npy"].shape[2] == WIDTH
    feature_set = json.loads((tmp_path / "out" / "dataset.json").read_text())["features"]["set"]
    assert [feature_set[m]["encoder"] for m in "ATV"] == ["mfcc40", "bert", "resnet101"]


def test_meld_prepared_with_pretrained_encoders(encoders, tmp_path):
    (tmp_path / "meld").mkdir()
    release = meldkit.make_meld(tmp_path / "meld")
    args = [a for a in meldkit.overrides(release, tmp_path / "out")
            if not a.startswith(("glove=", "vision.random"))]  # fmt: skip
    summary, _ = prepare_quietly([*args, "features=pretrained", "audio.max_frames=40",
                                  f"audio.encoder={encoders['hubert']}",
                                  f"text.encoder={encoders['bert']}",
                                  f"vision.encoder={encoders['clip']}"])  # fmt: skip
    files = arrays(tmp_path / "out" / "fold01")
    n = len(files["train_label.npy"])
    assert files["train_audio_mfcc.npy"].shape == (n, 40, WIDTH)
    assert files["train_text.npy"].shape == (n, 10, WIDTH)
    assert files["train_video.npy"].shape == (n, 4, PROJECTION)
    assert (files["train_audio_seqN.npy"] > 0).all()
    assert summary["unusable"]  # the kit's broken clips are dropped and listed, as with paper
    manifest = json.loads((tmp_path / "out" / "dataset.json").read_text())
    names = {m: s["encoder"] for m, s in manifest["features"]["set"].items()}
    assert names == {"A": "hubert", "T": "bert", "V": "clip"}


@pytest.mark.parametrize(
    "change, message",
    [
        (["audio.encoder=microsoft/wavlm-base-plus"],
         "error: audio.encoder=microsoft/wavlm-base-plus: not a local folder; encoders are read "
         "from disk only, fetch it first with: hf download microsoft/wavlm-base-plus --local-dir "
         "/models/wavlm-base-plus (then audio.encoder=/models/wavlm-base-plus)"),
        (["features=paper"], "error: audio.encoder is set but features=paper"),
        (["audio.encoder=null", "text.encoder=null", "vision.encoder=null"],
         "error: features=pretrained: set the encoder of at least one modality"),
        (["audio.layer=9"], "error: audio.layer=9: wavlm has layers 0..2"),
        (["text.layer=first"], "error: text.layer=first: expected last, mean or a layer index"),
        (["dtype=int8"], "error: dtype=int8: expected one of float16, float32"),
    ],
)  # fmt: skip
def test_bad_encoder_settings_are_one_line_errors(release, encoders, tmp_path, capsys, change,
                                                   message):  # fmt: skip
    line = run_error([*pretrained_args(release, tmp_path / "out", encoders), *change], capsys)
    assert line.startswith(message), line


# -- training on pretrained features --------------------------------------------------------
def train(root, tmp_path, *extra):
    from selfcross.config import compose
    from selfcross.training.experiment import train_and_test
    from tests.conftest import base_overrides

    cfg = compose([*base_overrides(tmp_path), "data=iemocap", f"data.root={root}", *extra])
    return cfg, train_and_test(cfg).record


def test_a_run_is_sized_from_the_manifest_and_records_the_feature_set(prepared, tmp_path):
    """No data.shapes given: validation takes the manifest's (conv_out scaled: audio 1000 ->
    500 at 60 frames is 30, vision 32 -> 25 at 4 is 3); the record carries the feature set."""
    from selfcross.manifest import feature_set_label, read_manifest

    out, _ = prepared
    cfg, record = train(out, tmp_path, "model=cross", "modality=TVA", "trainer.max_epochs=1")
    assert dict(cfg.data.shapes.A) == {"seq_len": AUDIO_FRAMES, "feat_dim": WIDTH, "conv_out": 30}
    assert dict(cfg.data.shapes.V) == {"seq_len": 4, "feat_dim": PROJECTION, "conv_out": 3}
    assert dict(cfg.data.shapes.T) == {"seq_len": 10, "feat_dim": WIDTH, "conv_out": None}
    assert record.epochs == 1 and 0 <= record.test_uwa <= 1
    assert record.data.feature_set == read_manifest(out).features["set"]
    weights = {m: entry["weights"][:8] for m, entry in record.data.feature_set.items()}
    assert feature_set_label(record.data.feature_set) == (
        f"T=roberta@{weights['T']}/last V=clip_vision@{weights['V']} A=wavlm@{weights['A']}/last"
    )


def test_check_prints_and_summary_sizes_from_the_feature_set(prepared, capsys):
    """selfcross.check prints the root's feature set; selfcross.summary given the root sizes
    the model from its manifest."""
    from selfcross.check import check_config
    from selfcross.summary import summarize

    out, _ = prepared
    report = check_config(["data=iemocap", f"data.root={out}", "modality=TVA"])
    printed = capsys.readouterr().out.splitlines()
    assert report.ok
    assert printed[0].startswith("Feature set: T=roberta@") and "A=wavlm@" in printed[0]
    assert printed[3].startswith("  A: wavlm (weights ") and "width 16, rate 50.0" in printed[3]
    info = summarize(["data=iemocap", f"data.root={out}", "model=cross", "modality=TVA"])
    assert info["shapes"]["A"] == {"seq_len": AUDIO_FRAMES, "feat_dim": WIDTH, "conv_out": 30}
    assert info["shapes"]["V"] == {"seq_len": 4, "feat_dim": PROJECTION, "conv_out": 3}


@pytest.mark.slow
def test_self_and_cross_learn_a_class_carried_by_audio_and_text(encoders, tmp_path):
    """A fake release whose audio pitch and transcripts carry the class, prepared with
    pretrained speech and text encoders: tri-seed mean test UWA beats the majority rate by at
    least 0.1 for Self and for Cross (TA). Slow (18 short trainings); the fast test above runs
    the same path for one epoch."""
    from tests.helpers.preparekit import carry_the_class

    (tmp_path / "release").mkdir()
    release = carry_the_class(make_release(tmp_path / "release", sessions=(1, 2, 3, 4, 5)))
    out = tmp_path / "folds"
    args = [a for a in overrides(release, out) if not a.startswith(("glove=", "sessions="))]
    prepare_quietly([*args, "sessions=[1,2,3,4,5]", "features=pretrained",
                     f"audio.max_frames={AUDIO_FRAMES}", f"audio.encoder={encoders['wavlm']}",
                     f"text.encoder={encoders['roberta']}"])  # fmt: skip
    for model in ("self", "cross"):
        margins, losses = [], []
        for seed in (1, 2, 3):
            _, record = train(out, tmp_path / f"{model}{seed}", f"model={model}", "modality=TA",
                              f"seed={seed}", "trainer.max_epochs=8", "data.batch_size=8",
                              "data.drop_zero_video=false")  # fmt: skip
            margins.append(record.test_uwa - record.majority_rate)
            losses.append([h["train/loss"] for h in record.history if "train/loss" in h])
        assert np.mean(margins) >= 0.1, (model, margins)
        assert all(loss[-1] < loss[0] for loss in losses), (model, losses)
