"""Data: the processed-fold reader, the synthetic generator and the LightningDataModule."""

from selfcross.data.datamodule import DEFAULT_CLASS_NAMES, IemocapDataModule, SplitTensors
from selfcross.data.folds import FoldData, FoldReader, ReaderOptions, fold_dir
from selfcross.data.synthetic import SyntheticSpec, ensure_synthetic

__all__ = [
    "DEFAULT_CLASS_NAMES",
    "FoldData",
    "FoldReader",
    "IemocapDataModule",
    "ReaderOptions",
    "SplitTensors",
    "SyntheticSpec",
    "ensure_synthetic",
    "fold_dir",
]
