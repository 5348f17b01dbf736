"""Data: the processed fold format and its reader, validation, the synthetic generator, the
processed-fold cache and the LightningDataModule.

The data path: :mod:`~selfcross.data.npy` (raw ``.npy`` files) -> :mod:`~selfcross.data.reader`
(checks, with :mod:`~selfcross.data.preprocess`; what it returns: :mod:`~selfcross.data.fold`)
-> :mod:`~selfcross.data.cache` -> :mod:`~selfcross.data.datamodule`.
:mod:`~selfcross.data.validate` runs every check on all folds (``selfcross.check``), with
:mod:`~selfcross.data.feature_stats` and :mod:`~selfcross.data.check_report`;
:mod:`~selfcross.data.datasets` reads a dataset's facts from ``conf/data/<name>.yaml``;
:mod:`~selfcross.data.fingerprint` names a fold's contents, :mod:`~selfcross.data.sanity` warns
about usable but suspicious data, :mod:`~selfcross.data.synthetic` writes the synthetic folds.
"""

from selfcross.data.fold import FoldData, ReaderOptions
from selfcross.data.npy import fold_dir
from selfcross.data.reader import FoldReader
from selfcross.data.synthetic import SyntheticSpec, ensure_synthetic

__all__ = [
    "FoldData",
    "FoldDataModule",
    "FoldReader",
    "IemocapDataModule",
    "ReaderOptions",
    "SplitTensors",
    "SyntheticSpec",
    "ensure_synthetic",
    "fold_dir",
]

_DATAMODULE = ("FoldDataModule", "IemocapDataModule", "SplitTensors")
"""Imported on first use: the data module needs torch and Lightning, which the light modules of
this package (facts, inputs, manifests read by the report) must not pull in."""


def __getattr__(name: str):
    if name in _DATAMODULE:
        from selfcross.data import datamodule

        return getattr(datamodule, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
