"""Nothing silently wrong: every data and config rule, its one-line message, and the check CLI.

Each test builds a valid fold with tests/helpers/foldkit.py, corrupts one thing and expects the
exact ``<path>: <problem>`` message (from the reader, or from ``selfcross.check`` as an exit
status).
"""

from __future__ import annotations

import logging
import pickle
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from selfcross import check
from selfcross.config import compose, validate
from selfcross.data import npy
from selfcross.data import validate as checks
from selfcross.data.datasets import dataset
from selfcross.data.fold import ReaderOptions
from selfcross.data.reader import FoldReader
from selfcross.errors import ConfigError, DataError
from tests.conftest import run_cli
from tests.helpers.foldkit import SHAPES, SIZES, VOCAB, make_fold, make_root, shape_overrides

NAMES = ("angry", "excited", "happy", "sad", "frustrated", "surprise", "neutral")
IEMOCAP_CLASS_COUNTS = tuple(dataset("iemocap").class_counts)


@pytest.fixture
def fold(tmp_path):
    directory = tmp_path / "folds" / "fold01"
    return directory, make_fold(directory)


def read(directory, **kw):
    return FoldReader(directory, ReaderOptions(shapes=SHAPES, **kw)).load()


def expect_error(directory, name: str, problem: str, **kw) -> None:
    """Loading the fold fails with exactly ``<directory/name>: <problem>``."""
    with pytest.raises(DataError) as caught:
        read(directory, **kw)
    assert str(caught.value) == f"{directory / name}: {problem}"


def save(directory, name: str, array) -> None:
    np.save(directory / f"{name}.npy", array, allow_pickle=False)


# -- files that cannot be used ----------------------------------------------------------------
def test_missing_fold_directory(tmp_path):
    with pytest.raises(DataError) as caught:
        read(tmp_path / "fold04")
    assert str(caught.value) == f"{tmp_path / 'fold04'}: fold directory is missing"


def test_missing_file(fold):
    directory, _ = fold
    (directory / "test_audio_seqN.npy").unlink()
    expect_error(directory, "test_audio_seqN.npy", "file is missing")


def test_truncated_file(fold):
    directory, _ = fold
    path = directory / "dev_video.npy"
    content = path.read_bytes()
    path.write_bytes(content[:-200])  # a half-copied file: dev video is float32 [7, 4, 3]
    expect_error(
        directory,
        "dev_video.npy",
        "is truncated: its header describes float32 [7, 4, 3] (336 bytes of data) "
        "but it holds 136 bytes",
    )


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "is empty (0 bytes), expected a .npy array"),
        (b"label,0\nlabel,1\n", "is not a .npy file (starts with b'label,')"),
        (b"PK\x03\x04" + b"\0" * 40, "is a zip archive (.npz?), expected a single .npy array"),
        (
            pickle.dumps(np.arange(21)),
            "is a pickle file, expected a .npy array (never unpickled)",
        ),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': '<i8'", "has a corrupt .npy header"),
    ],
    ids=["empty", "csv", "npz", "pickle", "bad-header"],
)
def test_files_that_are_not_npy_arrays(fold, content, problem):
    directory, _ = fold
    (directory / "train_label.npy").write_bytes(content)
    with pytest.raises(DataError) as caught:
        read(directory)
    assert str(caught.value).startswith(f"{directory / 'train_label.npy'}: {problem}")


def test_object_array_is_refused_without_unpickling(fold):
    directory, _ = fold
    labels = np.array([1, "sad", None] * 7, dtype=object)
    np.save(directory / "train_label.npy", labels, allow_pickle=True)
    expect_error(
        directory, "train_label.npy", "holds Python objects, which would need pickle to load"
    )


# -- shapes ------------------------------------------------------------------------------------
def test_files_of_a_split_disagree_on_the_number_of_utterances(fold):
    directory, arrays = fold
    save(directory, "dev_audio_seqN", arrays["dev_audio_seqN"][:-1])
    expect_error(directory, "dev_audio_seqN.npy", "has 6 utterances but dev_label.npy has 7")


