#!/usr/bin/env python3
"""Write a tiny fake BigEarthNet-L in the exact Landsat-Bench format.

``root/bigearthnet-l/images/<id>.tif`` (7-band uint16 GeoTIFF, UTM CRS),
``root/bigearthnet-l/labels/<id>_labels_metadata.json``, ``root/bigearthnet-{split}.csv`` and
the archive ``root/bigearthnet-l.tar.gz``. Run as a script to write it into the current directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zlib
from pathlib import Path

import numpy as np
import rasterio
from pyproj import CRS
from rasterio import Affine

SPLITS = ("train", "val", "test")
# Patch sizes of Landsat-Bench: 38..45 px, non-square ones included.
SIZES = ((41, 41), (43, 45), (38, 39))
# (labels, EPSG, upper-left x/y, acquisition_date); lat/lon of the bounds centre are checked.
RECORDS = (
    (["Mixed forest", "Sea and ocean"], 32634, 513180, 7020840, "2017-06-13 10:10:31"),
    (["Non-irrigated arable land", "Airports"], 32632, 399960, 5700000, "2017-10-02 09:40:31"),
    (["Water bodies", "Pastures", "Peatbogs"], 32629, 600000, 5900040, "2018-05-25 11:03:00"),
)


def patch_id(split: str, i: int) -> str:
    """Landsat-Bench patch name of the i-th patch of a split."""
    return f"S2A_MSIL2A_2017061{i}T101031_{SPLITS.index(split)}_{i}"


def write_image(
    path: Path, epsg: int, ul: tuple[float, float], shape: tuple[int, int], bands: int = 7
) -> None:
    """A uint16 GeoTIFF with values in the Landsat DN range (1..65535; 0 is fill)."""
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    data = rng.integers(7000, 25000, (bands, *shape), dtype=np.uint16)
    profile = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": bands,
        "height": shape[0],
        "width": shape[1],
        "crs": CRS.from_epsg(epsg),
        "transform": Affine(30, 0, ul[0], 0, -30, ul[1]),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def write_label(
    path: Path, labels: list[str], epsg: int, ul: tuple[float, float], date: str
) -> None:
    """A ``_labels_metadata.json`` with 1200 m square UTM bounds, like BigEarthNet v1."""
    doc = {
        "labels": labels,
        "coordinates": {"ulx": ul[0], "uly": ul[1], "lrx": ul[0] + 1200, "lry": ul[1] - 1200},
        "projection": CRS.from_epsg(epsg).to_wkt("WKT1_GDAL"),
        "tile_source": "fake",
        "acquisition_date": date,
    }
    path.write_text(json.dumps(doc))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_bigearthnet_ls(
    root: str | Path, archive: bool = True, header: bool = False
) -> dict[str, str]:
    """Write the fake dataset under ``root``; 3 patches per split.

    Args:
        root: output directory.
        archive: also write ``bigearthnet-l.tar.gz`` (of the ``bigearthnet-l/`` tree).
        header: start each split CSV with a header row, as the real ``samples.csv`` does.

    Returns:
        MD5 of every top-level file (archive and split CSVs), by file name.
    """
    root = Path(root)
    images, labels = root / "bigearthnet-l" / "images", root / "bigearthnet-l" / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        ids = [patch_id(split, i) for i in range(len(RECORDS))]
        for pid, (names, epsg, x, y, date), shape in zip(ids, RECORDS, SIZES, strict=True):
            write_image(images / f"{pid}.tif", epsg, (x, y), shape)
            write_label(labels / f"{pid}_labels_metadata.json", names, epsg, (x, y), date)
        rows = (["patch_id,extra"] if header else []) + [f"{pid},x" for pid in ids]
        (root / f"bigearthnet-{split}.csv").write_text("\n".join(rows) + "\n")
    if archive:
        with tarfile.open(root / "bigearthnet-l.tar.gz", "w:gz") as tar:
            tar.add(root / "bigearthnet-l", arcname="bigearthnet-l")
    return {p.name: md5(p) for p in root.iterdir() if p.is_file()}


if __name__ == "__main__":
    for name, digest in make_bigearthnet_ls(os.getcwd()).items():
        print(name, digest)
