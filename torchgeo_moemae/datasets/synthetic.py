"""A small, deterministic Landsat-like dataset in the BigEarthNet-L layout, for offline quickstarts.

Each patch mixes one to three land-cover "materials" laid out as smooth blobs, so masked patches
are predictable from their neighbours and labels are visible in the spectra. Every material has a
plausible Landsat 8 surface-reflectance spectrum (SR_B1..SR_B7) and one CORINE label; a patch is
labelled with the materials covering at least 5 % of it. Locations span Europe (UTM per zone),
dates 2017-06..2018-05 at 09-11 UTC, like BigEarthNet.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from pyproj import CRS, Transformer
from rasterio import Affine

from .bigearthnet_ls import BigEarthNetLS

#: (CORINE label, reflectance of SR_B1..SR_B7)
MATERIALS: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("Water bodies", (0.060, 0.050, 0.045, 0.030, 0.015, 0.008, 0.005)),
    ("Sea and ocean", (0.080, 0.070, 0.050, 0.025, 0.010, 0.005, 0.003)),
    ("Coniferous forest", (0.025, 0.025, 0.045, 0.025, 0.220, 0.100, 0.040)),
    ("Broad-leaved forest", (0.030, 0.035, 0.065, 0.035, 0.360, 0.170, 0.070)),
    ("Non-irrigated arable land", (0.055, 0.065, 0.100, 0.100, 0.300, 0.250, 0.150)),
    ("Pastures", (0.040, 0.045, 0.085, 0.055, 0.340, 0.200, 0.100)),
    ("Discontinuous urban fabric", (0.090, 0.100, 0.115, 0.125, 0.220, 0.210, 0.180)),
    ("Industrial or commercial units", (0.130, 0.140, 0.150, 0.160, 0.200, 0.230, 0.220)),
    ("Beaches, dunes, sands", (0.140, 0.170, 0.220, 0.270, 0.320, 0.400, 0.340)),
    ("Peatbogs", (0.030, 0.035, 0.055, 0.050, 0.160, 0.090, 0.045)),
    ("Transitional woodland/shrub", (0.035, 0.040, 0.070, 0.060, 0.260, 0.180, 0.100)),
)
REFLECTANCE_SCALE, REFLECTANCE_OFFSET = 2.75e-5, -0.2  # Landsat C2 L2: refl = DN*scale + offset
PIXEL_SIZE = 30.0
_MARKER = ".synthetic-complete.json"


def _to_dn(reflectance: np.ndarray) -> np.ndarray:
    """Surface reflectance -> uint16 DN (never 0, the fill value)."""
    dn = (reflectance - REFLECTANCE_OFFSET) / REFLECTANCE_SCALE
    return np.clip(np.rint(dn), 1, 65535).astype(np.uint16)


def _smooth_fields(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """``count`` smooth random fields (count, size, size): bicubic upsampling of 4x4 noise."""
    coarse = torch.from_numpy(rng.standard_normal((1, count, 4, 4)).astype(np.float32))
    fine = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    out: np.ndarray = fine[0].numpy()
    return out


def _patch(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[str]]:
    """One (7, size, size) uint16 image and the CORINE labels of the materials it shows."""
    materials = rng.choice(len(MATERIALS), size=int(rng.integers(1, 4)), replace=False)
    fields = _smooth_fields(rng, len(materials), size) + rng.normal(0, 0.3, (len(materials), 1, 1))
    # Soft assignment: sharp enough for blobs with clean interiors, smooth at the borders.
    weights = np.exp(4.0 * fields)
    weights /= weights.sum(axis=0, keepdims=True)
    spectra = np.array([MATERIALS[m][1] for m in materials])  # (k, 7)
    spectra = spectra * rng.uniform(0.9, 1.1, (len(materials), 1))  # per-patch brightness
    reflectance = np.einsum("khw,kc->chw", weights, spectra)
    reflectance += rng.normal(0, 0.004, reflectance.shape)  # sensor noise
    coverage = (weights.argmax(axis=0)[None] == np.arange(len(materials))[:, None, None]).mean(
        axis=(1, 2)
    )
    labels = [MATERIALS[m][0] for m, c in zip(materials, coverage, strict=True) if c >= 0.05]
    return _to_dn(reflectance), labels


@cache
def _utm(zone: int) -> tuple[CRS, Transformer]:
    """The CRS of a northern UTM zone and a lon/lat -> easting/northing transformer for it."""
    crs = CRS.from_epsg(32600 + zone)
    return crs, Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True)


def _location(rng: np.random.Generator, size: int) -> tuple[CRS, tuple[float, float]]:
    """A European location: its UTM CRS and the patch's upper-left corner on the 30 m grid."""
    lat, lon = rng.uniform(37.0, 68.0), rng.uniform(-9.0, 30.0)
    crs, transformer = _utm(int((lon + 180) // 6) + 1)
    x, y = transformer.transform(lon, lat)
    half = size * PIXEL_SIZE / 2
    snap = PIXEL_SIZE
    return crs, (snap * round((x - half) / snap), snap * round((y + half) / snap))


def _date(rng: np.random.Generator) -> datetime:
    """A date in June 2017 - May 2018 at 09:00-11:59 UTC (BigEarthNet's overpasses)."""
    day = datetime(2017, 6, 1, tzinfo=UTC) + timedelta(days=int(rng.integers(0, 365)))
    return day + timedelta(hours=int(rng.integers(9, 12)), seconds=int(rng.integers(0, 3600)))


def _write_patch(
    base: Path, patch_id: str, image: np.ndarray, crs: CRS, ul: tuple[float, float], doc: dict
) -> None:
    """Write ``images/<id>.tif`` and ``labels/<id>_labels_metadata.json``."""
    size = image.shape[-1]
    profile = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": image.shape[0],
        "height": size,
        "width": size,
        "crs": crs,
        "transform": Affine(PIXEL_SIZE, 0, ul[0], 0, -PIXEL_SIZE, ul[1]),
    }
    with rasterio.open(base / "images" / f"{patch_id}.tif", "w", **profile) as dst:
        dst.write(image)
    with open(base / "labels" / f"{patch_id}_labels_metadata.json", "w") as f:
        json.dump(doc, f)


def make_synthetic_bigearthnet_ls(
    root: str | Path, num_patches: int = 300, seed: int = 0, size: int = 42, overwrite: bool = False
) -> Path:
    """Write a synthetic BigEarthNet-L dataset under ``root`` (about a second for 300 patches).

    Args:
        root: dataset root; ``BigEarthNetLS(root)`` reads it.
        num_patches: number of patches, split 70/15/15 into train/val/test.
        seed: everything (spectra, layout, labels, places, dates) is a function of it.
        size: patch height/width in px (BigEarthNet-L patches are 38..45; 42 gets center-cropped).
        overwrite: rewrite even if a complete dataset with these settings is there.

    Returns:
        ``root`` as a Path.

    Raises:
        FileExistsError: if ``root`` holds a synthetic dataset made with other settings.
    """
    root = Path(root)
    base = root / BigEarthNetLS.directory
    settings = {"num_patches": num_patches, "seed": seed, "size": size}
    marker = root / _MARKER
    if marker.is_file() and not overwrite:
        if json.loads(marker.read_text()) == settings:
            return root
        raise FileExistsError(
            f"{root} holds a synthetic dataset made with {marker.read_text()}; "
            f"pass overwrite=True to replace it with {settings}"
        )
    if overwrite and base.exists():
        shutil.rmtree(base)
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "labels").mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    ids: list[str] = []
    for i in range(num_patches):
        image, labels = _patch(rng, size)
        crs, ul = _location(rng, size)
        when = _date(rng)
        patch_id = f"S2A_MSIL2A_{when:%Y%m%dT%H%M%S}_{i // 100}_{i % 100}"
        doc = {
            "labels": labels,
            "coordinates": {
                "ulx": ul[0],
                "uly": ul[1],
                "lrx": ul[0] + size * PIXEL_SIZE,
                "lry": ul[1] - size * PIXEL_SIZE,
            },
            "projection": crs.to_wkt("WKT1_GDAL"),
            "tile_source": "synthetic",
            "acquisition_date": f"{when:%Y-%m-%d %H:%M:%S}",
        }
        _write_patch(base, patch_id, image, crs, ul, doc)
        ids.append(patch_id)

    n_train, n_val = math.floor(0.7 * num_patches), math.floor(0.15 * num_patches)
    parts = {"train": ids[:n_train], "val": ids[n_train : n_train + n_val]}
    parts["test"] = ids[n_train + n_val :]
    for split, split_ids in parts.items():
        with open(root / BigEarthNetLS.split_filenames[split], "w", newline="") as f:
            csv.writer(f).writerows([i] for i in split_ids)
    marker.write_text(json.dumps(settings))
    return root
