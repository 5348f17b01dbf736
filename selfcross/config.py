"""Where the Hydra configs live, checks that run before any work, and one-line user errors."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from selfcross import (
    MODALITIES,
    fold_problem,
    fusion_problem,
    modality_problem,
    output_folder_problem,
    transformer_problem,
)
from selfcross.errors import ConfigError, DataError, Interrupted, JobFailed, SelfcrossError
from selfcross.manifest import FoldsManifest, conv_out_for, manifest_path, read_manifest
from selfcross.run_settings import check_class_set, check_run_settings
from selfcross.utils import atomic, hydra_files
from selfcross.utils.signals import interruptible

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"
"""The repository's ``conf/`` (selfcross is installed editable, next to it)."""

log = logging.getLogger("selfcross")


def compose(
    overrides: list[str] | None = None, config_name: str = "config", with_hydra: bool = False
) -> DictConfig:
    """The run configuration for ``overrides``, composed without starting a Hydra job.

    An unknown option or key raises :class:`ConfigError` with a one-line message (Hydra's own
    spans several lines and lists its search path).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException

    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3", job_name="selfcross"):
            return hydra_compose(
                config_name, overrides=list(overrides or []), return_hydra_config=with_hydra
            )
    except MissingConfigException as err:
        group, _, name = (err.missing_cfg_file or "").rpartition("/")
        if group and err.options:
            raise ConfigError(
                f"{group}={name}: no such option; choose one of {', '.join(err.options)}"
            ) from None
        raise ConfigError(first_paragraph(str(err))) from None
    except OverrideParseException as err:
        raise ConfigError(f"cannot parse {err.override!r}: {first_paragraph(str(err))}") from None
    except HydraException as err:
        raise ConfigError(first_paragraph(str(err))) from None


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """Set plain ``key=value`` overrides on a composed ``cfg`` in place, as a composition applies
    its overrides (Hydra's grammar for the value, merged into an existing key), so that a copy
    of one composition can stand for many without composing each (the tuning trials' runs).

    Config groups, sweeps and ``+``/``~`` overrides are refused: they need a composition.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    parser = OverridesParser.create()
    for line in overrides:
        try:
            override = parser.parse_override(line)
        except HydraException as err:
            raise ConfigError(f"cannot parse {line!r}: {first_paragraph(str(err))}") from None
        key = override.key_or_group
        group = (CONFIG_DIR / key.replace(".", "/")).is_dir()
        if override.type != OverrideType.CHANGE or override.is_sweep_override() or group:
            raise ConfigError(f"{line}: expected key=value (no config group, sweep, +, ++ or ~)")
        try:
            OmegaConf.update(cfg, key, override.value(), merge=True)
        except (ConfigAttributeError, ConfigKeyError):
            raise ConfigError(
                f"Could not override '{key}'. To append to your config use +{line}"
            ) from None


GROUPS = ("data", "model", "modality", "trainer", "callbacks", "logger", "experiment", "debug")
"""selfcross's own config groups (the folders of conf/)."""


def check_group_choices(argv: list[str]) -> None:
    """Reject ``group=option`` arguments naming no option, before Hydra composes anything.

    Hydra's own message for them spans several lines; this one is one line and also covers
    every value of a sweep list (``model=self,crosss``).
    """
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+")
        if key not in GROUPS or value.startswith(("choice(", "range(", "glob(")):
            continue
        options = sorted(p.stem for p in (CONFIG_DIR / key).glob("*.yaml"))
        for choice in value.split(","):
            choice = choice.strip()
            if choice not in options and choice != "null":
                raise ConfigError(
                    f"{key}={choice}: no such option; choose one of {', '.join(options)}"
                )


def model_fusion(model: str) -> str:
    """The fusion (``self``, ``cross``, ``cross_self``) of the model config ``model``, read from
    ``conf/model/<model>.yaml`` without composing (and without importing torch)."""
    path = CONFIG_DIR / "model" / f"{model}.yaml"
    if not path.is_file():
        raise ConfigError(f"model={model}: no such model config ({path})")
    return str(OmegaConf.load(path).network.fusion)


def check_overrides(argv: list[str]) -> DictConfig:
    """One-line errors for bad overrides, before Hydra's multi-line ones: unknown options of
    our groups (every value of a sweep list), anything that fails to compose (a sweep's first
    combination stands for all of them) and a sweep name that is not one folder name. Returns
    that first combination's configuration, with its ``hydra`` node."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    arguments = hydra_arguments(argv)
    argv = arguments.overrides if arguments is not None else [a for a in argv if a[:1] != "-"]
    check_group_choices(argv)
    try:
        overrides = OverridesParser.create().parse_overrides(argv)
    except OverrideParseException as err:
        raise ConfigError(first_paragraph(str(err))) from None
    first = []
    for override in overrides:
        if not override.is_sweep_override():
            first.append(override.input_line)
        elif override.is_discrete_sweep():
            value = next(iter(override.sweep_string_iterator()), None)
            if value is not None:
                first.append(f"{override.get_key_element()}={value}")
    cfg = compose(first, with_hydra=True)  # raises ConfigError with a one-line message
    check_sweep_name(cfg.get("sweep_name"))
    return cfg


def hydra_arguments(argv: list[str]):
    """``argv`` read as Hydra's own command line reads it (its flags, ``--cfg job``, ``-p KEY``,
    ``--info [WHAT]``, apart from the overrides), or None where Hydra itself answers (``--help``,
    ``--version``, a malformed flag). Reuses ``hydra._internal.utils.get_args_parser`` (no public
    equivalent; the version the sweeper names, ``TESTED_HYDRA``)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from hydra._internal.utils import get_args_parser

    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            return get_args_parser().parse_args(list(argv))
    except SystemExit:
        return None


def hydra_only_prints(arguments) -> bool:
    """Whether Hydra only prints (a config, its help or information) and runs no job."""
    return arguments is None or bool(
        arguments.cfg or arguments.info or arguments.help or arguments.hydra_help
        or arguments.shell_completion
    )  # fmt: skip


def shown_config(arguments, overrides: list[str]) -> str:
    """What Hydra's ``--cfg job|hydra|all`` (with ``-p KEY``, ``--resolve``) prints, for the
    commands that compose the run configuration without being a Hydra app (tune, check)."""
    cfg = compose(overrides, with_hydra=arguments.cfg != "job")
    package = arguments.package or ("hydra" if arguments.cfg == "hydra" else None)
    node, head = cfg, ""
    if package:
        node = OmegaConf.select(cfg, package, default=None)
        head = f"# @package {package}\n"
    if not OmegaConf.is_config(node):
        return f"{head}{node}"
    return head + OmegaConf.to_yaml(node, resolve=arguments.resolve).rstrip("\n")


def check_sweep_name(name) -> None:
    """``sweep_name`` becomes one folder under ``multirun/``: no separators, ``..`` or root."""
    text = str(name)
    if not text or text in (".", "..") or "/" in text or "\\" in text or Path(text).is_absolute():
        raise ConfigError(
            f"sweep_name={text}: must be a single folder name under multirun/ (no '/', '\\', "
            "'..' or absolute path)"
        )


def check_output_folder(key: str, folder) -> None:
    """A one-line ConfigError naming ``key=folder`` unless a run may write there (the rule is
    :func:`selfcross.output_folder_problem`)."""
    problem = output_folder_problem(folder)
    if problem is not None:
        raise ConfigError(
            f"{key}={folder}: {problem}; choose a folder of your own for the outputs"
        )


def first_paragraph(text: str) -> str:
    """Hydra's message up to its search-path listing, as one line."""
    lines = []
    for line in text.splitlines():
        if line.startswith("Config search path"):
            break
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines)


