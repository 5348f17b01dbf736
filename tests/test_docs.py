"""The command lines and messages that README.md and docs/*.md quote hold for the code as it is.

Every ``python -m selfcross.X ...`` and ``make TARGET ...`` in a code block, table or sentence is
checked without training: a make target must dry-run (``make -n``) with the documented
variables, each variable must be one the Makefile reads, and the Python commands the target
expands to are checked in turn; ``run``, ``check``, ``summary`` and ``tune`` overrides must
compose and validate (``prepare``'s compose ``conf/prepare.yaml``); the other commands'
``--help`` must list every documented flag. Quoted messages (``error: ...``, ``warning: ...``,
the tables of checks and troubleshooting) must be found in the code's string literals, holes
(``{value}`` in an f-string) standing for the concrete values a doc shows. Placeholders such as
``...``, ``<sweep>``, ``DIR`` or ``/path/to/folds`` are kept or stood in for by a dummy value.
The message check reads the words around the holes, so a list or a tail that a hole takes (the
options after ``choose one of``) is not checked; keep those quotes short.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import functools
import importlib
import io
import math
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import hydra
import pytest

from selfcross.config import CONFIG_DIR, check_overrides, compose, validate

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
HYDRA_COMMANDS = ("run", "check", "summary", "tune")
"""Commands whose arguments are the run's Hydra overrides."""
FLAG_COMMANDS = (
    "tables", "ablate", "attention", "bench", "dashboard", "predict", "export", "evaluate"
)  # fmt: skip
"""Commands with an argparse command line."""
COMMAND = re.compile(r"(?:\.venv/bin/)?python -m selfcross\.\w+[^\"&;]*")
MESSAGE_START = ("error:", "warning:", "test WA")
"""A quote or block line starting so is a message the code prints."""
MESSAGE_TABLE = re.compile(r"^\|\s*(?:you see|problem)\s*\|", re.I)
"""The header of a table whose code spans are messages (checks, troubleshooting)."""
PLACEHOLDER = re.compile(r"<[^<>]*>|\[\.\.\.\]|\(\.\.\.\)|\(…\)|\.\.\.|…")


@dataclass(frozen=True)
class Quote:
    """A piece of a doc: a code span, or a line of a code block (``\\``-continued lines joined)."""

    where: str
    text: str
    block: bool
    in_message_table: bool = False


def quotes_of(path: Path) -> list[Quote]:
    """Every code span and code-block line (fenced or indented) of one Markdown file, with where
    it stands (a span may run over the lines of its paragraph; a table row is its own one)."""
    found: list[Quote] = []
    in_block, pending, table, paragraph = False, None, False, []

    def close_paragraph() -> None:
        text = " ".join(line for _, line in paragraph)
        for span in re.findall(r"`([^`]+)`", text):
            found.append(Quote(paragraph[0][0], span, block=False, in_message_table=table))
        paragraph.clear()

    indented, previous = False, ""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        where = f"{path.relative_to(ROOT)}:{number}"
        if line.lstrip().startswith("```"):
            close_paragraph()
            in_block = not in_block
            if not in_block:
                found.append(Quote(where, "", block=True))  # ends a quoted message
            continue
        # An indented code block: four spaces, after a blank line or another such line.
        indented = line.startswith("    ") and (indented or not previous.strip())
        previous = line
        if in_block or indented:
            text = line.strip() if pending is None else f"{pending[1]} {line.strip()}"
            start = where if pending is None else pending[0]
            pending = (start, text[:-1].rstrip()) if text.endswith("\\") else None
            if pending is None:
                found.append(Quote(start, text, block=True))
            continue
        if line.startswith("|") or not line.strip() or line.startswith(("#", "- ")):
            close_paragraph()
        table = line.startswith("|") and (table or bool(MESSAGE_TABLE.match(line)))
        if line.strip():
            paragraph.append((where, line.strip()))
        if line.startswith("|"):
            close_paragraph()
    close_paragraph()
    return found


def all_quotes() -> list[Quote]:
    return [quote for path in DOCS for quote in quotes_of(path)]


def documented_commands() -> list[Quote]:
    """Quotes that are command lines (a block line may hold one after other shell words)."""
    commands = []
    for quote in all_quotes():
        text = re.sub(r"\s+#\s.*$", "", quote.text) if quote.block else quote.text
        if re.match(r"make [a-z]", text) and (quote.block or not text.endswith("...")):
            commands.append(Quote(quote.where, text.strip(), quote.block))
            continue
        match = COMMAND.search(text)
        if match and "$" not in text and (quote.block or match.start() == 0):
            commands.append(Quote(quote.where, match.group(0).strip(), quote.block))
    return commands


