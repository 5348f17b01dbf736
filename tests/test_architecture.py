"""The package's floors (docs/ARCHITECTURE.md, "Floors"), held by parsing every import.

Every ``import`` and ``from ... import`` of ``selfcross/**/*.py`` and ``hydra_plugins/**/*.py``
is read with :mod:`ast`, lazy ones inside functions included and relative ones resolved, and
checked against four rules: an import points only down the floors (or stays in its own
subpackage), no module imports a command, no import cycle of any length, no module over 400
lines. Each failure names the module, the import (file and line) and the rule.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("selfcross", "hydra_plugins")
"""The folders parsed."""
OURS = ("selfcross", "hydra_plugins.selfcross_plugins")
"""What an import may land in to be checked (``hydra_plugins`` is a namespace package that other
installed plugins share: theirs are outside imports, like numpy)."""
MAX_LINES = 400

FLOORS: tuple[tuple[str, ...], ...] = (
    (
        "selfcross",
        "selfcross.errors",
        "selfcross.utils",
        "selfcross.manifest",
        "selfcross.run_settings",
    ),
    ("selfcross.config",),
    ("selfcross.data",),
    ("selfcross.models",),
    ("selfcross.training", "selfcross.prepare"),
    ("selfcross.analysis",),
    ("selfcross.report", "selfcross.benchmark"),
    (
        "selfcross.run",
        "selfcross.tables",
        "selfcross.tune",
        "selfcross.check",
        "selfcross.summary",
        "selfcross.bench",
        "selfcross.ablate",
        "selfcross.attention",
        "selfcross.predict",
        "selfcross.evaluate",
        "selfcross.export",
        "selfcross.dashboard",
        "selfcross.prepare.__main__",
        "hydra_plugins.selfcross_plugins",
    ),
)
"""Lowest floor first; each entry is a room: a subpackage, a module or a command. A module may
import its own room and any room of a lower floor. Floor 0 is one room, the package face (its
members may import each other; the cycle rule still holds them)."""

COMMAND_FLOOR = len(FLOORS) - 1
"""The top floor holds the commands: no other room imports one of them."""


@dataclass(frozen=True)
class Import:
    """One import statement's target inside the package, where it is written."""

    source: str
    target: str
    path: str
    line: int
    lazy: bool

    def __str__(self) -> str:
        where = " (lazy, inside a function)" if self.lazy else ""
        return f"{self.path}:{self.line} imports {self.target}{where}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_files() -> dict[str, Path]:
    """Module name -> file, for every module of the checked packages."""
    files = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            files[module_name(path)] = path
    return files


