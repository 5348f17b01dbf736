"""selfcross: cross-attention vs self-attention for multi-modal emotion recognition."""

__version__ = "0.1.0"

MODALITIES = ("T", "V", "A")
"""Text, vision, audio: the paper's order, used for every ordered iteration over modalities."""
