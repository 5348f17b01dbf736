"""Files the fold reader cannot use, each refused in one line naming the file and the problem:
missing or truncated files, files that are not npy arrays, object arrays (never unpickled),
shapes that disagree, labels, token ids and lengths outside their range.

Each test builds a valid fold with tests/helpers/foldkit.py, corrupts one thing and expects the
exact ``<path>: <problem>`` message.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from selfcross.data.fold import ReaderOptions
from selfcross.data.reader import FoldReader
from selfcross.errors import DataError
from tests.helpers.checkkit import NAMES, expect_error, read, save
from tests.helpers.foldkit import SHAPES, SIZES, VOCAB


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
