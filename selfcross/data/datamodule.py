"""The LightningDataModule of processed folds (any dataset): one fold, any subset of modalities,
real or synthetic."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from selfcross import MODALITIES, fold_problem, modality_problem
from selfcross.data.cache import load_fold
from selfcross.data.datasets import class_set_map
from selfcross.data.fold import FoldData, ReaderOptions
from selfcross.data.npy import SPLITS, fold_dir
from selfcross.data.synthetic import SyntheticSpec, ensure_synthetic
from selfcross.errors import ConfigError
from selfcross.manifest import read_manifest, root_n_folds

log = logging.getLogger(__name__)


class SplitTensors(Dataset):
    """One split as contiguous tensors; a batch is gathered with one index per tensor.

    ``__getitems__`` lets the DataLoader fetch a whole batch at once instead of collating
    per-utterance items. Text given as token ids is looked up in the GloVe matrix here, so the
    fold never holds the [N, 128, 300] text tensor.

    A batch is ``{modality: features, "label": [B], "lengths": {modality: [B] int64}}``:
    ``lengths`` holds each utterance's valid frames (padding follows them), on the batch's
    device; it is present whenever the split was given ``lengths``.
    """

    def __init__(
        self,
        features: dict[str, torch.Tensor],
        labels: torch.Tensor,
        embedding=None,
        lengths: dict[str, torch.Tensor] | None = None,
    ):
        self.features = features
        self.labels = labels
        self.embedding = embedding
        self.lengths = lengths or {}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long, device=self.labels.device)
        batch = {m: x.index_select(0, index) for m, x in self.features.items()}
        if self.embedding is not None and "T" in batch and batch["T"].dtype == torch.long:
            batch["T"] = torch.nn.functional.embedding(batch["T"], self.embedding)
        for m, x in batch.items():
            if x.is_floating_point() and x.dtype != torch.float32:
                batch[m] = x.float()  # a fold stored in half precision on the GPU
        batch["label"] = self.labels.index_select(0, index)
        if self.lengths:
            batch["lengths"] = {m: n.index_select(0, index) for m, n in self.lengths.items()}
        return batch

    def to(self, device: torch.device, dtype: torch.dtype = torch.float32) -> SplitTensors:
        """This split with every tensor on ``device``; features in ``dtype``."""

        def move(x: torch.Tensor) -> torch.Tensor:
            return x.to(device, dtype=dtype if x.is_floating_point() else x.dtype)

        return SplitTensors(
            {m: move(x) for m, x in self.features.items()},
            self.labels.to(device),
            None if self.embedding is None else move(self.embedding),
            {m: n.to(device) for m, n in self.lengths.items()},
        )

    def __getitem__(self, i: int) -> dict:
        batch = self.__getitems__([i])
        lengths = batch.pop("lengths", None)
        item = {k: v[0] for k, v in batch.items()}
        if lengths is not None:
            item["lengths"] = {m: n[0] for m, n in lengths.items()}
        return item


def text_lengths(text: np.ndarray, rows: int = 4096) -> np.ndarray:
    """[N] int64 valid tokens of each utterance: up to its last token that is not padding.

    Token ids [N, T]: padding is id 0. Dense vectors [N, T, D]: padding is an all-zero row (the
    embedding of the padding id). Read ``rows`` utterances at a time (the text may be a memory
    map).
    """
    out = np.zeros(len(text), dtype=np.int64)
    for start in range(0, len(text), rows):
        block = np.asarray(text[start : start + rows])
        token = block != 0 if block.ndim == 2 else (block != 0).any(axis=-1)
        steps = token.shape[1]
        last = steps - np.argmax(token[:, ::-1], axis=1)  # one past the last token
        out[start : start + len(block)] = np.where(token.any(axis=1), last, 0)
    return out


def keep_batch(batch):
    """collate_fn for datasets that already return whole batches."""
    return batch


class FoldDataModule(L.LightningDataModule):
    """Processed folds of any dataset (the format of :mod:`selfcross.data.npy`: IEMOCAP, MELD),
    or synthetic folds in the same format. Built from ``conf/data/<name>.yaml`` (``cfg.data``).

    Args:
        root: directory holding ``fold01`` ... ``fold05``.
        fold: 1..n_folds.
        modalities: any non-empty subset of ``T``, ``V``, ``A``.
        class_names, class_counts, n_folds: the dataset's facts; None: those of
            ``conf/data/<name>.yaml`` (class_counts: the published utterances per class id,
            the synthetic data's class sizes).
        split_counts, paper_results, labels, metrics, selection_metric: facts read by
            preparation, tables and the monitor (published counts per official split; whether
            the paper reports this dataset; the release's labels of each class; the metrics
            its tables show; the validation metric ``monitor.metric`` follows), not used for
            loading.
        A prepared root's manifest (``dataset.json``) gives the number of folds instead of
        ``n_folds`` (synthetic roots excepted: their configuration decides what is generated).
        shapes: expected ``{modality: {seq_len, feat_dim, ...}}``; the files must match it.
        synthetic: generator parameters; when given, missing folds are generated under ``root``.
        cache_dir: where processed folds are kept and memory-mapped (shared by concurrent runs);
            None reads the fold into this process's memory.
        on_device: ``auto`` (or true) keeps the whole fold in GPU memory when training on a GPU,
            and batches are gathered there; false copies each batch from the host.
        device_dtype: the dtype of a GPU-resident fold's features (``float16`` or ``bfloat16``
            halve its memory; batches are cast back to float32).
        name, preset, label: the data source, its synthetic size, and how sweeps name it
            (recorded, not used for loading).
        class_set, class_sets: the class set applied while loading (``class_set=4class``;
            :func:`selfcross.data.datasets.class_set_map`) among the dataset's; the folds keep
            the full set's class ids (as the root's manifest names them), utterances of
            classes outside the set are left out of every split before preprocessing. On a
            root written with that set (its manifest's ``class_set``), a no-op.
    """

    def __init__(
        self,
        root: str,
        fold: int = 1,
        modalities: Sequence[str] = MODALITIES,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        class_names: Sequence[str] | None = None,
        num_classes: int | None = None,
        class_counts: Sequence[int] | None = None,
        n_folds: int | None = None,
        split_counts: dict | None = None,
        paper_results: bool = True,
        labels: dict | None = None,
        shapes: dict | None = None,
        drop_zero_video: bool = True,
        audio_standardize: str = "feature",
        text_source: str = "auto",
        on_nonfinite: str = "error",
        num_workers: int = 0,
        cache_dir: str | None = None,
        on_device: bool | str = "auto",
        device_dtype: str = "float32",
        synthetic: dict | None = None,
        name: str = "iemocap",
        preset: str | None = None,
        label: str | None = None,
        metrics: Sequence[str] | None = None,
        selection_metric: str | None = None,
        class_set: str | None = None,
        class_sets: dict | None = None,
    ):
        super().__init__()
        if class_names is None or class_counts is None or n_folds is None:
            from selfcross.data.datasets import dataset  # composes: not inside a Hydra job

            facts = dataset(name)
            class_names = facts.class_names if class_names is None else class_names
            class_counts = facts.class_counts if class_counts is None else class_counts
            n_folds = facts.n_folds if n_folds is None else n_folds
        if not synthetic:  # a prepared root's manifest says how many folds it holds
            n_folds = root_n_folds(root, n_folds)
        problem = fold_problem(fold, n_folds)
        if problem is not None:
            raise ConfigError(problem)
        problem = modality_problem(modalities)
        if problem is not None:
            raise ConfigError(f"modalities={list(modalities)}: {problem}")
        self.root = Path(root)
        self.fold = int(fold)
        self.modalities = tuple(m for m in MODALITIES if m in modalities)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.class_names = tuple(class_names)
        self.class_counts = tuple(class_counts)
        self.n_folds = int(n_folds)
        if num_classes is not None and num_classes != len(self.class_names):
            raise ConfigError(
                f"data.class_names has {len(self.class_names)} names for num_classes={num_classes}"
            )
        self.shapes = {k: dict(v) for k, v in shapes.items()} if shapes else None
        class_map = None
        if class_set is not None:
            if synthetic:
                raise ConfigError(
                    f"data.class_set={class_set}: synthetic folds are generated with the full "
                    "class set; apply class sets to prepared (or Yoon's) folds"
                )
            manifest = read_manifest(root)
            full = manifest.class_names if manifest is not None else None
            if manifest is None or manifest.class_set_name != class_set:
                class_map = class_set_map(class_set, class_sets, full)
            # else: a root written with this set (selfcross.prepare source=...): read as it is
        self.class_set = class_set
        self.merged = {} if class_set is None else dict(class_sets[class_set]["merge"])
        self.options = ReaderOptions(
            modalities=self.modalities,
            num_classes=len(self.class_names),
            drop_zero_video=drop_zero_video,
            audio_standardize=audio_standardize,
            text_source=text_source,
            on_nonfinite=on_nonfinite,
            shapes=self.shapes,
            class_map=class_map,
        )
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        if on_device not in (True, False, "auto"):
            raise ConfigError(f"data.on_device={on_device!r}: expected true, false or auto")
        self.on_device = on_device
        if device_dtype not in ("float32", "float16", "bfloat16"):
            raise ConfigError(f"data.device_dtype={device_dtype!r}: float32, float16 or bfloat16")
        self.device_dtype = getattr(torch, device_dtype)
        self._placed_on: torch.device | None = None
        self.synthetic = None
        if synthetic:
            spec_shapes = {
                m: {k: shapes[m][k] for k in ("seq_len", "feat_dim")} for m in MODALITIES
            }
            self.synthetic = SyntheticSpec(
                shapes=spec_shapes, class_counts=self.class_counts, **synthetic
            )
        self.name = name
        self.preset = preset
        self.label = label or name
        self.fold_data: FoldData | None = None
        self.datasets: dict[str, SplitTensors] = {}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def fold_path(self) -> Path:
        return fold_dir(self.root, self.fold)

    def scheme(self) -> dict:
        """The fold's evaluation scheme: ``split`` (random, session, speaker, official), the
        split's ``seed`` and the ``class_set`` (None: the dataset's full set). Read from the
        fold's ``manifest.json`` (written by selfcross.prepare), else the root's
        ``dataset.json``, else Yoon et al.'s random folds (seed unknown: None); synthetic folds
        have the generator's split (random unless a preset says session) and seed."""
        split, seed = "random", None
        fold_manifest = self.fold_path / "manifest.json"
        if self.synthetic is not None:
            split, seed = self.synthetic.split, self.synthetic.seed
        elif fold_manifest.is_file():
            written = json.loads(fold_manifest.read_text())
            split, seed = written.get("split", split), written.get("seed")
        elif (root_manifest := read_manifest(self.root)) is not None:
            split = root_manifest.split
        return {"split": split, "seed": seed, "class_set": self.class_set or self.root_class_set}

    @property
    def root_class_set(self) -> str | None:
        """The class set the root was written with (its manifest's), None for the full set."""
        manifest = None if self.synthetic is not None else read_manifest(self.root)
        return None if manifest is None else manifest.class_set_name

    def prepare_data(self) -> None:
        if self.synthetic is not None:
            ensure_synthetic(
                self.root, [self.fold], self.synthetic, self.class_names, self.n_folds
            )

    def setup(self, stage: str | None = None) -> None:
        if self.fold_data is not None:
            return
        fold = load_fold(self.fold_path, self.options, self.cache_dir)
        self.fold_data = fold
        self.log_summary()
        embedding = torch.from_numpy(fold.embedding) if fold.embedding is not None else None
        for split in SPLITS:
            data = fold.splits[split]
            lengths = {
                m: torch.from_numpy(np.ascontiguousarray(data.lengths[m], dtype=np.int64))
                for m in self.modalities
                if m in data.lengths
            }
            if "T" in data.features:
                lengths["T"] = torch.from_numpy(text_lengths(data.features["T"]))
            self.datasets[split] = SplitTensors(
                {m: torch.from_numpy(x) for m, x in data.features.items()},
                torch.from_numpy(data.labels),
                embedding,
                {m: lengths[m] for m in self.modalities if m in lengths},
            )

    def log_summary(self) -> None:
        fold = self.fold_data
        counts = fold.class_counts(self.num_classes)
        names = ", ".join(f"{i}={n}" for i, n in enumerate(self.class_names))
        log.info("Fold %s (%s); classes %s", fold.path, self.name, names)
        for split in SPLITS:
            s = fold.splits[split]
            log.info(
                "  %-5s %5d utterances, per class id %s; %d dropped (no video)",
                split,
                len(s),
                counts[split],
                s.n_dropped,
            )
        if self.class_set is not None:
            total = np.sum([counts[split] for split in SPLITS], axis=0).tolist()
            merged = [
                f"{n} ({'+'.join(self.merged[n])}) {k} here, {p} published"
                for n, k, p in zip(self.class_names, total, self.class_counts, strict=True)
            ]
            log.info("  class set %s: %s", self.class_set, "; ".join(merged))

    def summary(self) -> dict:
        """Counts a result file records: per split, utterances, dropped, per-class counts."""
        fold = self.fold_data
        counts = fold.class_counts(self.num_classes)
        return {
            split: {
                "n": len(fold.splits[split]),
                "dropped_no_video": fold.splits[split].n_dropped,
                "class_counts": counts[split],
            }
            for split in SPLITS
        }

    def _place(self) -> None:
        """Move the fold to the trainer's GPU once, if asked to (``on_device``)."""
        trainer = self.trainer
        if not self.on_device or trainer is None or self._placed_on is not None:
            return
        self.place_on(trainer.strategy.root_device)

    def place_on(self, device: torch.device) -> None:
        """Hold the fold in ``device``'s memory (``device_dtype`` features) if it is a GPU and
        ``on_device`` asks for it; done once (a seed group calls this for its device)."""
        if not self.on_device or self._placed_on is not None or device.type != "cuda":
            return
        self.datasets = {s: d.to(device, self.device_dtype) for s, d in self.datasets.items()}
        self._placed_on = device
        log.info("Fold %d held in %s memory (%s)", self.fold, device, self.device_dtype)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self._place()
        on_gpu = self._placed_on is not None
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            collate_fn=keep_batch,
            num_workers=0 if on_gpu else self.num_workers,
            persistent_workers=self.num_workers > 0 and not on_gpu,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


IemocapDataModule = FoldDataModule
"""The data module's name before it read every dataset (records and configs may name it)."""
