"""The data tests' fixture: one hand-made fold (tests/helpers/foldkit.py) in a fresh folder."""

from __future__ import annotations

import pytest

from tests.helpers.foldkit import make_fold


@pytest.fixture
def fold(tmp_path):
    """(the fold's folder, every array written in it)."""
    return tmp_path / "fold01", make_fold(tmp_path / "fold01")
