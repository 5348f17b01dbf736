"""What the fold reader finds inside usable files: non-finite values (refused, or replaced and
counted), splits left empty after dropping, a class missing from train, and the sanity
warnings (frames beyond the valid length, zero lengths, what WA means without a class).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from selfcross.data import npy
from tests.helpers.checkkit import expect_error, read, save


# -- non-finite values --------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_feature_names_split_and_first_utterance(fold, monkeypatch, bad):
    directory, arrays = fold
    monkeypatch.setattr(npy, "BLOCK_BYTES", 1)  # one utterance per block: the index is global
    audio = arrays["train_audio_mfcc"].copy()
    audio[13, 7, 1] = bad  # in the padding of utterance 13: still a bad file
    audio[17, 0, 0] = bad
    save(directory, "train_audio_mfcc", audio)
    expect_error(
        directory,
        "train_audio_mfcc.npy",
        "NaN or infinite feature values in the train split, first at utterance 13 "
        "(set data.on_nonfinite=zero to replace them with 0)",
    )


def test_non_finite_values_in_a_dropped_utterance_do_not_matter(fold):
    directory, arrays = fold
    video = arrays["dev_video"].copy()
    video[5] = np.nan  # dev utterance 5 has no video: dropped, never read
    save(directory, "dev_video", video)
    assert len(read(directory).splits["dev"]) == 5
    expect_error(
        directory,
        "dev_video.npy",
        "NaN or infinite feature values in the dev split, first at utterance 5 "
        "(set data.on_nonfinite=zero to replace them with 0)",
        drop_zero_video=False,
    )


def test_non_finite_zero_mode_replaces_and_reports_the_count(fold, caplog):
    directory, arrays = fold
    video = arrays["test_video"].copy()
    video[2, 0, :] = [np.nan, np.inf, 1.5]
    video[3, 1, 2] = -np.inf
    save(directory, "test_video", video)
    with caplog.at_level(logging.WARNING):
        data = read(directory, on_nonfinite="zero", drop_zero_video=False)
    got = data.splits["test"].features["V"]
    assert data.splits["test"].nonfinite_zeroed == 3
    assert got[2, 0].tolist() == [0.0, 0.0, 1.5] and got[3, 1, 2] == 0.0
    np.testing.assert_array_equal(got[4:], arrays["test_video"][4:])
    assert (
        f"{directory / 'test_video.npy'}: replaced 3 NaN or infinite values with 0 "
        "(data.on_nonfinite=zero)" in caplog.messages
    )


def test_non_finite_embedding(fold, caplog):
    directory, arrays = fold
    emb = arrays["W_embedding"].copy()
    emb[3, 2] = np.nan
    emb[7, 0] = np.inf
    save(directory, "W_embedding", emb)
    expect_error(
        directory,
        "W_embedding.npy",
        "NaN or infinite values, first in row 3 (token id 3) "
        "(set data.on_nonfinite=zero to replace them with 0)",
    )
    with caplog.at_level(logging.WARNING):
        data = read(directory, on_nonfinite="zero")
    assert data.embedding_zeroed == 2 and data.embedding[3, 2] == 0 and data.embedding[7, 0] == 0
    assert (
        f"{directory / 'W_embedding.npy'}: replaced 2 NaN or infinite values with 0 "
        "(data.on_nonfinite=zero)" in caplog.messages
    )


def test_float64_beyond_float32_range_is_not_silently_infinite(fold):
    directory, arrays = fold
    audio = arrays["dev_audio_mfcc"].astype(np.float64)
    audio[2, 0, 0] = 1e40
    save(directory, "dev_audio_mfcc", audio)
    expect_error(
        directory,
        "dev_audio_mfcc.npy",
        "feature values beyond the float32 range in the dev split, first at utterance 2 "
        "(set data.on_nonfinite=zero to replace them with 0)",
        drop_zero_video=False,
    )


# -- what is left --------------------------------------------------------------------------------
def test_split_empty_after_dropping_zero_length_videos(fold):
    directory, arrays = fold
    save(directory, "dev_video_seqN", np.zeros(7, np.int64))
    expect_error(
        directory,
        "dev_label.npy",
        "the dev split is empty after dropping utterances with no video",
    )
    assert len(read(directory, drop_zero_video=False).splits["dev"]) == 7


def test_split_with_no_utterance(fold):
    directory, arrays = fold
    for stem, array in arrays.items():
        if stem.startswith("test_"):
            save(directory, stem, array[:0])
    expect_error(directory, "test_label.npy", "the test split is empty")


def test_train_audio_with_no_valid_frame_names_the_lengths_file(fold):
    directory, arrays = fold
    save(directory, "train_audio_seqN", np.zeros(21, np.int64))
    save(directory, "train_audio_mfcc", np.zeros_like(arrays["train_audio_mfcc"]))
    expect_error(
        directory,
        "train_audio_seqN.npy",
        "all 21 kept train utterances have audio length 0: no valid frame to standardise with "
        "(data.audio_standardize=feature); set data.audio_standardize=frame_feature or none",
        drop_zero_video=False,
    )
    # the other modes do not need a valid frame: padding only, standardised to zero
    data = read(directory, drop_zero_video=False, audio_standardize="frame_feature")
    assert not data.splits["train"].features["A"].any()


def test_class_missing_from_train_is_a_warning(fold, caplog):
    directory, arrays = fold
    labels = arrays["train_label"].copy()
    labels[labels == 5] = 4
    save(directory, "train_label", labels)
    with caplog.at_level(logging.WARNING):
        data = read(directory)
    assert 5 not in data.splits["train"].labels
    assert (
        f"{directory / 'train_label.npy'}: the train split has no utterance of class id(s) 5"
        in caplog.messages
    )


def warnings_of(directory) -> list[str]:
    import logging as logging_

    class Keep(logging_.Handler):
        def __init__(self):
            super().__init__(logging_.WARNING)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    handler = Keep()
    logger = logging_.getLogger("selfcross.data.reader")
    logger.addHandler(handler)
    try:
        read(directory)
    finally:
        logger.removeHandler(handler)
    return handler.messages


def test_clean_fold_gives_no_sanity_warning(fold):
    directory, _ = fold
    assert warnings_of(directory) == []


def test_frames_beyond_the_valid_length_are_counted(fold):
    directory, arrays = fold
    audio, lens = arrays["dev_audio_mfcc"].copy(), arrays["dev_audio_seqN"]
    keep = arrays["dev_video_seqN"] > 0
    short = [i for i in np.flatnonzero(keep) if lens[i] < audio.shape[1]]
    assert len(short) >= 2
    for i in short[:2]:
        audio[i, lens[i] :, 0] = 1.5  # content where the lengths file says padding
    audio[np.flatnonzero(~keep)[0], -1, 0] = 1.5  # a dropped utterance does not count
    save(directory, "dev_audio_mfcc", audio)
    assert warnings_of(directory) == [
        f"{directory / 'dev_audio_seqN.npy'}: 2 of {keep.sum()} utterances of the dev split "
        "hold non-zero frames beyond their valid length in dev_audio_seqN.npy: the model reads "
        "every frame, so the lengths or the padding are wrong"
    ]


def test_zero_length_audio_and_all_padding_text_are_counted(fold):
    directory, arrays = fold
    keep = np.flatnonzero(arrays["test_video_seqN"] > 0)
    lens, audio = arrays["test_audio_seqN"].copy(), arrays["test_audio_mfcc"].copy()
    lens[keep[:3]] = 0
    audio[keep[:3]] = 0
    ids = arrays["test_nlp_trans"].copy()
    ids[keep[3]] = 0
    save(directory, "test_audio_seqN", lens)
    save(directory, "test_audio_mfcc", audio)
    save(directory, "test_nlp_trans", ids)
    assert warnings_of(directory) == [
        f"{directory / 'test_audio_seqN.npy'}: 3 of {len(keep)} utterances of the test split "
        "have zero-length audio (only padding): they are kept, with no evidence in that modality",
        f"{directory / 'test_nlp_trans.npy'}: 1 of {len(keep)} utterances of the test split "
        "have text that is all padding: they are kept, with no evidence in that modality",
    ]


def test_single_class_dev_and_class_missing_from_test_say_what_wa_means(fold):
    directory, arrays = fold
    save(directory, "dev_label", np.full(7, 3))
    test = arrays["test_label"].copy()
    test[test == 6] = 0
    save(directory, "test_label", test)
    assert warnings_of(directory) == [
        f"{directory / 'dev_label.npy'}: the dev split holds only class 3: its WA is that "
        "class's recall, equal to its UWA, so early stopping and the best checkpoint reward "
        "predicting that class",
        f"{directory / 'test_label.npy'}: the test split has no utterance of class id(s) 6: "
        "test WA is the mean recall over the 6 classes present, not over all 7",
    ]
