"""``selfcross.check``: the summary of valid folds, every problem collected before the exit
status, warnings that do not fail, bounded reads, and a root's manifest (dataset.json) with its
one-line errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from selfcross.config import compose, validate
from selfcross.data import npy
from selfcross.data import validate as checks
from selfcross.data.datasets import dataset
from selfcross.data.fold import ReaderOptions
from selfcross.data.reader import FoldReader
from selfcross.errors import ConfigError, DataError
from tests.conftest import run_cli
from tests.helpers.checkkit import NAMES, iemocap, run_check, save
from tests.helpers.foldkit import SHAPES, SIZES, VOCAB, make_fold, make_root

IEMOCAP_CLASS_COUNTS = tuple(dataset("iemocap").class_counts)


# -- the check: collecting problems, summary, exit status ---------------------------------------


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
