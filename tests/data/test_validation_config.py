"""Configuration errors: one line naming the setting and the problem, before any data is read,
from the commands (run, summary, check), and Hydra's list of options for an unknown choice.
"""

from __future__ import annotations

import sys

import pytest

from selfcross import check
from selfcross.config import compose, validate
from selfcross.errors import ConfigError
from tests.conftest import run_cli
from tests.helpers.checkkit import iemocap, run_check
from tests.helpers.foldkit import make_root


# -- configuration errors -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model=foo"],
            "error: model=foo: no such option; choose one of cross, cross_nosp, cross_self, "
            "cross_self_transformer, cross_transformer, self, self_nosp, self_transformer",
        ),
        (["modality=TX"],
            "error: modality=TX: no such option; choose one of A, T, TA, TV, TVA, V, VA"),
        (
            ["model=cross", "modality=A"],
            "error: a cross model needs at least two modalities, got A: cross-attention relates "
            "one modality to another",
        ),
        (["fold=6"], "error: fold=6: folds are numbered 1..5"),
        (["fold=0"], "error: fold=0: folds are numbered 1..5"),
        (
            ["data=iemocap"],
            "error: data.root is not set: point it at the folder holding fold01 .. fold05 "
            "(data.root=/path/to/folds)",
        ),
        (["data=iemocap", "data.root=/no/such/dir"],
            "error: data.root=/no/such/dir: no such directory"),
        (["data.preset=huge"], "error: data.preset=huge: expected one of paper, small, tiny"),
        (["data.nope=1"],
            "error: Could not override 'data.nope'. To append to your config use +data.nope=1"),
    ],
    ids=["model", "modality", "cross-one", "fold-6", "fold-0", "no-root", "bad-root", "preset",
         "key"],
)  # fmt: skip
def test_config_errors_are_one_line(capsys, overrides, message):
    status, out = run_check(capsys, *overrides)
    assert status == 2
    assert out.strip().splitlines() == [message]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.max_epochs=0"], "trainer.max_epochs=0: must be at least 1"),
        (["trainer.max_epochs=-3"], "trainer.max_epochs=-3: must be at least 1"),
        (["modality.modalities=[T,T]"], "modality.modalities=[T, T]: a modality is listed twice"),
        (["modality=TA", "modality.modalities=[A,T]"],
            "modality.modalities=[A, T]: list them in the paper's order, [T, A]"),
        (["modality.modalities=[T,V]"],
            "modality.modalities=[T, V] does not match modality.name=TVA: choose modality=TV "
            "instead of overriding the list"),
        (["modality.modalities=[T,X]"], "modality.modalities=[T, X]: choose a non-empty subset "
            "of T, V, A"),
        (["seed=-1"], "seed=-1: must be 0..4294967295"),
        (["seed=4294967296"], "seed=4294967296: must be 0..4294967295"),
        (["data.batch_size=0"], "data.batch_size=0: must be at least 1"),
        (["model.network.hidden=0"], "model.network.hidden=0: must be at least 1"),
        (["model.network.num_heads=7"],
            "model.network.num_heads=7 does not divide the attention width 2 * "
            "model.network.hidden = 120"),
    ],
)  # fmt: skip
def test_run_settings_are_refused_before_data_is_read(make_cfg, overrides, message):
    cfg = make_cfg(*overrides, "data=iemocap", "data.root=/no/such/dir")
    with pytest.raises(ConfigError) as caught:  # raised before data.root is even looked at
        validate(cfg)
    assert str(caught.value) == message


def test_edge_run_settings_are_accepted(make_cfg):
    validate(make_cfg("seed=0", "trainer.max_epochs=1", "data.batch_size=1",
                      "model.network.num_heads=4", "model.network.hidden=2"))  # fmt: skip
    validate(make_cfg("seed=4294967295", "modality=TA"))


def test_validate_rejects_bad_folds_and_missing_root(make_cfg):
    for fold in (0, 6):
        with pytest.raises(ConfigError, match=rf"^fold={fold}: folds are numbered 1..5$"):
            validate(make_cfg(f"fold={fold}"))
    with pytest.raises(ConfigError, match="^data.root is not set"):
        validate(make_cfg("data=iemocap"))
    validate(make_cfg("data=iemocap"), need_data=False)  # model summaries need no data


def test_full_error_keeps_the_exception(monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError, match="^model=foo: no such option"):
        check.main(["model=foo"])


def test_summary_gets_the_same_one_line_error(capsys):
    from selfcross import summary

    with pytest.raises(SystemExit) as caught:
        summary.main(["modality=TVX"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: modality=TVX: no such option; choose one of A, T, TA, TV, TVA, V, VA"
    )


def test_compose_names_an_unparsable_override():
    with pytest.raises(ConfigError, match=r"^cannot parse 'fold=1=2': mismatched input"):
        compose(["fold=1=2"])


def test_run_reports_an_unknown_model_with_hydras_list_of_options(monkeypatch, capsys):
    """selfcross.run keeps Hydra's own message: it names the option and lists the choices."""
    from selfcross import run

    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.setattr(sys, "argv", ["selfcross.run", "model=foo"])
    with pytest.raises(SystemExit) as caught:
        run.main()
    err = capsys.readouterr().err
    assert caught.value.code == 1
    assert "Could not find 'model/foo'" in err
    assert "Available options in 'model':\n\tcross\n\tcross_nosp\n\tcross_self\n" in err
    assert "Traceback" not in err


def test_check_cli_exit_status_and_no_traceback(tmp_path):
    root = tmp_path / "folds"
    make_root(root, folds=(1, 2, 3, 4, 5))
    (root / "fold05" / "W_embedding.npy").write_bytes(b"not an array")
    proc = run_cli("selfcross.check", *iemocap(root))
    assert proc.returncode == 2, proc.stderr
    assert (
        f"error: {root / 'fold05' / 'W_embedding.npy'}: is not a .npy file "
        "(starts with b'not an')" in proc.stdout.splitlines()
    )
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "4 of 5 folds valid; 1 problem(s), 0 warning(s)"
