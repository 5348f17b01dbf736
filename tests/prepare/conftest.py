"""The fake IEMOCAP release (tests/helpers/preparekit.py) and its folds prepared once per module,
for the test_iemocap*.py modules; test_meld.py and test_pretrained.py define their own
``release`` and ``prepared`` fixtures, which take precedence in their modules."""

from __future__ import annotations

import pytest

from tests.helpers.preparekit import make_release, overrides
from tests.helpers.releasekit import prepare_quietly


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def prepared(release, tmp_path_factory):
    """The fake release prepared once (random split, two worker processes, random ResNet)."""
    out = tmp_path_factory.mktemp("prepared") / "folds"
    summary, text = prepare_quietly(overrides(release, out, "jobs=2"))
    assert "2 worker(s)" in text
    return out, summary, text