def argv_variants(text: str) -> list[list[str]]:
    """The argument vectors a documented line stands for: optional ``[...]`` parts kept,
    ``a|b`` read as ``a``, each choice of ``{a,b}`` a variant, placeholders made dummies."""
    text = text.replace("\\|", "|").removeprefix(".venv/bin/")
    text = re.sub(r"<[^<>]*>", "X", text)
    text = re.sub(
        r"(?<!\S)\[([^\[\]]*)\](?!\S)",
        lambda m: "" if m.group(1) in ("overrides", "options") else m.group(1),
        text,
    )
    dropped = re.compile(r"(?:\w+=)?(?:\.\.\.|…)")  # `...` or `KEY=...`: the default stays
    words = [w for w in shlex.split(text) if not dropped.fullmatch(w)]
    words = [re.sub(r"\.\.\.|…", "x", w.split("|")[0]) for w in words]
    variants = [[]]
    for word in words:
        choices = re.fullmatch(r"\{([\w,.]+)\}", word)
        options = [c for c in choices.group(1).split(",") if c != "x"] if choices else [word]
        variants = [[*v, option] for v in variants for option in options]
    return variants


@functools.cache
def makefile_text() -> str:
    return (ROOT / "Makefile").read_text()


@functools.cache
def dry_run(args: tuple[str, ...]) -> str:
    """``make -n`` of the arguments: the commands a target would run, none of them run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, f"make -n {' '.join(args)}: {done.stderr.strip()}"
    return done.stdout


def check_make(args: list[str]) -> None:
    """The targets exist, every variable is one the Makefile reads, and the Python commands
    the targets run are themselves valid."""
    for arg in args:
        name = arg.split("=", 1)[0]
        if "=" in arg:
            pattern = rf"\$\({name}\)|^{name}\s*[?:]?="
            assert re.search(pattern, makefile_text(), re.M), f"the Makefile reads no {name}"
    for line in dry_run(tuple(args)).splitlines():
        match = re.search(r"/bin/python (-m selfcross\.\w+.*)$", line)
        if match and "$" not in line:
            check_python(shlex.split(match.group(1))[1:])


@functools.cache
def help_text(command: str, subcommand: str | None) -> str:
    """What ``python -m selfcross.<command> [subcommand] --help`` prints (run in-process)."""
    module = importlib.import_module(f"selfcross.{command}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            module.main([*([subcommand] if subcommand else []), "--help"])
        except SystemExit as stop:
            assert stop.code in (0, None), f"{command} {subcommand}: {out.getvalue()}"
    return out.getvalue()


@functools.cache
def check_composes(command: str, overrides: tuple[str, ...]) -> None:
    """A Hydra command's overrides compose (a sweep's first combination) and validate."""
    if command == "prepare":
        compose(list(overrides), config_name="prepare")
        return
    if command == "tune" and not any(o.startswith("experiment=") for o in overrides):
        overrides = ("experiment=tune", *overrides)
    validate(check_overrides(list(overrides)), need_data=False)


def check_python(argv: list[str]) -> None:
    """``argv`` is ``selfcross.<command> ...``: check it as its command reads it."""
    command = argv[0].removeprefix("selfcross.")
    args = argv[1:]
    assert importlib.util.find_spec(f"selfcross.{command}"), f"no command selfcross.{command}"
    flags = [a.split("=", 1)[0] for a in args if a.startswith("-")]
    settings = tuple(a for a in args if not a.startswith("-") and "=" in a)
    if command in (*HYDRA_COMMANDS, "prepare"):
        allowed = {"-m", "--multirun", "-h", "--help"} if command == "run" else {"-h", "--help"}
        assert set(flags) <= allowed, f"selfcross.{command} takes no {set(flags) - allowed}"
        check_composes(command, settings)
        return
    assert command in FLAG_COMMANDS, f"selfcross.{command} is not covered by this test"
    subcommand = args[0] if command == "tables" and args else None
    text = help_text(command, subcommand)
    for flag in flags:
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), (
            f"selfcross.{command} {subcommand or ''}: no {flag} in --help"
        )
    if command == "bench" and settings:
        compose(["model=self", *settings])
    if command == "evaluate":  # the scored data's overrides compose; the class map exists
        maps = [s.partition("=")[2] for s in settings if s.startswith("class_map=")]
        assert len(maps) == 1 and (CONFIG_DIR / "class_map" / f"{maps[0]}.yaml").is_file()
        compose([s for s in settings if not s.startswith("class_map=")])


COMMANDS = documented_commands()


def test_the_docs_quote_commands():
    """The extraction finds the commands (a broken pattern would pass every check below)."""
    assert len(COMMANDS) > 150
    assert any(c.text.startswith("make bench") for c in COMMANDS)


@pytest.mark.parametrize("quote", COMMANDS, ids=[c.where for c in COMMANDS])
def test_documented_command_is_valid(quote):
    for argv in argv_variants(quote.text):
        if argv[0] == "make":
            check_make(argv[1:])
        else:
            assert argv[:2] == ["python", "-m"], quote.text
            check_python(argv[2:])


HOLE = "\x00"
FIELD = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdrfgixe]|\{\w*(?:![rs])?(?::[^{}]*)?\}")
"""A %-style or str.format replacement field in a plain string literal."""


def template_of(node: ast.AST) -> str | None:
    """The text of a string expression with holes: a literal, an f-string (its replacement
    fields, and %-style or str.format fields of a plain literal, are holes), a ``+`` of such,
    or the first branch of a conditional one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return FIELD.sub(HOLE, node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else HOLE for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = template_of(node.left), template_of(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.IfExp):
        return template_of(node.body)
    return None


def string_templates(path: Path) -> list[str]:
    """The string expressions of a module, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    found = (template_of(node) for node in ast.walk(tree) if id(node) not in docstrings)
    return [text for text in found if text is not None]


def words(text: str) -> list[str]:
    """Words and single punctuation marks; a hole is its own token."""
    return re.findall(rf"{HOLE}|\w+|[^\w\s]", text)


@functools.cache
def code_templates() -> tuple[list[list[str]], dict[str, set[int]]]:
    """Tokenised string literals of selfcross, its Hydra plugins and Hydra (whose messages
    selfcross passes on), with an index from each word to the literals holding it."""
    files = [*(ROOT / "selfcross").rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py")]
    hydra_root = Path(hydra.__file__).parent
    files += [p for p in hydra_root.rglob("*.py") if "grammar" not in p.parts]
    templates = [words(t) for f in files for t in string_templates(f)]
    index: dict[str, set[int]] = {}
    for number, template in enumerate(templates):
        for word in template:
            index.setdefault(word, set()).add(number)
    return templates, index


def matches(segment: tuple[str, ...], template: list[str], depth: int, start: bool) -> bool:
    """Whether ``segment`` reads as part of the template (``start``: its beginning): each hole
    takes 1-24 tokens, and at least half as many of the segment's words are the template's own
    as are taken by holes (what a hole takes counts as own words when it begins another string
    of the code, as ``f"kept {what}"`` takes ``"the run of configuration ..."``, up to
    ``depth`` strings deep)."""
    words_in = [w.isalpha() for w in segment]

    def taken(i: int, k: int) -> float:
        """The penalty for a hole taking segment[i:i+k]."""
        if depth and k > 1 and in_one_string(segment[i : i + k], depth - 1, start=True):
            return -sum(words_in[i : i + k])
        return sum(words_in[i : i + k]) / 2

    @functools.cache
    def score(i: int, j: int) -> float:
        """The best (own words - words taken by holes / 2) matching segment[i:] from
        template[j]."""
        if i == len(segment):
            return 0
        if j == len(template):
            return -math.inf
        if template[j] == HOLE:
            return max(
                score(i + k, j + 1) - taken(i, k) for k in range(1, min(24, len(segment) - i) + 1)
            )
        if template[j] != segment[i]:
            return -math.inf
        return score(i + 1, j + 1) + words_in[i]

    return any(score(0, j) >= 0 for j in range(1 if start else len(template)))


@functools.cache
def in_one_string(segment: tuple[str, ...], depth: int = 2, start: bool = False) -> bool:
    """Whether one string literal of the code (its holes filled) reads ``segment``."""
    templates, index = code_templates()
    keys = {w for w in segment if len(w) >= 3 and w.isalpha()}
    if not keys:
        return False
    hits = collections.Counter(number for key in keys for number in index.get(key, ()))
    candidates = [n for n, count in hits.items() if count >= len(keys) / 3]
    return any(matches(segment, templates[n], depth, start) for n in candidates)


def message_found(text: str) -> str | None:
    """None if every part of a quoted message between placeholders is in the code, else the
    first part that is not."""
    text = re.sub(r"^(error|warning): ", "", text)
    for part in PLACEHOLDER.split(text):
        part = re.sub(r"^[\s:;,.)]*(?:\S*[/.]\S*:\s)?", "", part)  # the glue after a path
        segment = tuple(words(part))
        if not any(len(w) >= 4 and w.isalpha() for w in segment):
            continue  # no word to look up
        if not in_one_string(segment):
            return part.strip()
    return None


def quoted_messages() -> list[Quote]:
    """Spans and block lines that quote what the code prints."""
    found, in_message = [], False
    for quote in all_quotes():
        starts = quote.text.startswith(MESSAGE_START)
        in_message = quote.block and (starts or (in_message and quote.text != ""))
        in_table = quote.in_message_table and len(quote.text.split()) >= 3
        if starts or in_message or in_table:
            found.append(quote)
    return found


MESSAGES = quoted_messages()


def test_the_docs_quote_messages():
    assert len(MESSAGES) > 40


@pytest.mark.parametrize("quote", MESSAGES, ids=[m.where for m in MESSAGES])
def test_quoted_message_is_printed_by_the_code(quote):
    missing = message_found(quote.text)
    assert missing is None, f"{quote.where}: {missing!r} of {quote.text!r} is in no string"
