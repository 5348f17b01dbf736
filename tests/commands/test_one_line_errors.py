"""Bad settings are one line naming the setting, exit status 2, before any training and before
Hydra creates a folder; Hydra's own flags work as in any Hydra app."""

from __future__ import annotations

import pytest

from selfcross.config import validate
from selfcross.errors import ConfigError
from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.optimizer.lr=0", "model.optimizer.lr=0: must be greater than 0"),
        ("model.optimizer.lr=-0.001", "model.optimizer.lr=-0.001: must be greater than 0"),
        ("model.optimizer.lr=fast", "model.optimizer.lr=fast: expected a number"),
        ("model.network.attn_dropout=1.5",
         "model.network.attn_dropout=1.5: expected a probability in [0, 1)"),
        ("model.network.attn_dropout=1.0",
         "model.network.attn_dropout=1.0: expected a probability in [0, 1)"),
        ("model.network.input_dropout.T=-0.1",
         "model.network.input_dropout.T=-0.1: expected a probability in [0, 1)"),
        ("model.network.input_dropout.A=1",
         "model.network.input_dropout.A=1: expected a probability in [0, 1)"),
        ("model.modality_dropout=1.0",
         "model.modality_dropout=1.0: expected a probability in [0, 1)"),
        ("model.modality_dropout=nan",
         "model.modality_dropout=nan: expected a finite number"),
    ],
)  # fmt: skip
def test_learning_rate_and_dropouts_are_checked_before_any_work(make_cfg, override, message):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(override))
    assert str(err.value) == message


def test_edge_values_are_accepted(make_cfg):
    edges = ("model.optimizer.lr=1e-9", "model.network.attn_dropout=0",
             "model.network.input_dropout.T=0.999", "model.modality_dropout=0.5")  # fmt: skip
    validate(make_cfg(*edges))


def test_a_refused_run_is_one_line_and_leaves_no_folder(tmp_path):
    """The default run folder (outputs/<date>/<time>_...) is not created for a run refused for
    its configuration: before, Hydra had written .hydra/ there before the check ran."""
    for args in (["model.network.attn_dropout=1.5"], ["model=cross", "modality=A"]):
        proc = run_cli("selfcross.run", *args, "logger=none", cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("error: ")
        assert list(tmp_path.iterdir()) == []
    proc = run_cli("selfcross.run", "model.modality_dropout=1", "logger=none", cwd=tmp_path)
    assert proc.stderr == "error: model.modality_dropout=1: expected a probability in [0, 1)\n"
    assert proc.returncode == 2 and list(tmp_path.iterdir()) == []


def test_hydras_own_flags_print_without_running(tmp_path):
    """``--cfg``, ``-p``, ``--resolve`` and ``--info`` as in any Hydra app (before, the
    overrides check read ``job`` of ``--cfg job`` as an override and refused it)."""
    cases = {
        ("--cfg", "job", "-p", "model.optimizer", "model.optimizer.lr=0.01"): "lr: 0.01",
        ("--cfg", "hydra", "-p", "hydra.job.name"): "run",
        ("--cfg", "all", "-p", "fold", "fold=3"): "3",
        ("--resolve", "--cfg", "job", "-p", "model.network.num_classes"): "7",
        ("--info", "defaults"): "model/self",
    }
    for args, expected in cases.items():
        proc = run_cli("selfcross.run", *args, cwd=tmp_path)
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
        assert expected in proc.stdout, (args, proc.stdout[-2000:])
    proc = run_cli("selfcross.run", "--cfg", "job", "model=crosss", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: model=crosss: no such option")
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing written


def test_the_commands_that_compose_a_run_print_it_with_hydras_flags(tmp_path):
    """tune, check and summary are not Hydra apps, but take a run's overrides: ``--cfg``, ``-p``
    and ``--resolve`` print what they would compose (before, tune read ``--cfg`` as an override
    and check ran its checks)."""
    cases = {
        ("selfcross.tune", "--cfg", "job", "-p", "tune.folds", "tune.folds=[2,3]"):
            "# @package tune.folds\n- 2\n- 3\n",
        ("selfcross.tune", "--cfg", "hydra", "-p", "hydra.sweep.dir", "model=cross"):
            "# @package hydra.sweep.dir\nmultirun/tune-synthetic-small-cross-TVA\n",
        ("selfcross.check", "--cfg", "all", "-p", "fold", "fold=4"): "# @package fold\n4\n",
        ("selfcross.summary", "--resolve", "--cfg", "job", "-p", "model.network.num_classes"):
            "# @package model.network.num_classes\n7\n",
    }  # fmt: skip
    for (module, *args), expected in cases.items():
        proc = run_cli(module, *args, cwd=tmp_path)
        assert (proc.returncode, proc.stdout) == (0, expected), (args, proc.stderr[-2000:])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module", ["selfcross.tune", "selfcross.check", "selfcross.summary"])
def test_a_reader_that_leaves_early_gets_no_traceback(module):
    """``python -m selfcross.tune --cfg job | head -1``: the pipe closes before the command has
    printed; it ends quietly with a shell's SIGPIPE status (141), not a BrokenPipeError."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.Popen([sys.executable, "-m", module, "--cfg", "job"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    proc.stdout.close()  # the reader is gone before the first line
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141, stderr
    assert stderr == ""
