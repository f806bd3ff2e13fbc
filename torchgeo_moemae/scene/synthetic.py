"""Write a synthetic Landsat Collection 2 Level-2 product (for tests, benchmarks and docs)."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import rasterio
from pyproj import CRS
from rasterio import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from ..bands import BANDS, BIGEARTHNET_LS_MEAN

__all__ = ["make_synthetic_landsat_product"]

#: Product id of the synthetic scene (path/row 204/023, as the real Liverpool crop).
PRODUCT_ID = "LC08_L2SP_204023_20200927_20201006_02_T1"


def _mtl(
    product: str, zone: int, ul: tuple[float, float], height: int, width: int, time: dt.datetime
) -> str:
    files = "\n".join(
        f'    FILE_NAME_BAND_{i + 1} = "{product}_{band}.TIF"' for i, band in enumerate(BANDS)
    )
    clock = time.strftime("%H:%M:%S.%f") + "0Z"  # 7 fractional digits, as USGS writes them
    return f"""GROUP = LANDSAT_METADATA_FILE
  GROUP = PRODUCT_CONTENTS
    LANDSAT_PRODUCT_ID = "{product}"
{files}
    FILE_NAME_QUALITY_L1_PIXEL = "{product}_QA_PIXEL.TIF"
  END_GROUP = PRODUCT_CONTENTS
  GROUP = IMAGE_ATTRIBUTES
    SPACECRAFT_ID = "LANDSAT_8"
    DATE_ACQUIRED = {time:%Y-%m-%d}
    SCENE_CENTER_TIME = "{clock}"
  END_GROUP = IMAGE_ATTRIBUTES
  GROUP = PROJECTION_ATTRIBUTES
    MAP_PROJECTION = "UTM"
    DATUM = "WGS84"
    UTM_ZONE = {zone}
    GRID_CELL_SIZE_REFLECTIVE = 30.00
    REFLECTIVE_LINES = {height}
    REFLECTIVE_SAMPLES = {width}
    ORIENTATION = "NORTH_UP"
    CORNER_UL_PROJECTION_X_PRODUCT = {ul[0]:.1f}
    CORNER_UL_PROJECTION_Y_PRODUCT = {ul[1]:.1f}
  END_GROUP = PROJECTION_ATTRIBUTES
END_GROUP = LANDSAT_METADATA_FILE
END
"""


def make_synthetic_landsat_product(
    root: str | Path,
    height: int = 120,
    width: int = 160,
    *,
    georeferenced: bool = True,
    fill: tuple[slice, slice] | None = None,
    qa_pixel: bool = False,
    utm_zone: int = 30,
    ul_centre: tuple[float, float] = (487020.0, 5929980.0),
    time: dt.datetime = dt.datetime(2020, 9, 27, 11, 10, 50, 314003, tzinfo=dt.UTC),
    seed: int = 0,
) -> Path:
    """Write ``root/<product id>/`` with ``SR_B1..SR_B7`` uint16 TIFFs and the ``MTL.txt``.

    The bands are tiled, deflate-compressed GeoTIFFs like USGS's, written in strips (memory stays
    small for full-size scenes): smooth per-band fields around the BigEarthNet-L means, plus noise.

    Args:
        root: parent folder.
        height, width: scene size in pixels (a full Landsat scene is about 7,800 x 7,600).
        georeferenced: write the CRS/transform into the TIFFs (False: the MTL is the only source).
        fill: rows/cols set to DN 0 in every band (``(slice(0, 40), slice(0, 80))``).
        qa_pixel: also write ``QA_PIXEL`` (bit 0 set on ``fill``).
        utm_zone: UTM zone (north) of the grid.
        ul_centre: map coordinates of the upper-left pixel's CENTRE (as the MTL states them).
        time: acquisition time (UTC).
        seed: seed of the noise.

    Returns:
        The product folder.
    """
    folder = Path(root) / PRODUCT_ID
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{PRODUCT_ID}_MTL.txt").write_text(
        _mtl(PRODUCT_ID, utm_zone, ul_centre, height, width, time)
    )
    profile = dict(
        driver="GTiff", dtype="uint16", count=1, height=height, width=width, tiled=True,
        blockxsize=256, blockysize=256, compress="deflate",
    )  # fmt: skip
    if georeferenced:
        profile |= dict(
            crs=CRS.from_epsg(32600 + utm_zone),
            transform=Affine(30, 0, ul_centre[0] - 15, 0, -30, ul_centre[1] + 15),
        )
    rng = np.random.default_rng(seed)
    strip = 512
    names = [*BANDS, *(["QA_PIXEL"] if qa_pixel else [])]
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", NotGeoreferencedWarning
        )  # on purpose when not georeferenced
        outputs = [
            rasterio.open(folder / f"{PRODUCT_ID}_{name}.TIF", "w", **profile) for name in names
        ]
    try:
        cols = np.arange(width)
        for top in range(0, height, strip):
            rows = np.arange(top, min(top + strip, height))[:, None]
            field = np.sin(rows / 97.0) * np.cos(cols / 131.0)  # smooth "land cover"
            mask = np.zeros(field.shape, dtype=bool)
            if fill is not None:
                mask[:, fill[1]] = True
                mask &= (rows >= (fill[0].start or 0)) & (rows < (fill[0].stop or height))
            for b, dst in enumerate(outputs[: len(BANDS)]):
                noise = rng.integers(-500, 500, field.shape)
                band = BIGEARTHNET_LS_MEAN[b] + 4000 * field * (1 if b % 2 else -1) + noise
                band = np.clip(band, 1, 65535).astype(np.uint16)
                band[mask] = 0
                dst.write(band, 1, window=Window(0, top, width, len(rows)))
            if qa_pixel:
                qa = np.where(mask, 1, 21824).astype(np.uint16)  # 21824: clear land, no fill bit
                outputs[-1].write(qa, 1, window=Window(0, top, width, len(rows)))
    finally:
        for dst in outputs:
            dst.close()
    return folder
