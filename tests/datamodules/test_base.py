"""BigEarthNetLSDataModule and EuroSATLSDataModule: batches, normalisation, augmentation, plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure
from torch import Tensor

from torchgeo_moemae.bands import BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from torchgeo_moemae.datamodules import BigEarthNetLSDataModule, EuroSATLSDataModule
from torchgeo_moemae.models import create_mae

META = ("lat", "lon", "time")


def _first_batch(
    dm: BigEarthNetLSDataModule | EuroSATLSDataModule, split: str
) -> dict[str, Tensor]:
    dm.setup("fit" if split in ("train", "val") else "test")
    loader = getattr(dm, f"{split}_dataloader")()
    return next(iter(loader))


def test_bigearthnet_batches(ben_root: Path) -> None:
    dm = BigEarthNetLSDataModule(root=ben_root, batch_size=2)
    for split in ("train", "val", "test"):
        batch = _first_batch(dm, split)
        assert batch["image"].shape == (2, 7, 40, 40)
        assert batch["label"].shape == (2, 19) and batch["label"].dtype == torch.int64
        assert batch["lat"].shape == (2,) and batch["lat"].dtype == torch.float32
        assert batch["time"].dtype == torch.float64
        assert torch.isfinite(batch["lat"]).all()


def test_normalisation(ben_root: Path) -> None:
    dm = BigEarthNetLSDataModule(root=ben_root, batch_size=3)
    batch = _first_batch(dm, "val")
    out = dm.aug({k: v.clone() for k, v in batch.items()})
    mean = torch.tensor(BIGEARTHNET_LS_MEAN)[:, None, None]
    std = torch.tensor(BIGEARTHNET_LS_STD)[:, None, None]
    torch.testing.assert_close(out["image"], (batch["image"] - mean) / std)
    for key in ("label", *META):
        assert torch.equal(out[key], batch[key]) and out[key].dtype == batch[key].dtype


def test_augment_passes_metadata_through(ben_root: Path) -> None:
    dm = BigEarthNetLSDataModule(root=ben_root, batch_size=3, augment=True)
    assert dm.train_aug is not None
    batch = _first_batch(dm, "train")
    batch = {**batch, "image": batch["image"][:1].expand(2, -1, -1, -1).clone()}
    batch = {k: v[:2] for k, v in batch.items()}
    torch.manual_seed(0)
    seen = set()
    for _ in range(20):
        out = dm.train_aug({k: v.clone() for k, v in batch.items()})
        for key in ("label", *META):
            assert torch.equal(out[key], batch[key]) and out[key].dtype == batch[key].dtype
        seen.add(round(float(out["image"][0, 0, 0, 0]), 4))
    assert len(seen) > 1  # flips happen
    assert BigEarthNetLSDataModule(root=ben_root).train_aug is None  # no augmentation by default


def test_eurosat_batches_collate_like_bigearthnet(eurosat_root: Path, ben_root: Path) -> None:
    dm = EuroSATLSDataModule(root=eurosat_root, batch_size=3, augment=True)
    batch = _first_batch(dm, "test")
    assert batch["image"].shape == (3, 7, 40, 40)
    assert batch["label"].shape == (3,) and batch["label"].dtype == torch.int64
    ben = _first_batch(BigEarthNetLSDataModule(root=ben_root, batch_size=3), "test")
    for key in META:
        assert batch[key].shape == ben[key].shape and batch[key].dtype == ben[key].dtype
        assert torch.isnan(batch[key]).all()
    assert dm.train_aug is not None
    out = dm.train_aug(batch)
    assert all(torch.isnan(out[key]).all() for key in META)


def test_loader_options(ben_root: Path) -> None:
    dm = BigEarthNetLSDataModule(root=ben_root, batch_size=2, pin_memory=True, patch_size=None)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.pin_memory == torch.cuda.is_available()
    assert loader.drop_last and loader.batch_size == 2
    assert dm.train_dataset is not None and dm.train_dataset[1]["image"].shape == (7, 43, 45)
    dm43 = BigEarthNetLSDataModule(root=ben_root, num_classes=43)
    assert _first_batch(dm43, "val")["label"].shape[-1] == 43


@pytest.mark.parametrize("which", ["ben", "eurosat"])
def test_plot(which: str, ben_root: Path, eurosat_root: Path) -> None:
    if which == "ben":
        dm: BigEarthNetLSDataModule | EuroSATLSDataModule = BigEarthNetLSDataModule(ben_root)
    else:
        dm = EuroSATLSDataModule(eurosat_root)
    dm.setup("validate")
    assert dm.val_dataset is not None
    fig = dm.plot(dm.val_dataset[0])
    assert isinstance(fig, Figure)
    plt.close(fig)


def test_cli_can_build_from_class_path(ben_root: Path) -> None:
    # The torchgeo CLI instantiates datamodules through jsonargparse from class_path/init_args.
    jsonargparse = pytest.importorskip("jsonargparse")
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--data", type=BigEarthNetLSDataModule)
    cfg = parser.parse_object(
        {
            "data": {
                "class_path": "torchgeo_moemae.datamodules.BigEarthNetLSDataModule",
                "init_args": {"root": str(ben_root), "batch_size": 2, "augment": True},
            }
        }
    )
    dm = parser.instantiate_classes(cfg).data
    assert isinstance(dm, BigEarthNetLSDataModule) and dm.batch_size == 2


def test_model_accepts_batches(ben_root: Path, eurosat_root: Path) -> None:
    model = create_mae("XXS").eval()
    for dm in (
        BigEarthNetLSDataModule(root=ben_root, batch_size=2),
        EuroSATLSDataModule(root=eurosat_root, batch_size=2),
    ):
        batch = dm.aug(_first_batch(dm, "val"))
        with torch.no_grad():
            out = model(batch["image"], lat=batch["lat"], lon=batch["lon"], time=batch["time"])
        assert torch.isfinite(out.pred).all()


def test_max_fill_fraction_reaches_the_datasets(ben_root: Path, eurosat_root: Path) -> None:
    import numpy as np
    import rasterio

    ben = next((ben_root / "bigearthnet-l" / "images").glob("*.tif"))
    with rasterio.open(ben, "r+") as dst:
        dst.write(np.zeros((dst.count, dst.height, dst.width), dtype=np.uint16))
    dm = BigEarthNetLSDataModule(root=ben_root, batch_size=1, max_fill_fraction=0.5)
    dm.setup("fit")
    assert dm.train_dataset.max_fill_fraction == 0.5
    assert list(dm.train_dataset.skipped) == [ben.stem]
    eurosat = EuroSATLSDataModule(root=eurosat_root, batch_size=1, max_fill_fraction=0.5)
    eurosat.setup("fit")
    assert eurosat.train_dataset.max_fill_fraction == 0.5
    with pytest.raises(ValueError, match="max_fill_fraction"):
        BigEarthNetLSDataModule(root=ben_root, max_fill_fraction=2.0).setup("fit")