@pytest.mark.parametrize(
    "name, make, problem",
    [
        (
            "train_audio_mfcc",
            lambda a: a["train_audio_mfcc"][:, :, 0],
            "expected 3 dimensions, found shape [21, 8]",
        ),
        (
            "train_video",
            lambda a: np.zeros((21, 4, 4), np.float32),
            "feature size 4 does not match the configured data.shapes.V.feat_dim=3",
        ),
        (
            "dev_audio_mfcc",
            lambda a: np.zeros((7, 9, 2), np.float32),
            "sequence length 9 does not match the configured data.shapes.A.seq_len=8",
        ),
        (
            "test_nlp_trans",
            lambda a: a["test_nlp_trans"][:, :, None],
            "expected 2 dimensions, found shape [14, 6, 1]",
        ),
        ("dev_label", lambda a: a["dev_label"][:, None], "expected shape [N], found [7, 1]"),
        (
            "test_video_seqN",
            lambda a: np.ones((14, 2), np.int64),
            "expected shape [N], found [14, 2]",
        ),
        (
            "W_embedding",
            lambda a: a["W_embedding"].ravel(),
            "expected shape [V, D], found [45]",
        ),
        (
            "W_embedding",
            lambda a: a["W_embedding"][:, :4],
            "embedding size 4 does not match the configured data.shapes.T.feat_dim=5",
        ),
        (
            "train_audio_mfcc",
            lambda a: a["train_audio_mfcc"].astype(np.complex64),
            "expected numeric features, found dtype complex64",
        ),
    ],
    ids=[
        "rank",
        "feat-dim",
        "seq-len",
        "ids-rank",
        "label-rank",
        "len-rank",
        "emb-rank",
        "emb-dim",
        "dtype",
    ],
)
def test_wrong_rank_size_or_type(fold, name, make, problem):
    directory, arrays = fold
    save(directory, name, make(arrays))
    expect_error(directory, f"{name}.npy", problem)


def test_splits_must_agree_on_feature_shape_without_configured_shapes(fold):
    directory, arrays = fold
    save(directory, "test_video", np.zeros((14, 4, 4), np.float32))
    with pytest.raises(DataError) as caught:
        FoldReader(directory, ReaderOptions()).load()
    assert str(caught.value) == (
        f"{directory / 'test_video.npy'}: shape [14, 4, 4] does not match train_video.npy "
        "[21, 4, 3] beyond the utterance axis"
    )


def test_dense_text_file_with_the_wrong_shape(fold):
    directory, arrays = fold
    emb = arrays["W_embedding"]
    for split in SIZES:
        save(directory, f"{split}_text", emb[arrays[f"{split}_nlp_trans"]])
    save(directory, "dev_text", emb[arrays["dev_nlp_trans"]][:, :, :4])
    expect_error(
        directory,
        "dev_text.npy",
        "feature size 4 does not match the configured data.shapes.T.feat_dim=5",
        text_source="dense",
    )
    save(directory, "dev_text", emb[arrays["dev_nlp_trans"]][:, :, 0])
    expect_error(
        directory,
        "dev_text.npy",
        "expected 3 dimensions, found shape [7, 6]",
        text_source="dense",
    )


# -- values: labels, token ids, lengths -------------------------------------------------------
@pytest.mark.parametrize(
    "value, dtype, problem",
    [
        (7, np.int64, "class ids must lie in 0..6, found 0..7 (first at utterance 3)"),
        (-1, np.int64, "class ids must lie in 0..6, found -1..6 (first at utterance 3)"),
        (
            2**64 - 1,
            np.uint64,
            "class ids must lie in 0..6, found 0..18446744073709551615 (first at utterance 3)",
        ),
        (2.5, np.float64, "class ids must be whole numbers, found 2.5 (dtype float64) at "
            "utterance 3"),
        (np.nan, np.float32, "class ids must be whole numbers, found nan (dtype float32) at "
            "utterance 3"),
    ],
    ids=["above", "negative", "uint64-overflow", "fraction", "nan"],
)  # fmt: skip
def test_labels_outside_the_classes(fold, value, dtype, problem):
    directory, arrays = fold
    labels = arrays["train_label"].astype(dtype)
    labels[3] = value
    save(directory, "train_label", labels)
    expect_error(directory, "train_label.npy", problem)


