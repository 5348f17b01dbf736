"""selfcross.prepare's errors on the fake IEMOCAP release: bad arguments, a missing raw folder,
unreadable wavs and videos, unknown labels and wrong weights, each one line naming the file.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import run_cli
from tests.helpers.preparekit import overrides
from tests.helpers.releasekit import copy_release, run_error


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, message",
    [
        ({"raw": "/no/such/release"}, "error: /no/such/release: no such directory"),
        ({"sessions": "[1,2,3]"}, "Session3: session folder is missing"),
        ({"text.dim": "300"}, "glove.txt: holds 8-dimensional vectors, expected 300"),
        ({"vision.random_weights": "false"}, "error: vision.weights is not set"),
        ({"glove": "/no/glove.txt"}, "error: /no/glove.txt: GloVe file is missing"),
        ({"split": "fancy"}, "error: split=fancy: expected one of random, session"),
        ({"nosuchkey": "1"}, "error: Could not override 'nosuchkey'"),
    ],
)
def test_bad_arguments_are_one_line_errors(release, tmp_path, capsys, change, message):
    args = [a for a in overrides(release, tmp_path / "o") if a.split("=")[0] not in change]
    args += [f"{k}={v}" for k, v in change.items()]
    assert message in run_error(args, capsys)
    assert not (tmp_path / "o" / "fold01").exists()


def test_missing_raw_is_a_one_line_error(capsys):
    line = run_error(["glove=x", "out=y", "vision.random_weights=true"], capsys)
    assert line.startswith("error: raw is not set: point it at IEMOCAP_full_release")


@pytest.fixture
def broken_copy(release, tmp_path):
    """A copy of the fake release (GloVe file included) to break in one test."""
    return copy_release(release.root, release.glove, tmp_path / "copy")


def test_unreadable_wav_is_named(release, broken_copy, tmp_path, capsys):
    wav = broken_copy / "Session2/sentences/wav/Ses02F_impro02/Ses02F_impro02_M001.wav"
    wav.write_bytes(b"RIFF not really a wave file")
    args = overrides(release, tmp_path / "o", f"raw={broken_copy}")
    assert f"error: {wav}: cannot be read as audio" in run_error(args, capsys)


def test_unreadable_video_is_named(release, broken_copy, tmp_path, capsys):
    video = broken_copy / "Session1/dialog/avi/DivX/Ses01F_impro01.avi"
    video.write_bytes(b"\x00" * 1000)
    args = overrides(release, tmp_path / "o", f"raw={broken_copy}")
    assert f"error: {video}: cannot be opened as video" in run_error(args, capsys)


def test_unknown_label_is_named(release, broken_copy, tmp_path, capsys):
    labels = broken_copy / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    labels.write_text(labels.read_text().replace("\tsur\t", "\tbored\t"))
    args = overrides(release, tmp_path / "o", f"raw={broken_copy}")
    assert f"error: {labels}: utterance Ses01F_impro01_F006 has label 'bored'" in run_error(
        args, capsys
    )


def test_weights_that_are_not_resnet101_are_named(release, tmp_path, capsys):
    weights = tmp_path / "resnet50.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, weights)
    args = overrides(release, tmp_path / "o", "vision.random_weights=false",
                     f"vision.weights={weights}")  # fmt: skip
    line = run_error(args, capsys)
    assert line.startswith(f"error: {weights}: is not torchvision's resnet101 state dict")


def test_cli_reports_a_wrong_path_in_one_line(tmp_path):
    proc = run_cli("selfcross.prepare", f"raw={tmp_path / 'nope'}", f"glove={tmp_path}",
                   f"out={tmp_path / 'o'}", "vision.random_weights=true")  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: no such directory (expected IEMOCAP_full_release)"
    ]
