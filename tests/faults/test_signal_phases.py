"""utils/signals.py on hand-made cases: which phase a signal names, and which exit status, when
work runs inside other work (a run in a study, a job in a sweep); the handlers put back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from selfcross.errors import Interrupted
from selfcross.utils import signals


def interrupt(signum=signal.SIGTERM) -> Interrupted:
    with pytest.raises(Interrupted) as caught:
        os.kill(os.getpid(), signum)
    return caught.value


def test_the_phase_declared_last_is_named_with_the_signals_exit_status():
    before = signal.getsignal(signal.SIGTERM)
    with signals.interruptible():
        err = interrupt()
        assert (str(err), err.exit_code) == (
            "interrupted by SIGTERM while starting; rerun the same command to resume",
            143,
        )
        signals.phase("while making table1", "rerun the same command to make it")
        err = interrupt(signal.SIGINT)
        assert (str(err), err.exit_code) == (
            "interrupted by Ctrl-C (SIGINT) while making table1; rerun the same command to "
            "make it", 130)  # fmt: skip
        assert signals.received() == signal.SIGINT
        epoch = [3]
        signals.phase(lambda: f"in epoch {epoch[0]}")  # asked when the signal comes
        epoch[0] = 4
        assert str(interrupt()).startswith("interrupted by SIGTERM in epoch 4; ")
        signals.finished("table1 (tables)")
        err = interrupt()
        assert (str(err), err.exit_code) == (
            "interrupted by SIGTERM after table1 (tables) had finished; nothing to redo",
            0,
        )
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_run_finished_inside_unfinished_work_names_that_work():
    with signals.interruptible():
        signals.phase("while tuning", "rerun the same command to continue the study")
        with signals.scoped():  # a trial's run
            signals.phase("while writing the record")
            signals.finished("the run (r/result.json)")
            err = interrupt()
            assert (str(err), err.exit_code) == (
                "interrupted by SIGTERM while tuning; rerun the same command to continue the "
                "study", 143)  # fmt: skip
        signals.finished("the study (s)")
        assert interrupt().exit_code == 0


def test_a_command_that_only_ran_finished_work_has_finished():
    with signals.interruptible():  # the run command: user_errors, then train_and_test
        with signals.scoped():
            signals.finished("the run (r/result.json)")
        err = interrupt(signal.SIGINT)
        assert (str(err), err.exit_code) == (
            "interrupted by Ctrl-C (SIGINT) after the run (r/result.json) had finished; nothing "
            "to redo", 0)  # fmt: skip


def test_sigint_ignored_when_the_command_started_stays_ignored():
    """As a background job of a non-interactive shell: Ctrl-C in the terminal is not for it."""
    code = (
        "import os, signal\n"
        "from selfcross.utils import signals\n"
        "with signals.interruptible():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    print('still running')\n"
    )

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, preexec_fn=ignore_sigint)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == "still running\n", proc.stderr