def test_text_labels_are_refused(fold):
    directory, arrays = fold
    save(directory, "dev_label", np.array(NAMES)[arrays["dev_label"]])
    expect_error(directory, "dev_label.npy", "expected integer class ids, found dtype <U10")


def test_whole_number_floats_and_narrow_integers_are_read_exactly(fold):
    directory, arrays = fold
    save(directory, "train_label", arrays["train_label"].astype(np.float32))
    save(directory, "train_audio_seqN", arrays["train_audio_seqN"].astype(np.uint8))
    save(directory, "dev_nlp_trans", arrays["dev_nlp_trans"].astype(np.float64))
    data = read(directory, drop_zero_video=False, audio_standardize="none")
    train, dev = data.splits["train"], data.splits["dev"]
    assert train.labels.dtype == np.int64 and train.lengths["A"].dtype == np.int64
    np.testing.assert_array_equal(train.labels, arrays["train_label"])
    np.testing.assert_array_equal(train.lengths["A"], arrays["train_audio_seqN"])
    assert dev.features["T"].dtype == np.int64
    np.testing.assert_array_equal(dev.features["T"], arrays["dev_nlp_trans"])


@pytest.mark.parametrize("value", [VOCAB, -2])
def test_token_ids_outside_the_embedding(fold, value):
    directory, arrays = fold
    ids = arrays["dev_nlp_trans"].astype(np.int16)
    ids[4, 2] = value
    save(directory, "dev_nlp_trans", ids)
    expect_error(
        directory,
        "dev_nlp_trans.npy",
        f"token ids (vocabulary of {VOCAB}) must lie in 0..{VOCAB - 1}, "
        f"found {ids.min()}..{ids.max()} (first at utterance 4)",
    )


@pytest.mark.parametrize(
    "stem, value, bound, modalities",
    [
        ("audio_seqN", 9, "the padded length of test_audio_mfcc.npy", ("T", "V", "A")),
        ("audio_seqN", -1, "the padded length of test_audio_mfcc.npy", ("T", "V", "A")),
        ("video_seqN", 5, "the padded length of test_video.npy", ("T", "V", "A")),
        ("video_seqN", 5, "data.shapes.V.seq_len", ("A",)),  # video unused, lengths still read
    ],
    ids=["audio-above", "audio-negative", "video-above", "video-unused"],
)
def test_lengths_outside_the_padding(fold, stem, value, bound, modalities):
    directory, arrays = fold
    lengths = arrays[f"test_{stem}"].copy()
    lengths[6] = value
    save(directory, f"test_{stem}", lengths)
    pad = SHAPES["A" if stem == "audio_seqN" else "V"]["seq_len"]
    found = f"{lengths.min()}..{lengths.max()}"
    expect_error(
        directory,
        f"test_{stem}.npy",
        f"valid lengths must lie in 0..{pad} ({bound}), found {found} (first at utterance 6)",
        modalities=modalities,
    )


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


# -- the check: collecting problems, summary, exit status ---------------------------------------
def run_check(capsys, *overrides: str) -> tuple[int, str]:
    """``python -m selfcross.check overrides`` in-process: (exit status, stdout + stderr)."""
    with pytest.raises(SystemExit) as caught:
        check.main(list(overrides))
    out = capsys.readouterr()
    return caught.value.code, out.out + out.err


def iemocap(root) -> list[str]:
    return ["data=iemocap", f"data.root={root}", *shape_overrides()]


