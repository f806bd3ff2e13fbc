"""EuroSATLS on the fake Landsat-Bench files."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure
from torch.utils.data import default_collate
from torchgeo.datasets import DatasetNotFoundError

from torchgeo_moemae.datasets import EuroSATLS, InvalidSampleError, MissingSampleFileError


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_getitem(eurosat_root: Path, eurosat_data: ModuleType, split: str) -> None:
    ds = EuroSATLS(eurosat_root, split=split)
    assert len(ds) == len(eurosat_data.CLASSES)
    for i, cls in enumerate(eurosat_data.CLASSES):
        sample = ds[i]
        assert set(sample) == {"image", "label", "lat", "lon", "time"}
        assert sample["image"].shape == (7, 40, 40) and sample["image"].dtype == torch.float32
        # The thermal band is dropped: every remaining value is a reflectance DN.
        assert sample["image"].max() < eurosat_data.THERMAL_DN
        assert sample["label"].dtype == torch.int64 and sample["label"].ndim == 0
        assert ds.classes[int(sample["label"])] == cls
        for key, dtype in (("lat", torch.float32), ("lon", torch.float32), ("time", torch.float64)):
            assert sample[key].dtype == dtype and sample[key].ndim == 0
            assert torch.isnan(sample[key])


def test_native_size_and_collate(eurosat_root: Path) -> None:
    ds = EuroSATLS(eurosat_root, patch_size=None)
    assert ds[0]["image"].shape == (7, 22, 22)
    batch = default_collate([ds[0], ds[1]])
    assert batch["time"].shape == (2,) and batch["time"].dtype == torch.float64


def test_plot(eurosat_root: Path) -> None:
    ds = EuroSATLS(eurosat_root)
    sample = ds[0]
    fig = ds.plot({**sample, "prediction": sample["label"]}, suptitle="x")
    assert isinstance(fig, Figure)
    plt.close(fig)


def test_not_found_and_extract(tmp_path: Path, eurosat_data: ModuleType) -> None:
    with pytest.raises(DatasetNotFoundError):
        EuroSATLS(tmp_path)
    eurosat_data.make_eurosat_ls(tmp_path)
    shutil.rmtree(tmp_path / "eurosat-l")
    assert len(EuroSATLS(tmp_path, split="test")) == 3


@pytest.mark.usefixtures("patch_download")
def test_download_and_checksum(
    tmp_path: Path, eurosat_data: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "hub"
    md5s = eurosat_data.make_eurosat_ls(source)
    monkeypatch.setattr(EuroSATLS, "url", str(source) + "/")
    monkeypatch.setattr(EuroSATLS, "split_url", str(source) + "/")
    monkeypatch.setattr(EuroSATLS, "md5s", md5s)
    root = tmp_path / "root"
    assert len(EuroSATLS(root, split="val", download=True, checksum=True)) == 3
    (root / "eurosat-train.txt").write_text("AnnualCrop_1.jpg\n")
    with pytest.raises(RuntimeError, match=r"eurosat-train\.txt: MD5 mismatch"):
        EuroSATLS(root, checksum=True)


def test_download_offline_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The download went through urllib despite HF_HUB_OFFLINE, ending in a raw URLError."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError, match="HF_HUB_OFFLINE is set") as info:
        EuroSATLS(tmp_path, download=True)
    assert "\n" not in str(info.value) and "eurosat-train.txt" in str(info.value)


def test_failed_download_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.error

    def unreachable(url: str, root: str, filename: str | None = None, **kwargs: object) -> None:
        (Path(root) / str(filename)).write_bytes(b"half a file")
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("torchgeo_moemae.datasets.base.download_url", unreachable)
    with pytest.raises(ConnectionError, match=r"could not download .*name resolution"):
        EuroSATLS(tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []


def test_split_md5s_are_torchgeos() -> None:
    from torchgeo.datasets import EuroSAT

    assert EuroSATLS.md5s["eurosat-train.txt"] == EuroSAT.split_md5s["train"]
    assert EuroSATLS.split_url == EuroSAT.url


def test_bad_input(eurosat_root: Path, eurosat_data: ModuleType) -> None:
    seven = eurosat_root / "eurosat-l" / "Forest" / "Forest_1.tif"
    eurosat_data.write_scene(seven, bands=7)
    ds = EuroSATLS(eurosat_root)
    with pytest.raises(InvalidSampleError, match="expected 8 bands, found 7") as info:
        ds[1]
    assert str(seven) in str(info.value)
    skipping = EuroSATLS(eurosat_root, on_error="skip")
    assert len(skipping) == 2 and list(skipping.skipped) == ["Forest_1.tif"]

    missing = eurosat_root / "eurosat-l" / "SeaLake" / "SeaLake_2.tif"
    missing.unlink()
    with pytest.raises(MissingSampleFileError, match="image missing") as info2:
        EuroSATLS(eurosat_root, split="val")
    assert str(missing) in str(info2.value)
    (eurosat_root / "eurosat-test.txt").write_text("Glacier_1.jpg\nForest_3.jpg\n")
    with pytest.raises(MissingSampleFileError, match="not of a EuroSAT class"):
        EuroSATLS(eurosat_root, split="test")
    assert len(EuroSATLS(eurosat_root, split="test", on_error="skip")) == 1
