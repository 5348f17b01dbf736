"""Cross-corpus evaluation (selfcross.evaluate): the declared class maps, masking the run's
classes without a partner, leaving out the data's, refusing other features or shapes, and the
typed cross_corpus-*.json file, on hand-made logits and on synthetic IEMOCAP- and MELD-like
folds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from selfcross.analysis.crosscorpus import load_class_map, score_shared
from selfcross.analysis.records import NewerSchema, read_cross_corpus
from selfcross.errors import ConfigError
from tests.conftest import run_cli
from tests.helpers.modelkit import train_tiny_run

IEMOCAP = ("angry", "excited", "happy", "sad", "frustrated", "surprise", "neutral")
MELD = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
PARTNER = {"angry": "anger", "excited": "joy", "happy": "joy", "sad": "sadness",
           "neutral": "neutral", "surprise": "surprise"}  # fmt: skip


def test_the_declared_map_pairs_each_iemocap_class_with_its_meld_partner():
    """A logit peaked on each IEMOCAP class, scored against its MELD partner's label, is right
    every time; a swapped pair in conf/class_map/iemocap_meld.yaml makes some of them wrong."""
    cmap = load_class_map("iemocap_meld")
    sources = list(PARTNER)
    logits = np.full((len(sources), 7), -5.0)
    for i, name in enumerate(sources):
        logits[i, IEMOCAP.index(name)] = 5.0
    labels = np.array([MELD.index(PARTNER[n]) for n in sources])
    scores = score_shared(logits, labels, cmap, IEMOCAP, MELD)
    assert scores.uwa == 1.0 and scores.wa == 1.0 and scores.masked_argmax == 0
    assert list(cmap.shared) == ["angry", "happy", "sad", "neutral", "surprise"]
    assert np.diag(scores.confusion).tolist() == [1, 2, 1, 1, 1]  # excited and happy: joy
    # the same utterances labelled with another MELD class are all wrong
    shifted = np.array([MELD.index({"anger": "sadness"}.get(PARTNER[n], "anger"))
                        for n in sources])  # fmt: skip
    assert score_shared(logits, shifted, cmap, IEMOCAP, MELD).uwa < 0.5


def test_the_reverse_map_is_the_same_pairs_the_other_way_round():
    forward, reverse = load_class_map("iemocap_meld"), load_class_map("meld_iemocap")
    assert (reverse.source, reverse.target) == ("meld", "iemocap")
    assert reverse.shared == {k: (t, s) for k, (s, t) in forward.shared.items()}
    logits = np.full((3, 7), -1.0)
    logits[0, MELD.index("joy")] = 3.0
    logits[1, MELD.index("anger")] = 3.0
    logits[2, MELD.index("sadness")] = 3.0
    labels = np.array([IEMOCAP.index(n) for n in ("excited", "angry", "neutral")])
    scores = score_shared(logits, labels, reverse, MELD, IEMOCAP)
    assert scores.confusion.tolist() == [
        [1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]
    ]  # fmt: skip
    assert scores.uwa == pytest.approx(2 / 3)


def test_unpartnered_logits_are_masked_and_unpartnered_labels_left_out():
    """frustrated has no MELD partner: its logit never wins, and each utterance whose unmasked
    arg-max it was is counted; MELD's disgust and fear utterances are left out and counted."""
    cmap = load_class_map("iemocap_meld")
    logits = np.zeros((5, 7))
    logits[:, IEMOCAP.index("frustrated")] = 9.0  # the unmasked winner everywhere
    logits[:, IEMOCAP.index("sad")] = [1, 1, 1, 1, 1]
    logits[0, IEMOCAP.index("angry")] = 2.0  # utterance 0: angry is the best partnered class
    labels = np.array([MELD.index(n) for n in ("anger", "sadness", "disgust", "fear", "fear")])
    scores = score_shared(logits, labels, cmap, IEMOCAP, MELD)
    assert scores.left_out == {"disgust": 1, "fear": 2}
    assert scores.n_utterances == 2 and scores.masked_argmax == 2
    assert scores.uwa == 1.0  # angry -> anger, sad -> sadness once frustrated is masked
    assert scores.recall == {"angry": 1.0, "happy": None, "sad": 1.0, "neutral": None,
                             "surprise": None}  # fmt: skip


def test_a_map_of_the_other_direction_is_refused_by_name():
    with pytest.raises(ConfigError, match="shared class 'angry' has none of its source"):
        score_shared(np.zeros((1, 7)), np.zeros(1, int), load_class_map("iemocap_meld"),
                     MELD, IEMOCAP)  # fmt: skip
    with pytest.raises(ConfigError, match="class_map=nope: no such map; choose one of "
                       "iemocap_meld, meld_iemocap"):  # fmt: skip
        load_class_map("nope")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir) -> Path:
    """One tiny tri-modal Cross run on the IEMOCAP-like synthetic folds (2 epochs)."""
    tmp = tmp_path_factory.mktemp("crosscorpus")
    return train_tiny_run(tmp, tmp / "run", data_dir, "model=cross", "modality=TVA")


