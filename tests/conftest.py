"""Shared fixtures: configs composed from the real conf/, forced to CPU, no logger, tmp paths."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfcross.config import compose

REPO = Path(__file__).resolve().parent.parent

# Paper shapes, written out here independently of conf/ so that a config change that alters the
# architecture fails the parameter-count tests.
PAPER_SHAPES = {
    "T": {"seq_len": 128, "feat_dim": 300, "conv_out": None},
    "V": {"seq_len": 32, "feat_dim": 2048, "conv_out": 25},
    "A": {"seq_len": 1000, "feat_dim": 120, "conv_out": 500},
}
SMALL_SHAPES = {
    "T": {"seq_len": 7, "feat_dim": 11, "conv_out": None},
    "V": {"seq_len": 6, "feat_dim": 13, "conv_out": 4},
    "A": {"seq_len": 10, "feat_dim": 9, "conv_out": 5},
}


def base_overrides(tmp: Path) -> list[str]:
    return [
        f"paths.output_dir={tmp / 'out'}",
        f"paths.data_dir={tmp / 'data'}",
        "logger=none",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
    ]


@pytest.fixture
def make_cfg(tmp_path):
    """compose(overrides) with outputs and data under tmp_path."""

    def factory(*overrides: str):
        return compose([*base_overrides(tmp_path), *overrides])

    return factory


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One synthetic data directory shared by the whole session (generated on demand).

    ``SELFCROSS_TEST_DATA=<folder>`` keeps it across sessions instead: `make mutation` runs a
    new test session per mutant, and regenerating the data each time would cost more than the
    tests (never set it when mutating the data generator itself)."""
    kept = os.environ.get("SELFCROSS_TEST_DATA")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
        return Path(kept)
    return tmp_path_factory.mktemp("data")


def pytest_configure(config) -> None:
    """The suite runs as from a terminal: Ctrl-C (SIGINT) at Python's default handler. Started
    as a background job of a script (``make test &`` in a non-interactive shell), pytest and
    every command a test starts would inherit SIGINT ignored, and the tests of Ctrl-C would
    fail; the commands keep an ignored SIGINT ignored on purpose (utils/signals.py)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def component_missing(reason: str) -> None:
    """A real component (SLURM, PostgreSQL) that its suite cannot start: under CI (``CI=true``,
    where ``.ci/run`` installs them) that is a failure, never a skip, so CI cannot pass without
    running the suite; on a developer's machine the suite is skipped with the reason."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


SLURM_SCRIPT = REPO / "scripts" / "slurm-local.sh"
SLURM_PARTITION = "debug"
"""The local SLURM cluster's one partition."""


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running local cluster (``scripts/slurm-local.sh``, marked ``slurm`` tests); yields the
    environment that reaches it."""
    if os.geteuid() != 0:
        component_missing(
            "the local SLURM cluster needs root (slurmd); run `sudo make test-slurm`"
        )
    install = os.environ.get("CI") == "true" or os.environ.get("SELFCROSS_SLURM_INSTALL") == "1"
    have = all(shutil.which(p, path=os.environ["PATH"] + ":/usr/sbin:/sbin")
               for p in ("slurmctld", "slurmd", "munged", "sbatch"))  # fmt: skip
    if not have and not (install and shutil.which("apt-get")):
        component_missing(
            "SLURM is not installed (slurmctld, slurmd, slurm-client, munge); install them or "
            "set SELFCROSS_SLURM_INSTALL=1 to let scripts/slurm-local.sh apt-get them"
        )
    env = {
        **os.environ,
        "SLURM_LOCAL_DIR": os.environ.get("SLURM_LOCAL_DIR", "/tmp/selfcross-slurm-tests"),
        "SLURM_LOCAL_PORT": os.environ.get("SLURM_LOCAL_PORT", "16817"),
        "SLURM_LOCAL_PARTITION": SLURM_PARTITION,
        "SLURM_LOCAL_INSTALL": "1" if install else "0",
    }
    subprocess.run([str(SLURM_SCRIPT), "stop"], env=env, capture_output=True)  # a leftover cluster
    started = time.monotonic()
    proc = subprocess.run([str(SLURM_SCRIPT), "start"], env=env, capture_output=True, text=True)
    if proc.returncode != 0 and "apt-get install" in proc.stderr:
        component_missing(f"the SLURM packages could not be installed: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    print(f"\nlocal SLURM cluster up in {time.monotonic() - started:.1f} s: "
          f"{proc.stderr.strip().splitlines()[-1]}")  # fmt: skip
    conf = proc.stdout.strip().removeprefix("export SLURM_CONF=")
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf  # run_cli passes os.environ to the driver, sbatch to jobs
    try:
        yield env | {"SLURM_CONF": conf}
    finally:
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved
        subprocess.run([str(SLURM_SCRIPT), "stop"], env=env, capture_output=True)


def run_cli(module: str, *args: str, cwd: Path | None = None, timeout: int = 600):
    """Run ``python -m module args`` as a user would; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
