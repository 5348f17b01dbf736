"""A throwaway PostgreSQL server for the tests marked ``postgres`` (``scripts/postgres-local.sh``).

The session fixture starts it (initdb in a temporary folder as the unprivileged user
``nobody``, a Unix socket only, a password) and stops it at the end; the package is installed
with apt-get only when ``CI=true`` or ``SELFCROSS_POSTGRES_INSTALL=1``, otherwise its absence
skips the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import REPO, component_missing

SCRIPT = REPO / "scripts" / "postgres-local.sh"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}


class Server:
    """The running server: its URL, and stop/start for the tests that take it away."""

    def __init__(self, env: dict[str, str], url: str):
        self.env, self.url = env, url

    def stop(self) -> None:
        subprocess.run([str(SCRIPT), "stop"], env=self.env, check=True, capture_output=True)

    def start(self) -> None:
        subprocess.run([str(SCRIPT), "start"], env=self.env, check=True, capture_output=True)


@pytest.fixture(scope="session")
def postgres():
    install = os.environ.get("CI") == "true" or os.environ.get("SELFCROSS_POSTGRES_INSTALL") == "1"
    have = any(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or shutil.which("initdb")
    if not have and not (install and shutil.which("apt-get") and os.geteuid() == 0):
        component_missing(
            "PostgreSQL is not installed; install the Debian package postgresql or set "
            "SELFCROSS_POSTGRES_INSTALL=1 to let scripts/postgres-local.sh apt-get it"
        )
    state = Path(tempfile.mkdtemp(prefix="selfcross-pg-"))
    os.chmod(state, 0o755)
    state.rmdir()  # the script makes it, marked as its own
    env = {**os.environ, "PG_LOCAL_DIR": str(state), "PG_LOCAL_INSTALL": "1" if install else "0",
           "PG_LOCAL_PASSWORD": "pw-s3cret-x7"}  # fmt: skip
    proc = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    server = Server(env, proc.stdout.strip().splitlines()[-1])
    try:
        yield server
    finally:
        subprocess.run([str(SCRIPT), "clean"], env=env, capture_output=True)


def tune_command(study: Path, data_dir: Path, *extra: str) -> list[str]:
    """``python -m selfcross.tune`` on the tiny preset, one fold, short runs."""
    return [
        sys.executable, "-m", "selfcross.tune", "model=cross", "modality=TA",
        f"paths.data_dir={data_dir}", "data.preset=tiny", "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "tune.folds=[1]",
        f"hydra.sweep.dir={study}", "tune.heartbeat_s=1", "tune.grace_s=3", *extra,
    ]  # fmt: skip


def no_duplicate_settings(found) -> None:
    complete = [json.dumps(t.params, sort_keys=True) for t in found if t.state.is_finished()
                and t.state == TrialState.COMPLETE]  # fmt: skip
    assert len(complete) == len(set(complete)), complete


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the command ended ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
