"""The synthetic generator's presets for Table 5's demo: session-split folds with speaker ids
(no test speaker in train or dev), a MELD-like class set showing its IEMOCAP partners'
evidence, and the earlier presets' identity untouched (their digest, hence their cached folds)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace

import numpy as np
import pytest

from selfcross.config import compose
from selfcross.data import synthetic
from selfcross.data.npy import SPLITS
from selfcross.data.synthetic import FORMAT_VERSION, SyntheticSpec, ensure_synthetic
from tests.helpers.synthkit import IEMOCAP_CLASS_COUNTS, SHAPES, SPEC

MELD_COUNTS = [1607, 361, 358, 2308, 6436, 1002, 1636]
MELD_LATENT = (0, 4, 1, 2, 6, 3, 5)


def test_earlier_presets_keep_their_digest():
    """The digest of a spec without the new fields is the one FORMAT_VERSION 1 computed (the
    new fields left out), so existing roots are not regenerated; setting one changes it."""
    fields = asdict(SPEC)
    del fields["latent_of"], fields["split"]
    payload = json.dumps({"format": FORMAT_VERSION, **fields}, sort_keys=True)
    assert SPEC.digest() == hashlib.sha256(payload.encode()).hexdigest()[:16]
    assert replace(SPEC, split="session").digest() != SPEC.digest()


def test_session_folds_hold_out_one_session_and_share_no_speaker(tmp_path):
    spec = replace(SPEC, split="session")
    root = ensure_synthetic(tmp_path, [1, 3], spec, class_names=[str(c) for c in range(7)],
                            n_folds=5)  # fmt: skip
    for fold in (1, 3):
        ids = json.loads((root / f"fold0{fold}" / "manifest.json").read_text())
        assert ids["split"] == "session"
        speakers = {s: {u.split("_")[0] for u in ids[s]} for s in SPLITS}
        assert speakers["test"] == {f"Ses0{fold}F", f"Ses0{fold}M"}
        assert not speakers["test"] & (speakers["train"] | speakers["dev"])
        for split in SPLITS:
            labels = np.load(root / f"fold0{fold}" / f"{split}_label.npy")
            assert len(labels) == len(ids[split])
    every = sum(len(ids[s]) for s in SPLITS)
    assert every == SPEC.n_utterances
    assert json.loads((root / "dataset.json").read_text())["split"] == "session"


def test_a_session_run_records_its_scheme(tmp_path):
    from hydra.utils import instantiate

    cfg = compose([f"paths.data_dir={tmp_path}", "data=synthetic_session", "data.preset=tiny",
                   "logger=none"])  # fmt: skip
    datamodule = instantiate(cfg.data, cache_dir=None)
    assert datamodule.scheme() == {"split": "session", "seed": 0, "class_set": None}


def test_the_meld_like_preset_shows_each_class_as_its_iemocap_partner(tmp_path, monkeypatch):
    """Its labels are MELD's ids in MELD's proportions, and each utterance's features are drawn
    for its partner class of the generator (MELD's joy as IEMOCAP's happy, ...): the classes
    the generator is asked for are ``latent_of`` of the labels written."""
    asked = []
    real = synthetic._generate_block

    def spy(spec, signal, labels, block):
        asked.append(np.array(labels))
        return real(spec, signal, labels, block)

    monkeypatch.setattr(synthetic, "_generate_block", spy)
    meld = SyntheticSpec(MELD_COUNTS, n_utterances=400, shapes=SHAPES, vocab_size=60,
                         latent_of=MELD_LATENT)  # fmt: skip
    root = ensure_synthetic(tmp_path / "meld", [1], meld)
    written = synthetic._labels(meld)
    np.testing.assert_array_equal(np.concatenate(asked), np.asarray(MELD_LATENT)[written])
    labels = np.concatenate([np.load(root / "fold01" / f"{s}_label.npy") for s in SPLITS])
    assert sorted(labels.tolist()) == sorted(written.tolist())
    expected = np.round(np.asarray(MELD_COUNTS) / sum(MELD_COUNTS) * 400)
    assert np.abs(np.bincount(labels, minlength=7) - expected).max() <= 1
    cfg = compose(["data=synthetic_meld"])
    assert tuple(cfg.data.synthetic.latent_of) == MELD_LATENT
    names = list(cfg.data.class_names)
    iemocap = list(compose([]).data.class_names)
    partner = {"anger": "angry", "joy": "happy", "sadness": "sad", "neutral": "neutral",
               "surprise": "surprise"}  # fmt: skip
    for meld_name, iemocap_name in partner.items():
        assert MELD_LATENT[names.index(meld_name)] == iemocap.index(iemocap_name)
    with pytest.raises(ValueError, match="latent_of=\\[0, 0"):
        SyntheticSpec(IEMOCAP_CLASS_COUNTS, latent_of=(0, 0, 1, 2, 3, 4, 5))