def test_check_summary_of_valid_folds_matches_numpy(tmp_path, capsys):
    root = tmp_path / "folds"
    arrays = make_root(root)
    a = arrays[2]
    ids = a["train_nlp_trans"].copy()
    ids[:, 4:] = 0  # padding tokens
    ids[1, 2:] = 0
    save(root / "fold02", "train_nlp_trans", ids)

    status, out = run_check(capsys, *iemocap(root))
    assert status == 0, out
    assert out.strip().splitlines()[-1] == "5 of 5 folds valid; 0 problem(s), 0 warning(s)"
    assert f"fold02  {root / 'fold02'}: valid" in out
    # class 1: 3 in train, 1 in dev, 2 in test (ids are n % 7); totals beside the paper's count
    assert "  1 excited                  3       1       2       6    1041" in out
    assert "  dropped (no video)         5       2       3      10" in out

    report = checks.check_root(
        root, ReaderOptions(shapes=SHAPES, text_source="ids"), class_names=NAMES
    )
    assert report.ok and [f.fold for f in report.folds] == [1, 2, 3, 4, 5]
    train = report.folds[1].splits["train"]
    keep = a["train_video_seqN"] > 0
    assert train.n == 21 and train.dropped == int((~keep).sum()) == 5
    assert train.class_counts == np.bincount(a["train_label"], minlength=7).tolist()
    assert train.used_class_counts == np.bincount(a["train_label"][keep], minlength=7).tolist()

    lens = a["train_audio_seqN"][keep]
    frames = np.concatenate(
        [x[:n] for x, n in zip(a["train_audio_mfcc"][keep], lens, strict=True)]
    )
    st = train.features["A"]
    assert (st.utterances, st.length_min, st.length_max) == (16, lens.min(), lens.max())
    assert st.length_mean == pytest.approx(lens.mean())
    assert st.padding == pytest.approx(1 - lens.sum() / (16 * 8))
    assert st.values == frames.size
    assert st.mean == pytest.approx(frames.mean(dtype=np.float64), rel=1e-6)
    assert st.std == pytest.approx(frames.std(dtype=np.float64), rel=1e-6)
    assert (st.min, st.max) == (frames.min(), frames.max())

    vlens = a["train_video_seqN"][keep]
    vframes = np.concatenate([x[:n] for x, n in zip(a["train_video"][keep], vlens, strict=True)])
    sv = train.features["V"]
    assert (sv.length_min, sv.length_max, sv.values) == (vlens.min(), vlens.max(), vframes.size)
    assert sv.std == pytest.approx(vframes.std(dtype=np.float64), rel=1e-6)

    kept_ids = ids[keep]
    vectors = a["W_embedding"][kept_ids[kept_ids != 0]].astype(np.float64)
    tlens = (kept_ids != 0).sum(axis=1)
    tt = train.features["T"]
    assert (tt.length_min, tt.length_max) == (tlens.min(), tlens.max()) == (2, 4)
    assert tt.padding == pytest.approx((kept_ids == 0).mean())
    assert tt.vocab_size == VOCAB and tt.tokens_used == len(np.unique(kept_ids[kept_ids != 0]))
    assert tt.mean == pytest.approx(vectors.mean(), rel=1e-6)
    assert tt.std == pytest.approx(vectors.std(), rel=1e-6)
    assert (tt.min, tt.max) == pytest.approx((vectors.min(), vectors.max()))


def test_check_summary_of_dense_text(fold):
    directory, arrays = fold
    emb = arrays["W_embedding"]
    ids = arrays["dev_nlp_trans"].copy()
    ids[:, 3:] = 0
    save(directory, "dev_nlp_trans", ids)
    for split in SIZES:
        save(directory, f"{split}_text", emb[np.load(directory / f"{split}_nlp_trans.npy")])
    report = checks.check_fold(
        directory, ReaderOptions(shapes=SHAPES, text_source="dense", drop_zero_video=False)
    )
    assert report.ok, report.problems
    dense = report.splits["dev"].features["T"]
    vectors = emb[ids[:, :3]].astype(np.float64)
    assert (dense.length_min, dense.length_max, dense.padding) == (3, 3, 0.5)
    assert dense.mean == pytest.approx(vectors.mean(), rel=1e-6)
    assert dense.vocab_size is None


