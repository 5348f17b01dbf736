"""SIGTERM and SIGINT answered the same way in every phase of every command.

Every command's entry point runs its work inside :func:`interruptible` (through
``selfcross.config.user_errors``): there, either signal raises :class:`Interrupted` at once,
wherever the process is (data preparation, Lightning's fit or test loop, writing a file), with
a message naming the phase the command last declared with :func:`phase`, and the exit status a
shell gives a process ended by that signal (143 for SIGTERM, 130 for SIGINT). Files are written
atomically (``utils/io.py``, Lightning's checkpoints are resumed or set aside when cut off), so
the exception leaves nothing half-written behind; the command's caller prints the one line.

A command that has finished its work says so with :func:`finished`: a signal after that point
still ends the process at once, with exit status 0 and a line saying that nothing is left to
redo. Work runs inside other work (a run inside a study's trial or a sweep's job): each
:func:`scoped` block declares its own phases, and a run that has finished inside a study that
has not names the study's phase instead. :func:`received` tells a caller that outlives the
interrupted work (the sweeper) which signal arrived.

SIGINT ignored when the process started (a background job of a non-interactive shell) stays
ignored, as Python itself does; a signal reaching a forked child (a data-loader worker) takes
its default action there.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from selfcross.errors import Interrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT)
NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C (SIGINT)"}
DEFAULT_ADVICE = "rerun the same command to resume"


def exit_status(signum: int) -> int:
    """The status a shell reports for a process ended by ``signum``: 128 + its number."""
    return 128 + int(signum)


@dataclass
class _Work:
    """One command's (or one run's) declared phase, in a stack: a study's run, a sweep's job."""

    where: str | Callable[[], str] | None = None
    advice: str = DEFAULT_ADVICE
    done: str | None = None
    """What was finished (set by :func:`finished`)."""


@dataclass
class _State:
    stack: list[_Work] = field(default_factory=lambda: [_Work()])
    received: int | None = None
    owner: int | None = None
    """The process that installed the handlers."""
    depth: int = 0


_state = _State()


def phase(where: str | Callable[[], str], advice: str = DEFAULT_ADVICE) -> None:
    """Declare what the command is doing now: ``where`` completes "interrupted by SIGTERM ..."
    (``"while testing the best checkpoint"``, or a function giving it when the signal comes,
    such as ``"in epoch 3"``), ``advice`` what the user does next."""
    _state.stack[-1] = _Work(where, advice)


def finished(what: str) -> None:
    """Declare the work of the innermost :func:`scoped` block done (``what``: ``"the run
    (<path>)"``, ``"table1 (<folder>)"``). A signal from now on exits 0 saying so, unless an
    enclosing work (a study, a sweep) is still under way: then its phase is named."""
    _state.stack[-1].done = what


def received() -> int | None:
    """The signal that interrupted the work, or None."""
    return _state.received


def _answer(signum: int) -> tuple[str, int]:
    """The one line that reports ``signum``, and the exit status."""
    name = NAMES[signum]
    for work in reversed(_state.stack):  # the innermost work still under way
        if work.done is None and work.where is not None:
            where = work.where() if callable(work.where) else work.where
            return f"interrupted by {name} {where}; {work.advice}", exit_status(signum)
    done = next((w.done for w in reversed(_state.stack) if w.done is not None), None)
    if done is not None:
        return f"interrupted by {name} after {done} had finished; nothing to redo", 0
    return f"interrupted by {name} while starting; {DEFAULT_ADVICE}", exit_status(signum)


def message(signum: int) -> str:
    """The one line that reports ``signum`` in the phase declared last."""
    return _answer(signum)[0]


def _handler(signum: int, _frame) -> None:
    if os.getpid() != _state.owner:  # a forked child (data-loader worker): default action
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _state.received = signum
    line, code = _answer(signum)
    raise Interrupted(line, exit_code=code)


@contextmanager
def scoped() -> Iterator[None]:
    """The phases declared within the block end with it: the enclosing work's phase (a study
    between its trials, a sweep between its jobs) is in force again afterwards."""
    _state.stack.append(_Work())
    try:
        yield
    finally:
        inner = _state.stack.pop()
        outer = _state.stack[-1]
        if inner.done is not None and outer.where is None and outer.done is None:
            outer.done = inner.done  # a command that only ran this work has finished too


@contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`Interrupted`; the previous handlers
    (and the enclosing phase, when nested) are restored afterwards."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; the work of threads is not signalled
        return
    saved = {s: signal.getsignal(s) for s in SIGNALS}
    if not _state.depth:  # a command starts: nothing received, nothing declared
        _state.received, _state.owner, _state.stack = None, os.getpid(), [_Work()]
    _state.depth += 1
    for signum in SIGNALS:
        if not (signum == signal.SIGINT and saved[signum] == signal.SIG_IGN):
            signal.signal(signum, _handler)
    try:
        with scoped():
            yield
    finally:
        for signum, handler in saved.items():
            if handler is not None:
                signal.signal(signum, handler)
        _state.depth -= 1