class ImportVisitor(ast.NodeVisitor):
    """Every import of one module, with its line and whether it sits inside a function."""

    def __init__(self):
        self.found: list[tuple[str | None, list[str], int, int, bool]] = []
        self.depth = 0

    def _nested(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _nested

    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            self.found.append((alias.name, [], 0, node.lineno, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom):
        names = [alias.name for alias in node.names]
        self.found.append((node.module, names, node.level, node.lineno, self.depth > 0))


def resolve(source: str, is_package: bool, module: str | None, level: int) -> str:
    """The absolute module a (possibly relative) ``from`` names."""
    if level == 0:
        return module or ""
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_in(source: str, code: str, is_package: bool, modules: set[str], where: str):
    """The imports of one module's ``code`` that land in the checked packages, each resolved
    to the most specific module it names."""
    visitor = ImportVisitor()
    visitor.visit(ast.parse(code, filename=where))
    for module, names, level, line, lazy in visitor.found:
        target = resolve(source, is_package, module, level)
        if not any(target == own or target.startswith(own + ".") for own in OURS):
            continue
        hits = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
        if len(hits) < len(names) and target in modules:
            hits.append(target)  # a name defined in the package's or module's own body
        for hit in hits or [target]:
            if hit != source:
                yield Import(source, hit, where, line, lazy)


def all_imports() -> list[Import]:
    files = package_files()
    modules = set(files)
    return [
        imp
        for name, path in files.items()
        for imp in imports_in(
            name, path.read_text(), path.name == "__init__.py", modules,
            path.relative_to(REPO).as_posix(),
        )
    ]  # fmt: skip


def room_of(module: str) -> tuple[int, str] | None:
    """(floor, room) of a module: the longest room name it equals or lies under."""
    best = None
    for floor, rooms in enumerate(FLOORS):
        for room in rooms:
            inside = module == room or (room != "selfcross" and module.startswith(room + "."))
            if inside and (best is None or len(room) > len(best[1])):
                best = (floor, room)
    return best


def floor_problem(imp: Import) -> str | None:
    """Why an import breaks the floor rule (rule a), or None."""
    here, there = room_of(imp.source), room_of(imp.target)
    if here is None:
        return f"{imp.source} has no floor: place it in FLOORS (and docs/ARCHITECTURE.md)"
    if there is None:
        return f"{imp}: {imp.target} has no floor (no such module, or not placed in FLOORS)"
    (floor, room), (their_floor, their_room) = here, there
    if room == their_room or their_floor < floor or floor == their_floor == 0:
        return None
    if their_floor == floor:
        return (
            f"{imp}: {room} and {their_room} are sibling rooms of floor {floor}; "
            "neither may import the other"
        )
    return (
        f"{imp}: {room} (floor {floor}) may import only its own room and lower floors; "
        f"{their_room} is on floor {their_floor}"
    )


def command_problem(imp: Import) -> str | None:
    """Why an import reaches a command from outside it (rule b), or None."""
    here, there = room_of(imp.source), room_of(imp.target)
    if there is None or there[0] != COMMAND_FLOOR or (here and here[1] == there[1]):
        return None
    return f"{imp}: {there[1]} is a command; no module imports a command"


def cycles(imports: list[Import]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.source, set()).add(imp.target)
        graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def shortest_cycle(group: list[str], imports: list[Import]) -> list[str]:
    """One shortest cycle through the group's first module: [a, b, ..., a]."""
    inside = set(group)
    graph: dict[str, list[str]] = {}
    for imp in imports:
        if imp.source in inside and imp.target in inside:
            graph.setdefault(imp.source, []).append(imp.target)
    start = group[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for target in sorted(graph.get(node, [])):
                if target == start:
                    return paths[node] + [start]
                if target not in paths:
                    paths[target] = paths[node] + [target]
                    nxt.append(target)
        frontier = nxt
    return [start]


def cycle_report(group: list[str], imports: list[Import]) -> str:
    """The cycle's modules, one shortest loop through them, and every import inside it."""
    inside = set(group)
    lines = [str(i) for i in imports if i.source in inside and i.target in inside]
    loop = " -> ".join(shortest_cycle(group, imports))
    return f"import cycle among {', '.join(group)} (e.g. {loop}):\n    " + "\n    ".join(lines)


def fail_with(problems: list[str], rule: str) -> None:
    assert not problems, f"{len(problems)} problem(s) with the rule: {rule}\n" + "\n".join(
        f"  {p}" for p in problems
    )


# -- the rules ------------------------------------------------------------------------------


def test_imports_point_down_the_floors():
    """(a) A module imports only its own room or a lower floor; never a higher floor, never a
    sibling room of its own floor (training <-> prepare, report <-> benchmark)."""
    problems = [p for imp in all_imports() if (p := floor_problem(imp))]
    unplaced = [f"{m} has no floor: place it in FLOORS" for m in package_files() if not room_of(m)]
    fail_with(sorted(set(unplaced + problems)), "imports point only down the floors")


def test_no_module_imports_a_command():
    """(b) Commands sit on top: nothing but the command itself imports its modules."""
    problems = [p for imp in all_imports() if (p := command_problem(imp))]
    fail_with(problems, "no module imports a command")


def test_no_import_cycles():
    """(c) No cycle of any length between modules, lazy imports included."""
    imports = all_imports()
    fail_with([cycle_report(g, imports) for g in cycles(imports)], "no import cycles")


def test_no_module_over_the_line_cap():
    """(d) Files that fit in a head: at most 400 lines per module."""
    problems = []
    for path in package_files().values():
        n = len(path.read_text().splitlines())
        if n > MAX_LINES:
            problems.append(f"{path.relative_to(REPO)}: {n} lines, over the {MAX_LINES}-line cap")
    fail_with(problems, f"no module over {MAX_LINES} lines")


# -- the checker itself ----------------------------------------------------------------------


def test_the_floor_table_knows_every_module_and_command():
    files = package_files()
    assert room_of("selfcross") == (0, "selfcross")
    assert room_of("selfcross.prepare.__main__") == (COMMAND_FLOOR, "selfcross.prepare.__main__")
    assert room_of("selfcross.prepare.meld") == (4, "selfcross.prepare")
    assert room_of("selfcross.reporting") is None  # a prefix of a name is not its room
    for rooms in FLOORS:
        for room in rooms:
            assert room in files or room == "selfcross.manifest", f"{room} is not a module"


def test_relative_and_lazy_imports_are_resolved():
    code = (
        "from . import record, SOMETHING\n"
        "from .. import MODALITIES\n"
        "from ..report.results import load_results\n"
        "import selfcross.errors, numpy\n"
        "from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf\n"
        "def later():\n"
        "    from selfcross.report import figure3\n"
    )
    modules = {
        "selfcross", "selfcross.errors", "selfcross.training", "selfcross.training.record",
        "selfcross.report", "selfcross.report.results", "selfcross.report.figure3",
    }  # fmt: skip
    found = imports_in("selfcross.training.probe", code, False, modules, "probe.py")
    assert [(i.target, i.line, i.lazy) for i in found] == [
        ("selfcross.training.record", 1, False),
        ("selfcross.training", 1, False),
        ("selfcross", 2, False),
        ("selfcross.report.results", 3, False),
        ("selfcross.errors", 4, False),
        ("selfcross.report.figure3", 7, True),
    ]
    package = imports_in("selfcross.training", "from .record import X\n", True, modules, "i.py")
    assert [i.target for i in package] == ["selfcross.training.record"]


def test_each_rule_names_the_module_the_import_and_the_rule():
    up = Import("selfcross.training.tuning", "selfcross.report.results", "t.py", 7, True)
    assert floor_problem(up) == (
        "t.py:7 imports selfcross.report.results (lazy, inside a function): selfcross.training "
        "(floor 4) may import only its own room and lower floors; selfcross.report is on floor 6"
    )
    side = Import("selfcross.prepare.build", "selfcross.training.record", "b.py", 3, False)
    assert "sibling rooms of floor 4" in floor_problem(side)
    assert floor_problem(Import("selfcross.utils.io", "selfcross.errors", "u.py", 1, True)) is None
    down = Import("selfcross.report.table1", "selfcross.analysis.results", "r.py", 2, False)
    assert floor_problem(down) is None and command_problem(down) is None
    cmd = Import("selfcross.report.render", "selfcross.tables", "r.py", 9, False)
    assert command_problem(cmd) == (
        "r.py:9 imports selfcross.tables: selfcross.tables is a command; no module imports a "
        "command"
    )
    plugins = "hydra_plugins.selfcross_plugins"
    own = Import(f"{plugins}.slurm", f"{plugins}.launcher", "s.py", 1, False)
    assert command_problem(own) is None
    loop = [
        Import("a.x", "a.y", "x.py", 1, False),
        Import("a.y", "a.z", "y.py", 2, True),
        Import("a.z", "a.x", "z.py", 3, False),
        Import("a.z", "a.w", "z.py", 4, False),
    ]
    assert cycles(loop) == [["a.x", "a.y", "a.z"]]
    report = cycle_report(["a.x", "a.y", "a.z"], loop)
    assert "(e.g. a.x -> a.y -> a.z -> a.x)" in report
    assert "y.py:2 imports a.z (lazy, inside a function)" in report and "a.w" not in report
