"""Write a synthetic Landsat Collection 2 Level-2 product (for tests, benchmarks and docs)."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from pyproj import CRS
from rasterio import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from ..bands import BANDS, BIGEARTHNET_LS_MEAN

__all__ = ["make_synthetic_landsat_product"]


def _noise(gx: np.ndarray, gy: np.ndarray, band: int, seed: int) -> np.ndarray:
    """Integer noise in [-500, 500) that depends only on the map position and band (a hash)."""
    h = (gx * 73856093) ^ (gy * 19349663) ^ ((band + 1) * 83492791) ^ (seed * 2654435761)
    h = (h ^ (h >> 13)) * 1274126177
    return (h & 0xFFFFFFFF) % 1000 - 500


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
    qa_flags: Sequence[tuple[slice, slice, int]] = (),
    utm_zone: int = 30,
    ul_centre: tuple[float, float] = (487020.0, 5929980.0),
    time: dt.datetime = dt.datetime(2020, 9, 27, 11, 10, 50, 314003, tzinfo=dt.UTC),
    seed: int = 0,
    path_row: str = "204023",
) -> Path:
    """Write ``root/<product id>/`` with ``SR_B1..SR_B7`` uint16 TIFFs and the ``MTL.txt``.

    The bands are tiled, deflate-compressed GeoTIFFs like USGS's, written in strips (memory stays
    small for full-size scenes): smooth per-band fields around the BigEarthNet-L means, plus noise,
    both functions of the map position, so overlapping synthetic scenes agree where they overlap.
    The product id is ``LC08_L2SP_<path_row>_<acquisition date>_<date + 9 days>_02_T1``.

    Args:
        root: parent folder.
        height, width: scene size in pixels (a full Landsat scene is about 7,800 x 7,600).
        georeferenced: write the CRS/transform into the TIFFs (False: the MTL is the only source).
        fill: rows/cols set to DN 0 in every band (``(slice(0, 40), slice(0, 80))``).
        qa_pixel: also write ``QA_PIXEL`` (bit 0 set on ``fill``, clear land elsewhere).
        qa_flags: ``(rows, cols, bit)``: also set ``QA_PIXEL`` bit ``bit`` there (e.g. 3: cloud,
            4: cloud shadow, 5: snow; see :mod:`~torchgeo_moemae.scene.qa`); implies ``qa_pixel``.
        utm_zone: UTM zone (north) of the grid.
        ul_centre: map coordinates of the upper-left pixel's CENTRE (as the MTL states them).
        time: acquisition time (UTC).
        seed: seed of the noise.
        path_row: WRS-2 path and row in the product id.

    Returns:
        The product folder.
    """
    product = f"LC08_L2SP_{path_row}_{time:%Y%m%d}_{time + dt.timedelta(days=9):%Y%m%d}_02_T1"
    folder = Path(root) / product
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{product}_MTL.txt").write_text(
        _mtl(product, utm_zone, ul_centre, height, width, time)
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
    qa_pixel = qa_pixel or bool(qa_flags)
    strip = 512
    names = [*BANDS, *(["QA_PIXEL"] if qa_pixel else [])]
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", NotGeoreferencedWarning
        )  # on purpose when not georeferenced
        outputs = [
            rasterio.open(folder / f"{product}_{name}.TIF", "w", **profile) for name in names
        ]
    # global pixel indices: the map position in pixels (x right, y down)
    gx0, gy0 = round(ul_centre[0] / 30), round(-ul_centre[1] / 30)
    try:
        cols = np.arange(width)
        for top in range(0, height, strip):
            rows = np.arange(top, min(top + strip, height))[:, None]
            gx, gy = gx0 + cols[None, :], gy0 + rows
            field = np.sin(gy / 97.0) * np.cos(gx / 131.0)  # smooth "land cover"
            mask = np.zeros(field.shape, dtype=bool)
            if fill is not None:
                mask[:, fill[1]] = True
                mask &= (rows >= (fill[0].start or 0)) & (rows < (fill[0].stop or height))
            for b, dst in enumerate(outputs[: len(BANDS)]):
                noise = _noise(gx, gy, b, seed)
                band = BIGEARTHNET_LS_MEAN[b] + 4000 * field * (1 if b % 2 else -1) + noise
                band = np.clip(band, 1, 65535).astype(np.uint16)
                band[mask] = 0
                dst.write(band, 1, window=Window(0, top, width, len(rows)))
            if qa_pixel:
                qa = np.where(mask, 1, 21824).astype(np.uint16)  # 21824: clear land, no fill bit
                for flag_rows, flag_cols, bit in qa_flags:
                    here = np.zeros(qa.shape, dtype=bool)
                    here[:, flag_cols] = True
                    inside = (rows >= (flag_rows.start or 0)) & (rows < (flag_rows.stop or height))
                    qa[here & inside] |= 1 << bit
                outputs[-1].write(qa, 1, window=Window(0, top, width, len(rows)))
    finally:
        for dst in outputs:
            dst.close()
    return folder