def test_check_reports_every_problem_and_goes_on(tmp_path, capsys):
    root = tmp_path / "folds"
    arrays = make_root(root, folds=(1, 2, 4, 5))
    labels = arrays[2]["test_label"].copy()
    labels[9] = 11
    save(root / "fold02", "test_label", labels)
    audio = arrays[2]["train_audio_mfcc"].copy()
    audio[8, 0, 0] = np.nan
    save(root / "fold02", "train_audio_mfcc", audio)
    (root / "fold04" / "dev_video.npy").write_bytes(b"")
    status, out = run_check(capsys, *iemocap(root))
    assert status == 2
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert errors == [  # files are opened and checked first, then feature values are read
        f"error: {root / 'fold02' / 'test_label.npy'}: class ids must lie in 0..6, found "
        "0..11 (first at utterance 9)",
        f"error: {root / 'fold02' / 'train_audio_mfcc.npy'}: NaN or infinite feature values in "
        "the train split, first at utterance 8 (set data.on_nonfinite=zero to replace them "
        "with 0)",
        f"error: {root / 'fold03'}: fold directory is missing",
        f"error: {root / 'fold04' / 'dev_video.npy'}: is empty (0 bytes), expected a .npy array",
    ]
    assert f"fold03  {root / 'fold03'}: missing" in out
    assert f"fold05  {root / 'fold05'}: valid" in out
    assert out.strip().splitlines()[-1] == "2 of 5 folds valid; 4 problem(s), 0 warning(s)"
    # fold 2's other splits are still summarised, its bad train audio is not
    section = out[out.index("fold02  ") : out.index("fold03  ")].splitlines()
    rows = [line.split()[:3] for line in section]
    assert ["A", "dev", "5"] in rows and ["A", "test", "11"] in rows
    assert ["A", "train", "16"] not in rows and ["V", "train", "16"] in rows


def test_check_warnings_do_not_fail(tmp_path, capsys):
    root = tmp_path / "folds"
    arrays = make_root(root)
    labels = arrays[1]["train_label"].copy()
    labels[labels == 5] = 0
    save(root / "fold01", "train_label", labels)
    video = arrays[3]["dev_video"].copy()
    video[1, 0, 0] = np.nan
    save(root / "fold03", "dev_video", video)
    status, out = run_check(capsys, *iemocap(root), "data.on_nonfinite=zero")
    assert status == 0, out
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: {root / 'fold01' / 'train_label.npy'}: the train split has no utterance of "
        "class id(s) 5 (surprise)",
        f"warning: {root / 'fold03' / 'dev_video.npy'}: replaced 1 NaN or infinite values with "
        "0 (data.on_nonfinite=zero)",
    ]
    assert out.strip().splitlines()[-1] == "5 of 5 folds valid; 0 problem(s), 2 warning(s)"


def test_check_recognises_iemocap_class_sizes_under_other_names(tmp_path):
    counts = list(IEMOCAP_CLASS_COUNTS)
    counts[2], counts[3] = counts[3], counts[2]  # ids of happy and sad swapped
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(7), counts))
    sizes = {"train": 5989, "dev": 374, "test": 1124}
    directory = tmp_path / "fold01"
    make_fold(directory, sizes=sizes)
    bounds = np.cumsum([0, *sizes.values()])
    for split, lo, hi in zip(sizes, bounds, bounds[1:], strict=False):
        save(directory, f"{split}_label", labels[lo:hi])
    report = checks.check_fold(directory, ReaderOptions(shapes=SHAPES), NAMES, fold=1)
    assert report.ok and report.totals() == counts
    assert report.warnings == [
        f"{directory}: the utterances per class id are IEMOCAP's class sizes for "
        "data.class_names=[angry, excited, sad, happy, frustrated, surprise, neutral], "
        "not the configured [angry, excited, happy, sad, frustrated, surprise, neutral]"
    ]
    swapped = (*NAMES[:2], NAMES[3], NAMES[2], *NAMES[4:])
    assert checks.check_fold(directory, ReaderOptions(shapes=SHAPES), swapped).warnings == []


def test_check_generates_synthetic_folds_first(tmp_path, capsys):
    status, out = run_check(capsys, "data.preset=tiny", f"paths.data_dir={tmp_path}")
    assert status == 0, out
    root = tmp_path / "synthetic" / "tiny"
    assert sorted(p.name for p in root.glob("fold*")) == [f"fold0{k}" for k in range(1, 6)]
    assert "  all                      317      22      61     400    7487" in out


