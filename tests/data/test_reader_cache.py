"""The processed-fold cache (memory-mapped arrays, reused until a file changes), read-only
folders named with their setting, and the fold held on the device.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfcross.data import FoldReader, IemocapDataModule, ReaderOptions
from selfcross.errors import DataError
from tests.helpers.foldkit import (
    SHAPES,
    SIZES,
    edit_keeping_size_and_mtime,
    flip_first_label,
)


# -- the processed-fold cache ---------------------------------------------------------------
def test_cache_gives_the_same_arrays_memory_mapped(fold, tmp_path):
    from selfcross.data.cache import load_fold

    directory, _ = fold
    options = ReaderOptions(shapes=SHAPES)
    direct = FoldReader(directory, options).load()
    cached = load_fold(directory, options, tmp_path / "cache")
    again = load_fold(directory, options, tmp_path / "cache")
    for data in (cached, again):
        assert data.fingerprint == direct.fingerprint
        np.testing.assert_array_equal(data.embedding, direct.embedding)
        np.testing.assert_array_equal(data.audio_mean, direct.audio_mean)
        for split in SIZES:
            a, b = direct.splits[split], data.splits[split]
            np.testing.assert_array_equal(a.labels, b.labels)
            assert a.n_dropped == b.n_dropped
            for m in "TVA":
                np.testing.assert_array_equal(a.features[m], b.features[m])
    assert isinstance(again.splits["train"].features["A"], np.memmap)  # shared, not copied


def test_cache_is_reused_then_rebuilt_when_a_file_changes(fold, tmp_path, monkeypatch):
    from selfcross.data import cache

    directory, arrays = fold
    options = ReaderOptions(shapes=SHAPES, modalities=("T", "A"))
    cache.load_fold(directory, options, tmp_path / "cache")
    built = []
    original = cache._build
    monkeypatch.setattr(cache, "_build", lambda *a: built.append(a[3]) or original(*a))
    cache.load_fold(directory, options, tmp_path / "cache")
    assert built == []  # reused
    video = cache.load_fold(
        directory, ReaderOptions(shapes=SHAPES, modalities=("V",)), tmp_path / "cache"
    )
    assert built == [("V",)]  # only the new modality is added
    assert video.splits["dev"].features["V"].shape[1:] == (4, 3)
    labels = arrays["dev_label"].copy()
    labels[0] = (labels[0] + 1) % 7
    np.save(directory / "dev_label.npy", labels)  # the data change: a new entry, the old removed
    data = cache.load_fold(directory, options, tmp_path / "cache")
    keep = arrays["dev_video_seqN"] > 0
    np.testing.assert_array_equal(data.splits["dev"].labels, labels[keep])
    assert len(list((tmp_path / "cache").glob("fold01-*"))) == 1


def test_cache_serves_new_labels_after_a_same_size_edit_with_mtime_put_back(fold, tmp_path):
    from selfcross.data import cache

    directory, arrays = fold
    options = ReaderOptions(shapes=SHAPES, modalities=("T",))
    before = cache.load_fold(directory, options, tmp_path / "cache")
    edit_keeping_size_and_mtime(directory / "dev_label.npy", flip_first_label)
    after = cache.load_fold(directory, options, tmp_path / "cache")
    keep = arrays["dev_video_seqN"] > 0
    np.testing.assert_array_equal(
        after.splits["dev"].labels, np.load(directory / "dev_label.npy")[keep]
    )
    assert after.fingerprint != before.fingerprint
    assert len(list((tmp_path / "cache").glob("fold01-*"))) == 1  # the stale entry is removed


def read_only(monkeypatch, folder) -> None:
    """Make ``folder`` behave as on a read-only mount (root ignores permission bits)."""
    import errno
    import tempfile

    from selfcross.utils import io

    def refuse(*args, dir=None, **kw):
        if str(dir).startswith(str(folder)):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return tempfile.TemporaryFile(*args, dir=dir, **kw)

    monkeypatch.setattr(io.tempfile, "TemporaryFile", refuse)


def test_read_only_cache_folder_names_the_folder_and_the_setting(fold, tmp_path, monkeypatch):
    directory, _ = fold
    read_only(monkeypatch, tmp_path / "cache")
    dm = IemocapDataModule(root=str(directory.parent), shapes=SHAPES, batch_size=4,
                           cache_dir=str(tmp_path / "cache"))  # fmt: skip
    with pytest.raises(DataError) as caught:
        dm.setup("fit")
    assert str(caught.value) == (
        f"{tmp_path / 'cache'}: cannot write here (Read-only file system); set data.cache_dir "
        "(paths.cache_dir, or the SELFCROSS_CACHE_DIR environment variable) to a writable folder"
    )


def test_read_only_synthetic_data_folder_names_the_setting(tmp_path, monkeypatch):
    from selfcross.data.synthetic import SyntheticSpec, ensure_synthetic

    read_only(monkeypatch, tmp_path / "ro")
    with pytest.raises(DataError, match=r"ro: cannot write here \(Read-only file system\); "
                       r"set data.root \(paths.data_dir, or the SELFCROSS_DATA_DIR"):  # fmt: skip
        ensure_synthetic(tmp_path / "ro", [1], SyntheticSpec((100,) * 7))


def test_datamodule_on_device_is_a_no_op_on_the_cpu(fold, tmp_path):
    import lightning as L

    directory, _ = fold
    dm = IemocapDataModule(root=str(directory.parent), shapes=SHAPES, batch_size=4,
                           cache_dir=str(tmp_path / "cache"), on_device=True)  # fmt: skip
    dm.trainer = L.Trainer(accelerator="cpu", logger=False)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["A"].device.type == "cpu" and dm._placed_on is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_fold_held_on_the_gpu_gives_the_same_batches(fold, tmp_path, dtype):
    import lightning as L

    directory, _ = fold
    cpu = IemocapDataModule(root=str(directory.parent), shapes=SHAPES, batch_size=4)
    gpu = IemocapDataModule(root=str(directory.parent), shapes=SHAPES, batch_size=4,
                            on_device=True, device_dtype=dtype)  # fmt: skip
    gpu.trainer = L.Trainer(accelerator="gpu", devices=1, logger=False)
    for dm in (cpu, gpu):
        dm.setup("fit")
    a, b = next(iter(cpu.val_dataloader())), next(iter(gpu.val_dataloader()))
    assert b["A"].device.type == "cuda" and b["A"].dtype == torch.float32
    tol = 0 if dtype == "float32" else 1e-2
    for key in ("T", "V", "A"):
        torch.testing.assert_close(b[key].cpu(), a[key], atol=tol, rtol=tol)
    assert torch.equal(b["label"].cpu(), a["label"])
