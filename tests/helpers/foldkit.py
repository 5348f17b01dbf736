"""Hand-made folds in the processed format, with every array kept for comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHAPES = {
    "T": {"seq_len": 6, "feat_dim": 5, "conv_out": None},
    "V": {"seq_len": 4, "feat_dim": 3, "conv_out": 2},
    "A": {"seq_len": 8, "feat_dim": 2, "conv_out": 4},
}
SIZES = {"train": 21, "dev": 7, "test": 14}
VOCAB = 9


def make_fold(directory: Path, seed: int = 0, sizes=SIZES, shapes=SHAPES) -> dict:
    """Write one fold; return {"<split>_<stem>": array, "W_embedding": array}."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for split, n in sizes.items():
        a, v, t = shapes["A"], shapes["V"], shapes["T"]
        a_len = rng.integers(1, a["seq_len"] + 1, n)
        audio = rng.normal(3.0, 2.0, (n, a["seq_len"], a["feat_dim"])).astype(np.float32)
        audio *= (np.arange(a["seq_len"])[None, :] < a_len[:, None])[..., None]
        v_len = rng.integers(1, v["seq_len"] + 1, n)
        v_len[::5] = 0  # every fifth utterance has no video
        video = rng.normal(0, 1, (n, v["seq_len"], v["feat_dim"])).astype(np.float32)
        video *= (np.arange(v["seq_len"])[None, :] < v_len[:, None])[..., None]
        ids = rng.integers(1, VOCAB, (n, t["seq_len"]))
        labels = np.arange(n) % 7
        arrays.update(
            {
                f"{split}_audio_mfcc": audio,
                f"{split}_audio_seqN": a_len,
                f"{split}_audio_prosody": rng.normal(size=(n, 35)).astype(np.float32),
                f"{split}_video": video,
                f"{split}_video_seqN": v_len,
                f"{split}_nlp_trans": ids,
                f"{split}_label": labels,
            }
        )
    emb = rng.normal(size=(VOCAB, shapes["T"]["feat_dim"])).astype(np.float32)
    emb[0] = 0
    arrays["W_embedding"] = emb
    for name, array in arrays.items():
        np.save(directory / f"{name}.npy", array, allow_pickle=False)
    return arrays


def shape_overrides(shapes=SHAPES) -> list[str]:
    """Hydra overrides that set data.shapes to the shapes of make_fold's files."""
    return [
        f"data.shapes.{m}.{key}={'null' if value is None else value}"
        for m, dims in shapes.items()
        for key, value in dims.items()
    ]


def make_root(root: Path, folds=(1, 2, 3, 4, 5), **kw) -> dict[int, dict]:
    """make_fold for each fold under ``root`` (fold k uses seed k); returns arrays per fold."""
    return {k: make_fold(root / f"fold{k:02d}", seed=k, **kw) for k in folds}


def edit_keeping_size_and_mtime(path, change) -> None:
    """A same-size edit of ``path`` whose modification time is put back (as ``cp -p`` or
    ``rsync -t`` would leave it)."""
    import os

    st = path.stat()
    array = np.load(path)
    change(array)
    np.save(path, array)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def flip_first_label(labels) -> None:
    labels[0] = (labels[0] + 1) % 7
