"""The built-in synthetic BigEarthNet-L generator."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import rasterio
import torch

from torchgeo_moemae.datasets import BigEarthNetLS, make_synthetic_bigearthnet_ls
from torchgeo_moemae.datasets.synthetic import MATERIALS


def _digest(root: Path) -> str:
    h = hashlib.md5()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_layout_and_loading(tmp_path: Path) -> None:
    root = make_synthetic_bigearthnet_ls(tmp_path / "a", num_patches=40, seed=1)
    sizes = {s: len(BigEarthNetLS(root, split=s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 28, "val": 6, "test": 6}
    tif = next((root / "bigearthnet-l" / "images").iterdir())
    with rasterio.open(tif) as src:
        assert (src.count, src.dtypes[0], src.width, src.crs.to_epsg() // 100) == (
            7,
            "uint16",
            42,
            326,
        )
    ds = BigEarthNetLS(root, split="train")
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (7, 40, 40)
        assert sample["label"].sum() >= 1
        assert 35 <= float(sample["lat"]) <= 72 and -11 <= float(sample["lon"]) <= 33
        hour = (int(sample["time"]) // 3600) % 24
        assert 9 <= hour <= 11
    label = json.loads(next((root / "bigearthnet-l" / "labels").iterdir()).read_text())
    assert set(label["labels"]) <= {name for name, _ in MATERIALS}


def test_deterministic_and_idempotent(tmp_path: Path) -> None:
    a = make_synthetic_bigearthnet_ls(tmp_path / "a", num_patches=20, seed=3)
    b = make_synthetic_bigearthnet_ls(tmp_path / "b", num_patches=20, seed=3)
    assert _digest(a) == _digest(b)
    before = _digest(a)
    make_synthetic_bigearthnet_ls(a, num_patches=20, seed=3)  # complete: nothing rewritten
    assert _digest(a) == before
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_synthetic_bigearthnet_ls(a, num_patches=20, seed=4)
    make_synthetic_bigearthnet_ls(a, num_patches=10, seed=4, overwrite=True)
    assert len(list((a / "bigearthnet-l" / "images").iterdir())) == 10


def test_labels_visible_in_spectra(tmp_path: Path) -> None:
    # Water-only patches are dark in the NIR, forest-only ones bright: classes are learnable.
    root = make_synthetic_bigearthnet_ls(tmp_path)  # the default: 300 patches
    ds = BigEarthNetLS(root, split="train", num_classes=43)
    water, forest = ds.classes.index("Water bodies"), ds.classes.index("Broad-leaved forest")
    nir: dict[int, list[torch.Tensor]] = {water: [], forest: []}
    for i in range(len(ds)):
        sample = ds[i]
        present = sample["label"].nonzero().flatten().tolist()
        if len(present) == 1 and present[0] in nir:
            nir[present[0]].append(sample["image"][4].mean())
    assert nir[water] and nir[forest]
    assert max(nir[water]) < min(nir[forest])
    assert torch.tensor(nir[water]).mean() < 9000  # ~0.015 reflectance