def test_check_of_a_missing_root_is_one_problem(tmp_path):
    report = checks.check_root(tmp_path / "nowhere")
    assert not report.ok and report.folds == []
    assert report.all_problems() == [f"{tmp_path / 'nowhere'}: no such directory"]


def test_check_reads_features_in_bounded_blocks(fold, monkeypatch):
    """The check never holds a whole feature array: every read is one block of rows."""
    directory, _ = fold
    monkeypatch.setattr(npy, "BLOCK_BYTES", 3 * 8 * 2 * 4)  # three audio utterances
    sizes = []
    scan = FoldReader.scan

    def spy(self, path, array, rows, split):
        for idx, block in scan(self, path, array, rows, split):
            sizes.append((path.name, len(idx)))
            yield idx, block

    monkeypatch.setattr(FoldReader, "scan", spy)
    assert checks.check_fold(directory, ReaderOptions(shapes=SHAPES)).ok
    audio = [n for name, n in sizes if name == "train_audio_mfcc.npy"]
    assert max(audio) == 3 and sum(audio) == 16  # the 16 utterances with video
    assert max(n for _, n in sizes) == 4  # video rows are 4 x 3 floats: 4 per block


# -- configuration errors -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model=foo"],
            "error: model=foo: no such option; choose one of cross, cross_nosp, cross_self, "
            "cross_self_transformer, cross_transformer, self, self_nosp, self_transformer",
        ),
        (["modality=TX"],
            "error: modality=TX: no such option; choose one of A, T, TA, TV, TVA, V, VA"),
        (
            ["model=cross", "modality=A"],
            "error: a cross model needs at least two modalities, got A: cross-attention relates "
            "one modality to another",
        ),
        (["fold=6"], "error: fold=6: folds are numbered 1..5"),
        (["fold=0"], "error: fold=0: folds are numbered 1..5"),
        (
            ["data=iemocap"],
            "error: data.root is not set: point it at the folder holding fold01 .. fold05 "
            "(data.root=/path/to/folds)",
        ),
        (["data=iemocap", "data.root=/no/such/dir"],
            "error: data.root=/no/such/dir: no such directory"),
        (["data.preset=huge"], "error: data.preset=huge: expected one of paper, small, tiny"),
        (["data.nope=1"],
            "error: Could not override 'data.nope'. To append to your config use +data.nope=1"),
    ],
    ids=["model", "modality", "cross-one", "fold-6", "fold-0", "no-root", "bad-root", "preset",
         "key"],
)  # fmt: skip
def test_config_errors_are_one_line(capsys, overrides, message):
    status, out = run_check(capsys, *overrides)
    assert status == 2
    assert out.strip().splitlines() == [message]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.max_epochs=0"], "trainer.max_epochs=0: must be at least 1"),
        (["trainer.max_epochs=-3"], "trainer.max_epochs=-3: must be at least 1"),
        (["modality.modalities=[T,T]"], "modality.modalities=[T, T]: a modality is listed twice"),
        (["modality=TA", "modality.modalities=[A,T]"],
            "modality.modalities=[A, T]: list them in the paper's order, [T, A]"),
        (["modality.modalities=[T,V]"],
            "modality.modalities=[T, V] does not match modality.name=TVA: choose modality=TV "
            "instead of overriding the list"),
        (["modality.modalities=[T,X]"], "modality.modalities=[T, X]: choose a non-empty subset "
            "of T, V, A"),
        (["seed=-1"], "seed=-1: must be 0..4294967295"),
        (["seed=4294967296"], "seed=4294967296: must be 0..4294967295"),
        (["data.batch_size=0"], "data.batch_size=0: must be at least 1"),
        (["model.network.hidden=0"], "model.network.hidden=0: must be at least 1"),
        (["model.network.num_heads=7"],
            "model.network.num_heads=7 does not divide the attention width 2 * "
            "model.network.hidden = 120"),
    ],
)  # fmt: skip
def test_run_settings_are_refused_before_data_is_read(make_cfg, overrides, message):
    cfg = make_cfg(*overrides, "data=iemocap", "data.root=/no/such/dir")
    with pytest.raises(ConfigError) as caught:  # raised before data.root is even looked at
        validate(cfg)
    assert str(caught.value) == message


