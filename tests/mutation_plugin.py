"""pytest plugin for `make mutation` (``-p tests.mutation_plugin`` in ``[tool.mutmut]``): a
mutant runs every test of the files whose tests share a training fixture, not only the first.

mutmut records which tests reach each function, test by test, and then runs a mutant against
those tests only. A module-scoped fixture is set up inside the first test that uses it, so the
functions only the fixture's training calls are credited to that first test alone, and the
file's other tests, which check the same training, never see the mutant. Measured in run 4
(docs/mutation.md): ``trainer.test(..., ckpt_path=None)`` (testing the last epoch's weights)
survived, though ``training/test_protocol.py``'s second test fails on it. mutmut has no
setting for this, so the plugin widens a mutant's selection to whole files where it matters.
Outside a mutant's run (normal test runs, mutmut's recording pass) it changes nothing.
"""

from __future__ import annotations

import os

SHARED_TRAINING = (
    "tests/training/test_protocol.py",
    "tests/training/test_train_and_test.py",
)
"""Test files whose tests check one training run made by a module-scoped fixture."""


def widened(args: list[str]) -> list[str]:
    """``args`` with each selected test of a SHARED_TRAINING file replaced by its file."""
    out: list[str] = []
    for arg in args:
        path = arg.split("::", 1)[0]
        if "::" in arg and path.endswith(SHARED_TRAINING):
            if path in out:
                continue
            arg = path
        out.append(arg)
    return out


def pytest_load_initial_conftests(early_config, parser, args):
    if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", ""):
        args[:] = widened(args)
