"""selfcross: cross-attention vs self-attention for multi-modal emotion recognition."""

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


def fold_problem(fold, n_folds: int) -> str | None:
    """Why ``fold`` names no fold of data with ``n_folds`` folds (fold01 .. foldNN), or None.

    The one statement of the fold range: config validation, the data module and the sweeps ask
    here, with the number of folds of the data root's manifest when it has one.
    """
    if isinstance(fold, bool) or not isinstance(fold, int) or not 1 <= fold <= n_folds:
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