def test_edge_run_settings_are_accepted(make_cfg):
    validate(make_cfg("seed=0", "trainer.max_epochs=1", "data.batch_size=1",
                      "model.network.num_heads=4", "model.network.hidden=2"))  # fmt: skip
    validate(make_cfg("seed=4294967295", "modality=TA"))


def test_validate_rejects_bad_folds_and_missing_root(make_cfg):
    for fold in (0, 6):
        with pytest.raises(ConfigError, match=rf"^fold={fold}: folds are numbered 1..5$"):
            validate(make_cfg(f"fold={fold}"))
    with pytest.raises(ConfigError, match="^data.root is not set"):
        validate(make_cfg("data=iemocap"))
    validate(make_cfg("data=iemocap"), need_data=False)  # model summaries need no data


def test_full_error_keeps_the_exception(monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError, match="^model=foo: no such option"):
        check.main(["model=foo"])


def test_summary_gets_the_same_one_line_error(capsys):
    from selfcross import summary

    with pytest.raises(SystemExit) as caught:
        summary.main(["modality=TVX"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: modality=TVX: no such option; choose one of A, T, TA, TV, TVA, V, VA"
    )


def test_compose_names_an_unparsable_override():
    with pytest.raises(ConfigError, match=r"^cannot parse 'fold=1=2': mismatched input"):
        compose(["fold=1=2"])


def test_run_reports_an_unknown_model_with_hydras_list_of_options(monkeypatch, capsys):
    """selfcross.run keeps Hydra's own message: it names the option and lists the choices."""
    from selfcross import run

    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.setattr(sys, "argv", ["selfcross.run", "model=foo"])
    with pytest.raises(SystemExit) as caught:
        run.main()
    err = capsys.readouterr().err
    assert caught.value.code == 1
    assert "Could not find 'model/foo'" in err
    assert "Available options in 'model':\n\tcross\n\tcross_nosp\n\tcross_self\n" in err
    assert "Traceback" not in err


def test_check_cli_exit_status_and_no_traceback(tmp_path):
    root = tmp_path / "folds"
    make_root(root, folds=(1, 2, 3, 4, 5))
    (root / "fold05" / "W_embedding.npy").write_bytes(b"not an array")
    proc = run_cli("selfcross.check", *iemocap(root))
    assert proc.returncode == 2, proc.stderr
    assert (
        f"error: {root / 'fold05' / 'W_embedding.npy'}: is not a .npy file "
        "(starts with b'not an')" in proc.stdout.splitlines()
    )
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "4 of 5 folds valid; 1 problem(s), 0 warning(s)"


# -- a root's manifest (dataset.json) -----------------------------------------------------------
def write_folds_manifest(root, n_folds: int, shapes=SHAPES, names=NAMES):
    from selfcross.manifest import FoldsManifest, write_manifest

    dims = {m: {"seq_len": s["seq_len"], "feat_dim": s["feat_dim"]} for m, s in shapes.items()}
    return write_manifest(root, FoldsManifest("iemocap", n_folds, names, dims, "random"))


def test_manifest_round_trip_and_one_line_errors(tmp_path):
    """What is written is read back; a file that is not a manifest, or one of a newer schema,
    is one DataError naming it."""
    import json

    from selfcross.manifest import SCHEMA_VERSION, FoldsManifest, read_manifest

    assert read_manifest(tmp_path) is None  # a root without one
    path = write_folds_manifest(tmp_path, 3)
    assert path == tmp_path / "dataset.json"
    manifest = read_manifest(tmp_path)
    assert manifest == FoldsManifest(
        "iemocap", 3, NAMES, {m: {"seq_len": s["seq_len"], "feat_dim": s["feat_dim"]}
                              for m, s in SHAPES.items()}, "random"
    )  # fmt: skip
    assert (
        manifest.schema_version == SCHEMA_VERSION == json.loads(path.read_text())["schema_version"]
    )
    for text, problem in (
        ('{"dataset": "iemocap", "n_folds": 3', "is not a readable manifest (Expecting"),
        ("[1, 2]", "is not a manifest (expected a JSON object)"),
        ('{"schema_version": 1, "dataset": "x"}', "is not a manifest: no n_folds"),
    ):
        path.write_text(text)
        with pytest.raises(DataError) as caught:
            read_manifest(tmp_path)
        assert str(caught.value).startswith(f"{path}: {problem}"), str(caught.value)
        assert "\n" not in str(caught.value)
    newer = {**manifest.to_json(), "schema_version": SCHEMA_VERSION + 1}
    path.write_text(json.dumps(newer))
    with pytest.raises(DataError) as caught:
        read_manifest(tmp_path)
    assert str(caught.value) == (
        f"{path}: schema_version {SCHEMA_VERSION + 1} is newer than this selfcross reads "
        f"({SCHEMA_VERSION}): update selfcross"
    )
    bad = {**manifest.to_json(), "n_folds": 0}
    path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="n_folds=0: expected an integer >= 1"):
        read_manifest(tmp_path)