def validate(cfg: DictConfig, need_data: bool = True) -> None:
    """Reject configurations that cannot describe a valid experiment, before any work.

    ``need_data=False`` skips the checks of the data location (for model summaries).
    """
    try:
        check_class_set(cfg.data)
        manifest = root_manifest(cfg.data)
        n_folds = cfg.data.n_folds if manifest is None else manifest.n_folds
        problem = fold_problem(cfg.fold, n_folds)
        if problem is not None:
            source = "" if manifest is None else f" ({manifest_path(cfg.data.root)})"
            raise ConfigError(problem + source)
        if manifest is not None:
            check_against_manifest(cfg.data, manifest)
        preset = cfg.data.get("preset")
        if preset is not None and preset not in cfg.data_presets:
            raise ConfigError(
                f"data.preset={preset}: expected one of {', '.join(cfg.data_presets)}"
            )
        check_modalities(cfg.modality)
        check_run_settings(cfg)
        if "sweep_name" in cfg:
            check_sweep_name(cfg.sweep_name)
        problem = fusion_problem(cfg.model.network.fusion, list(cfg.modality.modalities))
        network = cfg.model.network
        if problem is None and network.get("transformer"):
            problem = transformer_problem(
                network.get("num_layers", 1), network.get("ffn_dim"), network.get("norm", "post")
            )
        if problem is not None:
            raise ConfigError(problem)
        if len(cfg.data.class_names) != cfg.data.num_classes:
            raise ConfigError(
                f"data.class_names has {len(cfg.data.class_names)} names for "
                f"data.num_classes={cfg.data.num_classes}"
            )
        if not need_data:
            return
        root = cfg.data.root
        if not cfg.data.get("synthetic") and not Path(root).is_dir():
            raise ConfigError(f"data.root={root}: no such directory")
    except MissingMandatoryValue as err:
        key = err.full_key or "a value"
        hint = ""
        if key == "data.root":
            hint = ": point it at the folder holding fold01 .. fold05 (data.root=/path/to/folds)"
        raise ConfigError(f"{key} is not set{hint}") from None


