#!/usr/bin/env python3
"""Write a tiny fake EuroSAT-L in the exact Landsat-Bench format.

``root/eurosat-l/<Class>/<Class>_<n>.tif`` (8-band uint16 GeoTIFF: SR_B1..SR_B7 + ST_B10, UTM
CRS, 22x22 px), torchgeo's split files ``root/eurosat-{split}.txt`` (``.jpg`` names, as torchgeo
publishes them) and the archive ``root/eurosat-l.zip``. Run as a script to write into the cwd.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import rasterio
from pyproj import CRS
from rasterio import Affine

CLASSES = ("AnnualCrop", "Forest", "SeaLake")
SPLITS = ("train", "val", "test")
SIZE = 22
BANDS = 8
#: the value written in band 8 (thermal), so tests can check it is dropped
THERMAL_DN = 60000


def write_scene(path: Path, bands: int = BANDS) -> None:
    """A uint16 GeoTIFF; bands 1..7 in the reflectance DN range, band 8 constant."""
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    data = rng.integers(7000, 20000, (bands, SIZE, SIZE), dtype=np.uint16)
    if bands >= BANDS:
        data[BANDS - 1] = THERMAL_DN
    profile = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": bands,
        "height": SIZE,
        "width": SIZE,
        "crs": CRS.from_epsg(32633),
        "transform": Affine(30, 0, 400020, 0, -30, 5300040),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def make_eurosat_ls(root: str | Path, archive: bool = True) -> dict[str, str]:
    """Write the fake dataset under ``root``: each split holds one scene per class.

    Returns:
        MD5 of every top-level file (archive and split files), by file name.
    """
    root = Path(root)
    for s, split in enumerate(SPLITS):
        names = []
        for cls in CLASSES:
            folder = root / "eurosat-l" / cls
            folder.mkdir(parents=True, exist_ok=True)
            write_scene(folder / f"{cls}_{s + 1}.tif")
            names.append(f"{cls}_{s + 1}.jpg")
        (root / f"eurosat-{split}.txt").write_text("\n".join(names) + "\n")
    if archive:
        with zipfile.ZipFile(root / "eurosat-l.zip", "w") as zf:
            for path in sorted((root / "eurosat-l").rglob("*.tif")):
                zf.write(path, path.relative_to(root))
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in root.iterdir() if p.is_file()}


if __name__ == "__main__":
    for name, digest in make_eurosat_ls(os.getcwd()).items():
        print(name, digest)
