"""Reading hand-made folds back (tests/helpers/foldkit.py) and running ``selfcross.check`` in
process: the steps the fold reader's and the validation tests share."""

from __future__ import annotations

import numpy as np
import pytest

from selfcross import check
from selfcross.data.fold import ReaderOptions
from selfcross.data.reader import FoldReader
from selfcross.errors import DataError
from tests.helpers.foldkit import SHAPES, shape_overrides

NAMES = ("angry", "excited", "happy", "sad", "frustrated", "surprise", "neutral")


def read(directory, **kw):
    return FoldReader(directory, ReaderOptions(shapes=SHAPES, **kw)).load()


def expect_error(directory, name: str, problem: str, **kw) -> None:
    """Loading the fold fails with exactly ``<directory/name>: <problem>``."""
    with pytest.raises(DataError) as caught:
        read(directory, **kw)
    assert str(caught.value) == f"{directory / name}: {problem}"


def save(directory, name: str, array) -> None:
    np.save(directory / f"{name}.npy", array, allow_pickle=False)


def run_check(capsys, *overrides: str) -> tuple[int, str]:
    """``python -m selfcross.check overrides`` in-process: (exit status, stdout + stderr)."""
    with pytest.raises(SystemExit) as caught:
        check.main(list(overrides))
    out = capsys.readouterr()
    return caught.value.code, out.out + out.err


def iemocap(root) -> list[str]:
    return ["data=iemocap", f"data.root={root}", *shape_overrides()]