def root_manifest(data: DictConfig) -> FoldsManifest | None:
    """The manifest of ``data.root``; None without one, for an unset root and for synthetic data
    (whose configuration decides what the generator writes)."""
    if data.get("synthetic") or OmegaConf.is_missing(data, "root") or data.root is None:
        return None
    try:
        return read_manifest(data.root)
    except DataError as err:
        raise ConfigError(str(err)) from None


def check_against_manifest(data: DictConfig, manifest: FoldsManifest) -> None:
    """The models are sized from the folds the root holds: ``data.shapes`` takes the manifest's
    sequence lengths and feature sizes (``conv_out`` scaled by
    :func:`selfcross.manifest.conv_out_for`); the configured class names must be the folds'
    class ids."""
    path = manifest_path(data.root)
    with open_dict(data):
        for modality, shape in manifest.shapes.items():
            ours = data.shapes[modality]
            if "conv_out" in ours:
                ours.conv_out = conv_out_for(ours.conv_out, ours.seq_len, shape["seq_len"])
            ours.seq_len, ours.feat_dim = shape["seq_len"], shape["feat_dim"]
    held, asked = manifest.class_set_name, data.get("class_set")
    if held is not None and asked != held:  # a root written with a class set names it
        said = "data.root" if asked is None else f"class_set={asked}: data.root"
        raise ConfigError(f"{said} holds the folds of class set {held} ({path}): add "
                          f"class_set={held}, or use the full set's root")  # fmt: skip
    if asked is not None and held is None:  # the folds hold the full set; the map is checked
        return  # where it is built (selfcross.data.datasets.class_set_map)
    if tuple(data.class_names) != manifest.class_names:
        raise ConfigError(
            f"data.class_names=[{', '.join(data.class_names)}], but the folds' class ids are "
            f"[{', '.join(manifest.class_names)}] ({path})"
        )


def check_modalities(modality: DictConfig) -> None:
    """The modality subset (the rule is :func:`selfcross.modality_problem`), listed in the
    paper's order, and a name that is those letters (it goes into result.json and the tables)."""
    chosen = list(modality.modalities)
    shown = f"modality.modalities=[{', '.join(map(str, chosen))}]"
    problem = modality_problem(chosen)
    if problem is not None:
        raise ConfigError(f"{shown}: {problem}")
    in_order = [m for m in MODALITIES if m in chosen]
    if chosen != in_order:
        raise ConfigError(f"{shown}: list them in the paper's order, [{', '.join(in_order)}]")
    if modality.name != "".join(chosen):
        raise ConfigError(
            f"{shown} does not match modality.name={modality.name}: choose "
            f"modality={''.join(chosen)} instead of overriding the list"
        )


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


DISK_ERRORS = atomic.DISK_ERRORS
"""Storage errors a user fixes (a full disk, a quota, a read-only or forbidden folder)."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user-fixable error into one line on stderr and its exit status (2 by default).

    In a sweep job the line is logged and the job fails with :class:`JobFailed`, which the
    sweeper reports while the other jobs go on; an interrupted job stops the whole sweep.
    Unexpected errors keep their traceback in the job's log. ``HYDRA_FULL_ERROR=1`` keeps
    every traceback. SIGTERM and SIGINT within the block are :class:`Interrupted` naming the
    phase the command declared (:mod:`selfcross.utils.signals`): exit status 143 or 130, or 0
    with a line saying so when the work had already finished.
    """
    try:
        with interruptible():  # SIGTERM/SIGINT: Interrupted, naming the phase (utils/signals.py)
            yield
    except (SelfcrossError, OmegaConfBaseException) as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, OmegaConfBaseException):
            message = f"configuration: {message}"
        if in_multirun() and not isinstance(err, Interrupted):
            log.error(message)
            raise JobFailed(message) from None
        code = getattr(err, "exit_code", 2)
        print(f"error: {message}" if code else message, file=sys.stderr)  # 0: work was done
        sys.exit(code)
    except KeyboardInterrupt:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print("error: interrupted by Ctrl-C (SIGINT) before training; rerun the same command "
              "to start it again", file=sys.stderr)  # fmt: skip
        sys.exit(130)
    except BrokenPipeError:  # stdout's reader left (``--cfg job | head``): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # exit's flush fails too
        sys.exit(141)  # as a shell reports a process ended by SIGPIPE
    except OSError as err:
        if err.errno not in DISK_ERRORS or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = hydra_files.disk_message(err)
        if in_multirun():
            log.error(message)
            raise JobFailed(message) from None
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    except Exception:
        if in_multirun():
            log.exception("The job failed")
        raise


def resolved(cfg: DictConfig) -> dict:
    """The fully resolved configuration as plain data (for result files and loggers)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
