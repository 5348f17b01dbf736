"""The real-component suites (``make test-slurm``, ``make test-postgres``) cannot pass in CI
without running: a component their fixture cannot start fails them there."""

from __future__ import annotations

import pytest

from tests.conftest import component_missing


def test_a_missing_component_fails_under_ci_and_is_skipped_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no initdb"):
        component_missing("no initdb")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no initdb"):
        component_missing("no initdb")
