"""selfcross: cross-attention vs self-attention for multi-modal emotion recognition."""

import fnmatch
import numbers
import os
from pathlib import Path

__version__ = "0.1.0"

MODALITIES = ("T", "V", "A")
"""Text, vision, audio: the paper's order, used for every ordered iteration over modalities."""

FUSIONS = ("self", "cross", "cross_self")
"""How a network relates its modality streams: self-attention per modality, cross-attention per
ordered pair of modalities, or both sets over shared encoders."""


def fusion_problem(fusion: str, modalities) -> str | None:
    """Why a ``fusion`` network cannot be built over ``modalities``, or None if it can.

    The one statement of the rule that cross-attention needs two modalities: networks, config
    validation, sweeps, tables and the benchmark all ask here.
    """
    if fusion not in FUSIONS:
        return f"fusion={fusion!r}: expected one of {', '.join(FUSIONS)}"
    if fusion != "self" and len(modalities) < 2:
        return (
            f"a {fusion} model needs at least two modalities, got {''.join(modalities)}: "
            "cross-attention relates one modality to another"
        )
    return None


def modality_problem(modalities) -> str | None:
    """Why ``modalities`` is no modality subset, or None if it is: a non-empty set of distinct
    letters of T, V, A (a string such as ``"TA"`` or a sequence of letters; any order).

    The one statement of the rule: config validation, the data module, the network and the
    benchmark all ask here, each naming what it was given before the reason.
    """
    chosen = list(modalities)
    if not chosen or set(chosen) - set(MODALITIES):
        return "choose a non-empty subset of T, V, A"
    if len(set(chosen)) != len(chosen):
        return "a modality is listed twice"
    return None


def fold_problem(fold, n_folds: int) -> str | None:
    """Why ``fold`` names no fold of a dataset with ``n_folds`` folds, or None if it does: folds
    are the integers 1..n_folds (a bool is no fold number).

    The one statement of the rule: config validation, the data module and the tuning folds all
    ask here.
    """
    number = isinstance(fold, numbers.Integral) and not isinstance(fold, bool)
    if not number or not 1 <= fold <= n_folds:
        return f"fold={fold}: folds are numbered 1..{n_folds}"
    return None


NORMS = ("post", "pre")
"""LayerNorm placement of the transformer-encoder layers (selfcross.models.transformer)."""


def transformer_problem(num_layers, ffn_dim, norm) -> str | None:
    """Why no transformer-encoder stack can be built with these settings, or None if it can
    (asked by the network and, before any work, by config validation)."""
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        return f"model.network.num_layers={num_layers!r}: expected an integer >= 1"
    if ffn_dim is not None and (
        isinstance(ffn_dim, bool) or not isinstance(ffn_dim, int) or ffn_dim < 1
    ):
        return f"model.network.ffn_dim={ffn_dim!r}: expected an integer >= 1 (or null: 4E)"
    if norm not in NORMS:
        return f"model.network.norm={norm!r}: expected one of {', '.join(NORMS)}"
    return None


SYSTEM_FOLDERS = ("bin", "boot", "dev", "etc", "lib*", "proc", "sbin", "sys", "usr", "var")
"""Top-level folders of the system (``lib*``: lib, lib32, lib64, ...) that no run writes into."""


def output_folder_problem(folder) -> str | None:
    """Why ``folder`` cannot be a run's or a sweep's output folder, or None if it can: the
    root, an existing file (or a folder inside one), or a folder inside a system folder
    (:data:`SYSTEM_FOLDERS`), judged after resolving symbolic links and ``..``.

    The one statement of the rule: the run command, the sweeper, the tuning study and every
    run's ``paths.output_dir`` ask here before anything is written. Write permission is no
    guard (on a cluster node or in a container the user is often root).
    """
    path = Path(os.path.realpath(Path(folder).expanduser()))
    if path == Path(path.anchor):
        return "is the file system's root"
    for place in (path, *path.parents):
        if place.exists() and not place.is_dir():
            return "is an existing file" if place == path else f"is inside the file {place}"
    top = path.parts[1]
    if any(fnmatch.fnmatchcase(top, name) for name in SYSTEM_FOLDERS):
        return f"is inside the system folder /{top}"
    return None
