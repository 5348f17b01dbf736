"""The test suite's own layout (docs/ARCHITECTURE.md, "Tests"), held by parsing every file of
``tests/``: no file over 400 lines, and no test module imported by another module. What tests
share lives in ``tests/helpers/`` (builders) or a ``conftest.py`` (fixtures), so that a test
module can be split, moved or deselected without breaking another. Each failure names the file,
the line and the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
MAX_LINES = 400


def suite_files() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def module_of(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_test_module(module: str) -> bool:
    """A module pytest collects tests from (``test_*.py``), not a helper or a conftest."""
    return module.split(".")[-1].startswith("test_")


def imported_modules(source: str, code: str, is_package: bool) -> list[tuple[str, int]]:
    """(module, line) of every import in ``code``, lazy ones included, relative ones resolved;
    ``from a import b`` gives ``a.b`` too, since ``b`` may be a module."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = source.split(".") if is_package else source.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def imports_of_test_modules(path: Path, code: str) -> list[str]:
    """Every import of a test module that ``code`` (the file at ``path``) makes."""
    source = module_of(path)
    where = path.relative_to(REPO).as_posix()
    return [
        f"{where}:{line} imports the test module {target}: move what it shares to "
        "tests/helpers/ (builders) or a conftest.py (fixtures)"
        for target, line in imported_modules(source, code, path.name == "__init__.py")
        if target.startswith("tests.") and is_test_module(target) and target != source
    ]


def length_problem(path: Path, code: str) -> str | None:
    n = len(code.splitlines())
    if n <= MAX_LINES:
        return None
    return f"{path.relative_to(REPO).as_posix()}: {n} lines, over the {MAX_LINES}-line cap"


def fail_with(problems: list[str], rule: str) -> None:
    assert not problems, f"{len(problems)} problem(s) with the rule: {rule}\n" + "\n".join(
        f"  {p}" for p in problems
    )


# -- the rules ------------------------------------------------------------------------------


def test_no_file_of_the_suite_over_the_line_cap():
    problems = [p for path in suite_files() if (p := length_problem(path, path.read_text()))]
    fail_with(problems, f"no file of tests/ over {MAX_LINES} lines")


def test_no_module_imports_a_test_module():
    problems = [
        p for path in suite_files() for p in imports_of_test_modules(path, path.read_text())
    ]
    fail_with(problems, "no module of tests/ imports a test module")


# -- the checker itself ----------------------------------------------------------------------


def test_imports_of_test_modules_are_found_wherever_they_are_written():
    path = TESTS / "data" / "test_probe.py"
    code = (
        "from tests.data.test_synthetic import SPEC\n"
        "from tests.helpers.foldkit import make_fold\n"
        "from tests.conftest import run_cli\n"
        "from tests.postgres.conftest import tune_command\n"
        "from tests.faults.signalkit import launch\n"
        "import tests.models.test_networks\n"
        "from tests.sweeps import test_slurm\n"
        "from . import test_reader, conftest\n"
        "from .test_probe import itself\n"
        "def later():\n"
        "    from ..report.test_tables import rows\n"
    )
    problems = imports_of_test_modules(path, code)
    assert [p.split(" imports the test module ")[1].split(":")[0] for p in problems] == [
        "tests.data.test_synthetic",
        "tests.models.test_networks",
        "tests.sweeps.test_slurm",
        "tests.data.test_reader",
        "tests.report.test_tables",
    ]
    assert problems[0] == (
        "tests/data/test_probe.py:1 imports the test module tests.data.test_synthetic: move "
        "what it shares to tests/helpers/ (builders) or a conftest.py (fixtures)"
    )
    assert [p.split(" ")[0] for p in problems] == [
        "tests/data/test_probe.py:1",
        "tests/data/test_probe.py:6",
        "tests/data/test_probe.py:7",
        "tests/data/test_probe.py:8",
        "tests/data/test_probe.py:11",
    ]
    helper = TESTS / "helpers" / "probekit.py"
    assert imports_of_test_modules(helper, "from tests.data.test_reader import read\n") == [
        "tests/helpers/probekit.py:1 imports the test module tests.data.test_reader: move what "
        "it shares to tests/helpers/ (builders) or a conftest.py (fixtures)"
    ]


def test_the_line_cap_counts_lines():
    path = TESTS / "models" / "test_probe.py"
    assert length_problem(path, "x = 1\n" * MAX_LINES) is None
    assert length_problem(path, "x = 1\n" * (MAX_LINES + 1)) == (
        f"tests/models/test_probe.py: {MAX_LINES + 1} lines, over the {MAX_LINES}-line cap"
    )
    assert TESTS / "test_suite_layout.py" in suite_files()
    assert TESTS / "helpers" / "foldkit.py" in suite_files()