def test_evaluate_writes_the_scores_over_the_shared_classes(trained_run, data_dir):
    """On the MELD-like synthetic test split: the utterances of MELD's five partnered classes
    are scored, disgust and fear left out with their counts, frustrated masked; the file reads
    back as written and a newer schema is refused."""
    done = run_cli("selfcross.evaluate", str(trained_run), "data=synthetic_meld",
                   "data.preset=tiny", f"paths.data_dir={data_dir}",
                   "class_map=iemocap_meld")  # fmt: skip
    assert done.returncode == 0, done.stderr
    path = trained_run / "cross_corpus-iemocap_meld-synthetic-meld-tiny.json"
    assert f"wrote {path}" in done.stdout
    record = read_cross_corpus(path)
    labels = np.load(data_dir / "synthetic-meld" / "tiny" / "fold01" / "test_label.npy")
    counts = {n: int((labels == i).sum()) for i, n in enumerate(MELD)}
    assert record.left_out == {"disgust": counts["disgust"], "fear": counts["fear"]}
    assert record.n_utterances == len(labels) - counts["disgust"] - counts["fear"]
    assert record.masked == ["frustrated"]
    confusion = np.array(record.confusion)
    assert confusion.sum(axis=1).tolist() == [
        counts[PARTNER[n]] for n in ("angry", "happy", "sad", "neutral", "surprise")
    ]
    assert record.uwa == pytest.approx(np.trace(confusion) / confusion.sum())
    assert (record.target["label"], record.class_map) == ("synthetic-meld-tiny", "iemocap_meld")
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == 1
    path.write_text(json.dumps({**raw, "schema_version": 2}))
    with pytest.raises(NewerSchema):
        read_cross_corpus(path)


def test_evaluate_refuses_other_shapes_features_and_direction(trained_run, data_dir, tmp_path):
    """Each refusal is one line with a non-zero exit status: the small preset's shapes, a root
    whose manifest names another feature set, the reverse map on an IEMOCAP run."""
    small = run_cli("selfcross.evaluate", str(trained_run), "data=synthetic_meld",
                    "data.preset=small", f"paths.data_dir={tmp_path}",
                    "class_map=iemocap_meld")  # fmt: skip
    assert small.returncode != 0
    assert "but the run was trained on [8, 16]" in small.stderr.strip().splitlines()[-1]
    root = tmp_path / "other"
    shutil.copytree(data_dir / "synthetic-meld" / "tiny", root)
    manifest = json.loads((root / "dataset.json").read_text())
    manifest["features"]["set"] = {"A": {"encoder": "wavlm-base-plus", "weights": "ab" * 32}}
    (root / "dataset.json").write_text(json.dumps(manifest))
    other = run_cli("selfcross.evaluate", str(trained_run), "data=meld", f"data.root={root}",
                    "data.shapes.T.seq_len=8", "data.shapes.T.feat_dim=16",
                    "data.shapes.V.seq_len=5", "data.shapes.V.feat_dim=24",
                    "data.shapes.A.seq_len=12", "data.shapes.A.feat_dim=20",
                    "class_map=iemocap_meld")  # fmt: skip
    assert other.returncode != 0
    assert "cross-corpus scoring needs the same features" in other.stderr
    assert "A=wavlm-base-plus@abababab" in other.stderr
    reverse = run_cli("selfcross.evaluate", str(trained_run), "data=synthetic_meld",
                      "data.preset=tiny", f"paths.data_dir={data_dir}",
                      "class_map=meld_iemocap")  # fmt: skip
    assert reverse.returncode == 2
    assert "class_map=meld_iemocap: the shared class 'angry' has none" in reverse.stderr


def test_the_target_is_standardised_with_the_runs_own_train_statistics(
    trained_run, data_dir, tmp_path, monkeypatch
):
    """Through a map of every class onto itself, the run scored on fold 2 (another train split,
    other statistics) gives exactly what selfcross.predict gives there, which standardises with
    the run's own train statistics (inputs.json); and on its own fold its recorded test result."""
    from selfcross.analysis import crosscorpus
    from selfcross.analysis.inputs import open_model
    from selfcross.analysis.predict import fold_predictions
    from selfcross.training.record import read_record

    maps = tmp_path / "maps"
    maps.mkdir()
    shared = "\n".join(f"  {c}: {{source: [{c}], target: [{c}]}}" for c in IEMOCAP)
    (maps / "same.yaml").write_text(f"source: iemocap\ntarget: iemocap\nshared:\n{shared}\n")
    monkeypatch.setattr(crosscorpus, "CLASS_MAP_DIR", maps)
    data = ["data.preset=tiny", f"paths.data_dir={data_dir}"]
    own, _ = crosscorpus.evaluate_run(trained_run, data, "same")
    record = read_record(trained_run / "result.json")
    assert own.confusion == record.confusion and own.uwa == pytest.approx(record.test_uwa)
    from selfcross.analysis import predict

    seen = []
    real = predict.network_logits
    monkeypatch.setattr(predict, "network_logits", lambda *a: seen.append(real(*a)) or seen[-1])
    other, path = crosscorpus.evaluate_run(trained_run, [*data, "fold=2"], "same")
    assert path.name == "cross_corpus-same-synthetic-tiny-fold2.json"
    expected = fold_predictions(open_model(trained_run), data_dir / "synthetic/tiny/fold02",
                                "test")  # fmt: skip
    np.testing.assert_allclose(seen[0], expected.logits, rtol=1e-5, atol=1e-6)
    confusion = np.zeros((7, 7), dtype=int)
    np.add.at(confusion, (expected.labels, expected.logits.argmax(axis=1)), 1)
    assert other.confusion == confusion.tolist()