def test_a_root_whose_manifest_says_three_folds(tmp_path, capsys):
    """fold=4 is refused in one line naming the manifest; selfcross.check walks 3 folds."""
    root = tmp_path / "folds"
    make_root(root, folds=(1, 2, 3))
    path = write_folds_manifest(root, 3)
    validate(compose([*iemocap(root), "fold=3"]))
    with pytest.raises(ConfigError) as caught:
        validate(compose([*iemocap(root), "fold=4"]))
    assert str(caught.value) == f"fold=4: folds are numbered 1..3 ({path})"
    status, out = run_check(capsys, *iemocap(root))
    assert status == 0, out
    assert out.strip().splitlines()[-1] == "3 of 3 folds valid; 0 problem(s), 0 warning(s)"
    assert "fold04" not in out


def test_a_root_without_a_manifest_is_checked_as_before(tmp_path, capsys):
    """No dataset.json: data.n_folds (5 for IEMOCAP) decides, as before manifests existed."""
    root = tmp_path / "folds"
    make_root(root, folds=(1, 2, 3))
    validate(compose([*iemocap(root), "fold=5"]))
    status, out = run_check(capsys, *iemocap(root))
    assert status == 2
    assert f"error: {root / 'fold04'}: fold directory is missing" in out
    assert out.strip().splitlines()[-1] == "3 of 5 folds valid; 2 problem(s), 0 warning(s)"


def test_shapes_are_read_from_the_manifest_and_class_names_held_to_it(tmp_path):
    """data.shapes left at IEMOCAP's defaults: validation sizes the model from the manifest's
    shapes, the Conv1d's output length scaled with the sequence length (conv_out_for)."""
    root = tmp_path / "folds"
    make_root(root, folds=(1,))
    write_folds_manifest(root, 1)
    cfg = compose(["data=iemocap", f"data.root={root}"])
    validate(cfg)
    assert OmegaConf.to_container(cfg.data.shapes) == {
        "T": {"seq_len": 6, "feat_dim": 5, "conv_out": None},
        "V": {"seq_len": 4, "feat_dim": 3, "conv_out": 3},  # 25 * 4 / 32 = 3.1
        "A": {"seq_len": 8, "feat_dim": 2, "conv_out": 4},  # 500 * 8 / 1000
    }
    renamed = "data.class_names=[a,excited,happy,sad,frustrated,surprise,neutral]"
    with pytest.raises(ConfigError, match=r"^data.class_names=\[a, excited, .*\], but the folds"):
        validate(compose([*iemocap(root), renamed]))


def test_a_corrupt_manifest_is_one_line_from_the_check_cli(tmp_path):
    root = tmp_path / "folds"
    make_root(root, folds=(1,))
    (root / "dataset.json").write_text("{not json")
    proc = run_cli("selfcross.check", *iemocap(root))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {root / 'dataset.json'}: is not a readable manifest (Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1))"
    ]
