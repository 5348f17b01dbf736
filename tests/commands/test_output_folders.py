"""Run and sweep folders: the root, an existing file and the system's folders are refused in one
line with exit status 2 before anything is written (selfcross.output_folder_problem, asked by
the run command, the sweeper, the tuning study and every run's paths.output_dir)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from selfcross import output_folder_problem
from selfcross.errors import ConfigError
from tests.conftest import run_cli


def test_the_rule_judges_the_resolved_folder(tmp_path):
    """Fails on the code before issue 23: there was no such rule."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "to_etc").symlink_to("/etc")
    (tmp_path / "to_root").symlink_to("/")
    refused = {
        "/": "is the file system's root",
        str(tmp_path / "to_root"): "is the file system's root",
        str(afile): "is an existing file",
        str(afile / "sub"): f"is inside the file {afile}",
        "/etc/selfcross": "is inside the system folder /etc",
        str(tmp_path / "to_etc" / "run"): "is inside the system folder /etc",
        f"{tmp_path}/../../../../../../../../proc/x": "is inside the system folder /proc",
        "/var/tmp/run": "is inside the system folder /var",
        "/sys/x": "is inside the system folder /sys",
        "/boot": "is inside the system folder /boot",
    }
    for folder, problem in refused.items():
        assert output_folder_problem(folder) == problem, folder
    for top in ("bin", "dev", "sbin", "usr"):
        assert output_folder_problem(f"/{top}/x") is not None, top
    assert output_folder_problem("/lib64/x") is not None and output_folder_problem("/lib/x")
    for allowed in (tmp_path / "run", tmp_path, Path("multirun/x"), Path("outputs")):
        assert output_folder_problem(allowed) is None, allowed


def test_a_run_never_writes_into_a_refused_paths_output_dir(make_cfg, tmp_path):
    """paths.output_dir (set directly, or by a tuned setting) is judged by the same rule."""
    from selfcross.training.experiment import train_and_test

    target = Path("/etc") / f"selfcross-refused-{tmp_path.name}"
    (tmp_path / "to_etc").symlink_to("/etc")
    cfg = make_cfg("debug=fast", f"paths.output_dir={tmp_path / 'to_etc' / target.name}")
    try:
        with pytest.raises(ConfigError, match=r"paths.output_dir=.* the system folder /etc"):
            train_and_test(cfg)
        assert not target.exists()
    finally:
        shutil.rmtree(target, ignore_errors=True)


def one_line(done) -> str:
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_a_sweep_into_the_root_writes_nothing(tmp_path):
    """Fails on the code before issue 23: hydra.sweep.dir=/ wrote /multirun.yaml and its jobs'
    folders. (Should it regress, what it wrote is removed again.)"""
    job = Path("/selfcross-refused-job")
    before = Path("/multirun.yaml").exists(), job.exists()
    try:
        done = run_cli(
            "selfcross.run", "-m", "hydra.sweep.dir=/", f"hydra.sweep.subdir={job.name}",
            "debug=fast", "logger=none", "trainer.max_epochs=1", f"paths.data_dir={tmp_path}",
        )  # fmt: skip
        assert one_line(done) == (
            "error: hydra.sweep.dir=/: is the file system's root; choose a folder of your own "
            "for the outputs"
        )
        assert (Path("/multirun.yaml").exists(), job.exists()) == before
    finally:
        if not before[0]:
            Path("/multirun.yaml").unlink(missing_ok=True)
        if not before[1] and job.exists():
            shutil.rmtree(job)


def test_a_run_into_an_existing_file_or_a_system_folder_writes_nothing(tmp_path):
    """Fails on the code before issue 23: a run folder that is a file gave a traceback; one
    inside /var (here through a symbolic link and ..) was written."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    data = f"paths.data_dir={tmp_path / 'data'}"
    line = one_line(run_cli("selfcross.run", f"hydra.run.dir={afile}", "debug=fast", data))
    assert line == (
        f"error: hydra.run.dir={afile}: is an existing file; choose a folder of your own for "
        "the outputs"
    )
    assert afile.read_text() == "mine"
    (tmp_path / "link").symlink_to("/var/tmp")
    target = Path("/var/tmp") / f"selfcross-refused-{tmp_path.name}"
    try:
        folder = f"{tmp_path}/../{tmp_path.name}/link/{target.name}"
        line = one_line(run_cli("selfcross.run", f"hydra.run.dir={folder}", "debug=fast", data,
                                "logger=none", "trainer.max_epochs=1"))  # fmt: skip
        assert line.endswith("is inside the system folder /var; choose a folder of your own for "
                             "the outputs")  # fmt: skip
        assert not target.exists()
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_a_sweeps_job_folder_and_a_study_folder_are_judged_too(tmp_path):
    """The sweeper judges every job's folder (a subdir climbing out with ..), the tuning command
    its study folder. Fails on the code before issue 23. (Should it regress, what it wrote is
    removed again.)"""
    sweep = tmp_path / "sweep"
    job = Path("/etc") / f"selfcross-refused-{tmp_path.name}"
    study = Path("/usr") / f"selfcross-refused-{tmp_path.name}"
    climb = "/".join([".."] * (len(sweep.parts) + 1)) + str(job)
    (tmp_path / "link").symlink_to("/usr")
    linked = tmp_path / "link" / study.name
    data = f"paths.data_dir={tmp_path / 'data'}"
    try:
        done = run_cli("selfcross.run", "-m", f"hydra.sweep.dir={sweep}",
                       f"hydra.sweep.subdir={climb}", "debug=fast", "logger=none",
                       "trainer.max_epochs=1", data)  # fmt: skip
        assert "is inside the system folder /etc" in one_line(done)
        assert not job.exists() and not (sweep / "multirun.yaml").exists()
        done = run_cli("selfcross.tune", "model=cross", "modality=TA",
                       f"hydra.sweep.dir={linked}", "debug=fast", "trainer.max_epochs=1",
                       "tune.n_trials=1", "tune.folds=[1]", data)  # fmt: skip
        assert one_line(done) == (
            f"error: hydra.sweep.dir={linked}: is inside the system folder /usr; choose a folder "
            "of your own for the outputs"
        )
        assert not study.exists()
    finally:
        shutil.rmtree(job, ignore_errors=True)
        shutil.rmtree(study, ignore_errors=True)
