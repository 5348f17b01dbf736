"""The mutation tool's settings (`make mutation`, docs/mutation.md): the plugin's widening, and
every test file and test its selections name exists, so that moving a test cannot silently
drop it from the mutation score."""

from __future__ import annotations

import re
import tomllib

from tests import mutation_plugin
from tests.conftest import REPO


def test_mutation_runs_widen_shared_training_tests_to_their_file(monkeypatch):
    protocol, training = mutation_plugin.SHARED_TRAINING
    args = ["-x", "-m", "not slow", f"{protocol}::test_a", "tests/models/test_metrics.py::t",
            f"{protocol}::test_b", f"{training}::test_c[1]"]  # fmt: skip
    expected = ["-x", "-m", "not slow", protocol, "tests/models/test_metrics.py::t", training]
    assert mutation_plugin.widened(args) == expected
    for value, after in (("stats", args), ("selfcross.x__f__mutmut_3", expected)):
        monkeypatch.setenv("MUTANT_UNDER_TEST", value)
        given = list(args)
        mutation_plugin.pytest_load_initial_conftests(None, None, given)
        assert given == after


def test_every_file_and_test_the_mutation_selections_name_exists():
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]
    selection = settings["pytest_add_cli_args_test_selection"]
    named = [arg for arg in selection if arg.startswith("tests/")]
    assert len(named) > 10 and set(mutation_plugin.SHARED_TRAINING) <= set(named)
    for arg in [*named, *mutation_plugin.SHARED_TRAINING]:
        path, _, test = arg.partition("::")
        if path.endswith("/"):  # a whole folder of tests
            assert list((REPO / path).glob("test_*.py")), f"{arg}: no test files there"
            continue
        assert (REPO / path).is_file(), f"{arg}: no such test file"
        if test:
            source = (REPO / path).read_text()
            assert re.search(rf"^def {re.escape(test)}\(", source, re.M), f"{arg}: no such test"
    for path in settings["only_mutate"]:
        assert (REPO / path).is_file(), f"only_mutate: {path}: no such file"
