"""Writing the embedding raster: rows streamed into a temporary GeoTIFF, then copied to a
deflate-compressed Cloud-Optimized GeoTIFF and moved into place atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from pyproj import CRS
from rasterio import Affine
from rasterio.windows import Window

from ..outputs import atomic_path, partial_path

__all__ = ["EmbeddingWriter"]

#: Nodata value of the embedding rasters (windows that are fill).
NODATA = float("nan")


class EmbeddingWriter:
    """Stream ``(dim, cols)`` rows of an embedding map to ``path`` (context manager).

    Rows go to an uncompressed temporary GeoTIFF next to ``path``; on a clean exit it is copied
    with GDAL's COG driver (deflate, floating-point predictor, 256 px tiles, nearest-neighbour
    overviews so every overview pixel is a real window's embedding) to another temporary name,
    which then replaces ``path``. On error nothing is left behind.

    Args:
        path: the output ``.tif``.
        height, width: output size (grid rows, cols).
        dim: embedding dimensions (bands).
        crs, transform: output georeferencing.
        tags: metadata tags stored in the file.
    """

    def __init__(
        self,
        path: str | Path,
        height: int,
        width: int,
        dim: int,
        crs: CRS,
        transform: Affine,
        tags: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.profile = dict(
            driver="GTiff",
            height=height,
            width=width,
            count=dim,
            dtype="float32",
            crs=crs.to_wkt(),
            transform=transform,
            nodata=NODATA,
        )
        self.tags = {k: str(v) for k, v in (tags or {}).items()}

    def __enter__(self) -> EmbeddingWriter:
        parent = self.path.parent
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(
                f"{self.path}: {parent} is a file, not a folder; write the map into a folder"
            )
        if not parent.is_dir():
            raise FileNotFoundError(f"{self.path}: output folder {parent} does not exist")
        self._tmp = partial_path(self.path)
        try:
            self._dst = rasterio.open(self._tmp, "w", **self.profile)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self._dst.update_tags(**self.tags)
        self._dst.descriptions = tuple(f"emb_{i:03d}" for i in range(self.profile["count"]))
        return self

    def write_row(self, row: int, values: np.ndarray) -> None:
        """Write grid row ``row``: ``(dim, cols)`` float32 (NaN = nodata)."""
        self._dst.write(values[:, None, :], window=Window(0, row, values.shape[1], 1))

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            self._dst.close()
            if exc_type is None:
                with atomic_path(self.path) as final:
                    rasterio.shutil.copy(
                        self._tmp,
                        final,
                        driver="COG",
                        COMPRESS="DEFLATE",
                        PREDICTOR="YES",
                        BLOCKSIZE=256,
                        RESAMPLING="NEAREST",
                        OVERVIEWS="AUTO",
                    )
        finally:
            self._tmp.unlink(missing_ok=True)
