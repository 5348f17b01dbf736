"""The command-line entry points, run as a user runs them."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_run_end_to_end_writes_result(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "selfcross.run",
        "debug=fast",
        "model=cross",
        "modality=TA",
        "fold=2",
        "seed=3",
        "logger=none",
        "trainer.accelerator=cpu",
        f"paths.data_dir={tmp_path / 'data'}",
        f"hydra.run.dir={out}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert (result["model"], result["modality"], result["fold"], result["seed"]) == (
        "cross",
        "TA",
        2,
        3,
    )
    assert 0 <= result["test_wa"] <= 1 and 0 <= result["test_uwa"] <= 1
    assert result["epochs"] == 3 and 1 <= result["best_epoch"] <= 3
    last = [line for line in proc.stdout.splitlines() if line.startswith("test WA")]
    assert last and f"UWA {result['test_uwa']:.3f}" in last[0]
    assert (out / "checkpoints" / "best.ckpt").is_file()


def test_cross_on_one_modality_is_a_one_line_config_error(tmp_path):
    proc = run_cli("selfcross.run", "model=cross", "modality=A", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: a cross model needs at least two modalities, got A: "
        "cross-attention relates one modality to another"
    )
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "result.json").exists()


def test_missing_data_root_is_a_one_line_config_error(tmp_path):
    proc = run_cli("selfcross.run", "data=iemocap", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert "error: data.root is not set" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_fold_file_names_the_file(tmp_path):
    from tests.helpers.foldkit import make_fold

    make_fold(tmp_path / "folds" / "fold01")
    (tmp_path / "folds" / "fold01" / "dev_video.npy").unlink()
    proc = run_cli(
        "selfcross.run",
        "data=iemocap",
        f"data.root={tmp_path / 'folds'}",
        "data.shapes.T.seq_len=6", "data.shapes.T.feat_dim=5",
        "data.shapes.V.seq_len=4", "data.shapes.V.feat_dim=3", "data.shapes.V.conv_out=2",
        "data.shapes.A.seq_len=8", "data.shapes.A.feat_dim=2", "data.shapes.A.conv_out=4",
        f"hydra.run.dir={tmp_path / 'out'}",
    )  # fmt: skip
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line == f"error: {tmp_path / 'folds' / 'fold01' / 'dev_video.npy'}: file is missing"


def test_summary_prints_paper_size_parameter_count():
    proc = run_cli("selfcross.summary", "model=cross", "modality=TVA", "data.preset=paper")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["n_params"] == 1_820_132
    assert info["parts"]["cross_attention"] == 6 * 58_080
    assert "cross_attention" in proc.stdout and "encoders" in proc.stdout  # the layer table


def test_summary_needs_no_data(tmp_path):
    proc = run_cli(
        "selfcross.summary", "data=iemocap", "model=self_nosp", "modality=TA", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    # text GRU 130,320 + audio conv 500,500 + GRU 65,520 + 2 MHAs + Linear(240, 60) + Linear(60, 7)
    assert info["n_params"] == 130_320 + 500_500 + 65_520 + 2 * 58_080 + 14_460 + 427
    assert not any(tmp_path.iterdir())  # nothing written


def test_unknown_option_is_a_one_line_error_also_in_a_sweep(tmp_path):
    proc = run_cli("selfcross.run", "-m", "model=self,crosss", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: model=crosss: no such option; choose one of cross, cross_nosp, cross_self, "
        "cross_self_transformer, cross_transformer, self, self_nosp, self_transformer"
    )
    assert not any(tmp_path.iterdir())


def test_key_typos_are_caught_before_hydra_in_runs_and_sweeps():
    import pytest

    from selfcross.config import check_overrides
    from selfcross.errors import ConfigError

    for argv in (["trainer.max_epoch=3"], ["-m", "trainer.max_epoch=3", "seed=1,2"]):
        with pytest.raises(ConfigError, match=r"Could not override 'trainer.max_epoch'"):
            check_overrides(argv)
    check_overrides(["-m", "model=self,cross", "modality=TV", "seed=range(1,11)"])  # valid


def test_a_full_disk_is_one_line_and_other_errors_keep_their_traceback(capsys, tmp_path):
    import errno
    import re

    import pytest

    from selfcross.config import user_errors

    target = tmp_path / "x" / "result.json"  # a library's write: the file and the free space
    with pytest.raises(SystemExit) as exit_info:
        with user_errors():
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
    assert exit_info.value.code == 2
    assert re.fullmatch(
        rf"error: cannot write {re.escape(str(target))}: No space left on device "
        rf"\(\d+(\.\d)? [KMGT]?i?B free on {re.escape(str(tmp_path))}\)\n",
        capsys.readouterr().err,
    )
    with pytest.raises(OSError, match="Connection reset"):  # not a storage problem: unchanged
        with user_errors():
            raise OSError(errno.ECONNRESET, "Connection reset")
