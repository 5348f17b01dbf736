"""A signal fired at a chosen moment of a real command, and the command run as a user runs it.

    python -m tests.faults.signalkit PHASE SIGNAL MODULE [ARGS...]

runs ``python -m MODULE ARGS`` in this process with one hook armed: when the command reaches
``PHASE`` (a name of :data:`HOOKS`), the process sends itself ``SIGNAL`` (``SIGTERM`` or
``SIGINT``) once, through the kernel, exactly as ``kill`` or Ctrl-C would, and the command's
own handlers answer it. SIGINT starts at Python's default handler, as in a foreground job of a
terminal (a background job of a non-interactive shell would ignore it). :func:`launch` starts
it in a process group of its own and returns the completed process.
"""

from __future__ import annotations

import functools
import importlib
import os
import runpy
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

HOOKS: dict[str, tuple[str, str, str]] = {
    # phase: (module, attribute path, "before" or "after" the call)
    "data": ("selfcross.data.datamodule", "FoldDataModule.setup", "before"),
    "fit": ("lightning.pytorch.callbacks", "ModelCheckpoint._save_checkpoint", "after"),
    "test": ("selfcross.models.module", "EmotionRecognizer.test_step", "before"),
    "record": ("selfcross.training.experiment", "write_record", "before"),
    "finished": ("selfcross.utils.signals", "finished", "after"),
    "table": ("selfcross.report.render", "save_report", "before"),
    "scoring": ("selfcross.analysis.ablation", "ablate_run", "before"),
    "measuring": ("selfcross.analysis.attention", "measure_attention", "before"),
    "trial": ("selfcross.models.module", "EmotionRecognizer.training_step", "before"),
    "extracting": ("selfcross.prepare.iemocap", "extract_features", "before"),
    "checking": ("selfcross.prepare.iemocap", "final_check", "before"),
}
"""Where each phase is reached. ``fit`` fires once the second epoch's ``last.ckpt`` is written
(so that a rerun has a checkpoint to resume from); the others at their first call."""


def _due(phase: str, args: tuple) -> bool:
    if phase != "fit":
        return True
    _checkpoint, trainer, filepath = args[:3]
    return Path(filepath).name == "last.ckpt" and trainer.current_epoch >= 1


def arm(phase: str, signum: int) -> None:
    """Replace the phase's function with one that sends ``signum`` to this process once."""
    module_name, dotted, when = HOOKS[phase]
    *owners, name = dotted.split(".")
    owner = importlib.import_module(module_name)
    for part in owners:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    fired = []

    def fire(args) -> None:
        if not fired and _due(phase, args):
            fired.append(True)
            os.kill(os.getpid(), signum)

    @functools.wraps(original)
    def hooked(*args, **kwargs):
        if when == "before":
            fire(args)
        result = original(*args, **kwargs)
        if when == "after":
            fire(args)
        return result

    setattr(owner, name, hooked)


def launch(phase: str, signame: str, module: str, *args: str, cwd: Path, timeout: int = 600):
    """``python -m module args`` in its own process group, ``signame`` armed at ``phase``."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", "PYTHONPATH": path}
    command = [sys.executable, "-m", "tests.faults.signalkit", phase, signame, module, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, start_new_session=True)  # fmt: skip


def main(argv: list[str]) -> None:
    phase, signame, module, *args = argv
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if phase != "none":
        arm(phase, getattr(signal, signame))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
