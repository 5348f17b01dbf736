"""What the fake IEMOCAP and MELD releases share (preparekit.py, meldkit.py): the GloVe file,
the options of a fast preparation and the fold shapes they give, and running a preparation the
way the tests do (quietly, or to its one-line error, or on a copy of a release to break)."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from selfcross.prepare.__main__ import main

GLOVE_DIM = 8
VIDEO_FPS = 10
AUDIO_CONV_OUT = 30


def write_glove(path: Path, tokens, dim: int = GLOVE_DIM, seed: int = 0) -> dict[str, np.ndarray]:
    """A GloVe text file of ``tokens`` in turn; returns its vectors by token."""
    rng = np.random.default_rng(seed)
    vectors = {token: np.round(rng.normal(size=dim), 5).astype(np.float32) for token in tokens}
    path.write_text(
        "".join(" ".join([t, *(f"{x:.5f}" for x in v)]) + "\n" for t, v in vectors.items())
    )
    return vectors


def fast_options(raw: Path, glove: Path, out: Path, audio_frames: int) -> list[str]:
    """The options of a fast preparation (small shapes, one process, a random ResNet)."""
    return [
        f"raw={raw}",
        f"glove={glove}",
        f"out={out}",
        "jobs=1",
        "progress=false",
        f"text.dim={GLOVE_DIM}",
        "text.max_tokens=10",
        f"audio.max_frames={audio_frames}",
        "vision.random_weights=true",
        "vision.crop=32",
        "vision.max_frames=4",
        "vision.batch_size=64",
        "vision.cpu_threads=1",
    ]


def fold_shapes(audio_frames: int) -> dict[str, dict]:
    """data.shapes of the folds fast_options(..., audio_frames) writes."""
    return {
        "T": {"seq_len": 10, "feat_dim": GLOVE_DIM, "conv_out": None},
        "V": {"seq_len": 4, "feat_dim": 2048, "conv_out": 3},
        "A": {"seq_len": audio_frames, "feat_dim": 120, "conv_out": AUDIO_CONV_OUT},
    }


def prepare_quietly(args: list[str]):
    """python -m selfcross.prepare's main(args), its stdout captured: (summary, printed text)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        summary = main(args)
    return summary, out.getvalue()


def run_error(args: list[str], capsys) -> str:
    """The one-line error a preparation that must fail ends with (exit status 2, no trace)."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and "Traceback" not in "\n".join(err)
    return err[-1]


def copy_release(root: Path, glove: Path, into: Path) -> Path:
    """A copy of a fake release (its GloVe file beside it) under ``into``, to break in one test;
    returns the copied release folder."""
    shutil.copytree(root, into / root.name)
    shutil.copy(glove, into / glove.name)
    return into / root.name
