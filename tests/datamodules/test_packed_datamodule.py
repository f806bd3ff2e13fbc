"""PackedDataModule: the same batches as the TIFF datamodules, flips, batch sampling under DDP."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from torchgeo_moemae.datamodules import (
    BigEarthNetLSDataModule,
    EuroSATLSDataModule,
    PackedBatchSampler,
    PackedDataModule,
)
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls, pack_dataset

REAL_SAMPLE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
REAL_SAMPLE = REAL_SAMPLE / "bigearthnet-ls-sample"


def pack_splits(name: str, root: Path, out: Path, **kwargs: Any) -> Path:
    for split in ("train", "val", "test"):
        pack_dataset(name, out / split, split=split, root=root, progress=False, **kwargs)
    return out


def assert_same_batches(
    tiff: BigEarthNetLSDataModule | EuroSATLSDataModule, packed: PackedDataModule, split: str
) -> None:
    """The unshuffled loaders of both datamodules give identical batches after transfer."""
    stage = {"train": "fit", "val": "validate", "test": "test"}[split]
    tiff.setup(stage)
    packed.setup(stage)
    pairs = list(
        zip(
            getattr(tiff, f"{split}_dataloader")(),
            getattr(packed, f"{split}_dataloader")(),
            strict=True,
        )
    )
    assert pairs
    for expected, got in pairs:
        expected = tiff.aug(expected)
        got = packed.finish_batch(got, split)
        assert expected.keys() == got.keys()
        for key, value in expected.items():
            assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
            assert got[key].numpy().tobytes() == value.numpy().tobytes(), key


@pytest.mark.parametrize("on_device", [False, True])
def test_same_batches_as_tiff_fake_data(ben_root: Path, tmp_path: Path, on_device: bool) -> None:
    # the fake data has a resized 38x39 patch: a float32 pack
    packs = pack_splits("bigearthnet_ls", ben_root, tmp_path / "packs")
    tiff = BigEarthNetLSDataModule(root=ben_root, batch_size=2)
    packed = PackedDataModule(root=packs, batch_size=2, on_device=on_device)
    for split in ("val", "test"):
        assert_same_batches(tiff, packed, split)


@pytest.mark.parametrize("on_device", [False, True])
def test_same_batches_as_tiff_uint16(tmp_path: Path, on_device: bool) -> None:
    root = make_synthetic_bigearthnet_ls(tmp_path / "syn", num_patches=40, seed=2)
    packs = pack_splits("bigearthnet_ls", root, tmp_path / "packs")
    tiff = BigEarthNetLSDataModule(root=root, batch_size=4)
    packed = PackedDataModule(root=packs, batch_size=4, on_device=on_device)
    packed.setup("fit")
    assert packed.val_dataset is not None and packed.val_dataset.image.dtype.name == "uint16"  # type: ignore[attr-defined]
    assert_same_batches(tiff, packed, "val")


def test_eurosat_statistics_and_nan_metadata(eurosat_root: Path, tmp_path: Path) -> None:
    packs = pack_splits("eurosat_ls", eurosat_root, tmp_path / "packs")
    packed = PackedDataModule(root=packs, batch_size=3)
    assert_same_batches(EuroSATLSDataModule(root=eurosat_root, batch_size=3), packed, "test")
    assert torch.equal(packed.mean, EuroSATLSDataModule.mean)


def test_real_sample_same_batches(tmp_path: Path) -> None:
    if not (REAL_SAMPLE / "samples.csv").is_file():
        pytest.skip(f"real BigEarthNet-L sample not found at {REAL_SAMPLE} (../shared is absent)")
    from torchgeo_moemae.datasets import arrange_bigearthnet_sample

    root = arrange_bigearthnet_sample(REAL_SAMPLE, tmp_path / "real")
    packs = tmp_path / "packs"
    pack_dataset("bigearthnet_ls", packs / "val", split="val", root=root, on_error="skip")
    tiff = BigEarthNetLSDataModule(root=root, batch_size=64, on_error="skip")
    for on_device in (False, True):
        packed = PackedDataModule(root=packs, batch_size=64, on_device=on_device)
        assert_same_batches(tiff, packed, "val")


def flips_of(image: Tensor) -> list[Tensor]:
    return [image, image.flip(-1), image.flip(-2), image.flip((-2, -1))]


@pytest.mark.parametrize("on_device", [False, True])
def test_train_flips(tmp_path: Path, on_device: bool) -> None:
    root = make_synthetic_bigearthnet_ls(tmp_path / "syn", num_patches=60, seed=3)
    packs = pack_splits("bigearthnet_ls", root, tmp_path / "packs")
    plain = PackedDataModule(root=packs, batch_size=8, seed=5)
    flipped = PackedDataModule(root=packs, batch_size=8, seed=5, augment=True, on_device=on_device)
    plain.setup("fit")
    flipped.setup("fit")
    torch.manual_seed(0)
    seen = set()
    for raw, aug in zip(plain.train_dataloader(), flipped.train_dataloader(), strict=True):
        expected, got = plain.finish_batch(raw, "train"), flipped.finish_batch(aug, "train")
        for key in ("label", "lat", "lon", "time"):
            assert torch.equal(got[key], expected[key])
        for want, image in zip(expected["image"], got["image"], strict=True):
            matches = [torch.equal(image, f) for f in flips_of(want)]
            assert any(matches)
            seen.add(matches.index(True))
    assert seen == {0, 1, 2, 3}
    # validation is never flipped
    val = next(iter(flipped.val_dataloader()))
    assert torch.equal(
        flipped.finish_batch(val, "val")["image"],
        plain.finish_batch(next(iter(plain.val_dataloader())), "val")["image"],
    )


def test_batch_sampler_shards_and_reshuffles() -> None:
    data = list(range(23))
    ranks = [PackedBatchSampler(data, 4, True, False, 7, 2, r) for r in (0, 1)]
    epoch0 = [[b.tolist() for b in s] for s in ranks]
    assert [len(s) for s in ranks] == [3, 3]  # 12 indices per rank (one repeated to even out)
    seen = [i for batches in epoch0 for b in batches for i in b]
    assert set(seen) == set(data) and len(seen) == 24
    assert [[b.tolist() for b in s] for s in ranks] == epoch0  # deterministic per epoch
    for s in ranks:
        s.set_epoch(1)
    assert [[b.tolist() for b in s] for s in ranks] != epoch0
    drop = PackedBatchSampler(data, 4, False, True, 0, 1, 0)
    assert [b.tolist() for b in drop] == [list(range(i, i + 4)) for i in range(0, 20, 4)]
    assert len(PackedBatchSampler(data, 4, False, False, 0, 1, 0)) == 6
    with pytest.raises(ValueError, match="batch_size must be positive"):
        PackedBatchSampler(data, 0, False, False)


def test_loader_uses_trainer_rank_and_is_kept_by_lightning(ben_root: Path, tmp_path: Path) -> None:
    packs = pack_splits("bigearthnet_ls", ben_root, tmp_path / "packs")
    dm = PackedDataModule(root=packs, batch_size=1)
    dm.trainer = SimpleNamespace(world_size=3, global_rank=2)  # type: ignore[assignment]
    dm.setup("fit")
    loader = dm.train_dataloader()
    sampler = loader.sampler
    assert isinstance(sampler, PackedBatchSampler) and (sampler.rank, sampler.num_replicas) == (
        2,
        3,
    )
    assert len(loader) == 1  # 3 train samples over 3 ranks
    # Lightning replaces every sampler that is not a DistributedSampler under DDP
    assert isinstance(sampler, DistributedSampler) and loader.batch_size is None
