"""Writing the embedding raster: rows streamed into a temporary GeoTIFF, then copied to a
deflate-compressed Cloud-Optimized GeoTIFF under a partial name, moved into place by the caller
(or atomically by the context manager)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from pyproj import CRS
from rasterio import Affine
from rasterio.windows import Window

from ..outputs import partial_path

__all__ = ["EmbeddingWriter"]

#: Nodata value of the embedding rasters (windows that are fill).
NODATA = float("nan")


class EmbeddingWriter:
    """Stream ``(dim, cols)`` rows of an embedding map to ``path``.

    Rows go to an uncompressed temporary GeoTIFF next to ``path`` (:meth:`open`,
    :meth:`write_row`); :meth:`finish` copies it with GDAL's COG driver (deflate, floating-point
    predictor, 256 px tiles, nearest-neighbour overviews so every overview pixel is a real window's
    embedding) to a partial name next to ``path`` and returns it, for the caller to move into place
    with the files that describe it; :meth:`abort` removes everything. As a context manager, a
    clean exit moves the COG into place and an error leaves nothing behind.

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

    def open(self) -> EmbeddingWriter:
        """Create the temporary GeoTIFF; returns self."""
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

    def finish(self, tags: dict[str, Any] | None = None) -> Path:
        """Add ``tags``, close, and write the COG under a partial name next to :attr:`path`.

        Returns:
            the partial COG (the caller moves it to :attr:`path` or removes it).
        """
        cog = partial_path(self.path)
        try:
            if tags:
                self._dst.update_tags(**{k: str(v) for k, v in tags.items()})
            self._dst.close()
            rasterio.shutil.copy(
                self._tmp,
                cog,
                driver="COG",
                COMPRESS="DEFLATE",
                PREDICTOR="YES",
                BLOCKSIZE=256,
                RESAMPLING="NEAREST",
                OVERVIEWS="AUTO",
            )
        except BaseException:
            cog.unlink(missing_ok=True)
            raise
        finally:
            self.abort()
        return cog

    def abort(self) -> None:
        """Close and remove the temporary GeoTIFF."""
        self._dst.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddingWriter:
        return self.open()

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:
            self.abort()
            return
        cog = self.finish()
        try:
            os.replace(cog, self.path)
        finally:
            cog.unlink(missing_ok=True)
