"""The regular grid of square windows over a scene, and its output raster geometry."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pyproj import CRS, Transformer
from rasterio import Affine

__all__ = ["WindowGrid"]


@dataclass(frozen=True)
class WindowGrid:
    """``size x size`` px windows every ``stride`` px, anchored at the scene's upper-left pixel.

    Window ``(i, j)`` covers scene rows ``i * stride .. i * stride + size`` and columns
    ``j * stride .. j * stride + size``; only windows entirely inside the scene are used, so up to
    ``(height - size) % stride`` rows at the bottom (columns at the right) are not embedded.
    Its embedding is output pixel ``(i, j)``: a ``stride``-px square centred on the window centre,
    so the output transform is the scene transform shifted by ``(size - stride) / 2`` px and scaled
    by ``stride`` (for ``stride == size`` the two rasters share their upper-left corner).

    Args:
        height, width: scene size in pixels.
        transform: scene pixel -> map transform (north-up).
        crs: scene CRS.
        size: window size in pixels.
        stride: window step in pixels.
    """

    height: int
    width: int
    transform: Affine
    crs: CRS
    size: int = 40
    stride: int = 40

    def __post_init__(self) -> None:
        if self.stride < 1 or self.size < 1:
            raise ValueError(f"size and stride must be positive, got {self.size} and {self.stride}")
        if self.height < self.size or self.width < self.size:
            raise ValueError(
                f"the scene ({self.height}x{self.width} px) is smaller than one {self.size}x{self.size} window"
            )

    @property
    def rows(self) -> int:
        """Windows per column (output height)."""
        return (self.height - self.size) // self.stride + 1

    @property
    def cols(self) -> int:
        """Windows per row (output width)."""
        return (self.width - self.size) // self.stride + 1

    @property
    def out_transform(self) -> Affine:
        """Output pixel -> map transform (pixel = ``stride`` scene pixels, centred on its window)."""
        shift = (self.size - self.stride) / 2
        return self.transform @ Affine.translation(shift, shift) @ Affine.scale(self.stride)

    @cached_property
    def _to_lonlat(self) -> Transformer:
        return Transformer.from_crs(self.crs, CRS.from_epsg(4326), always_xy=True)

    def centres(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates ``x, y`` ``(cols,)`` of the centres of the windows of grid row ``row``."""
        cols = np.arange(self.cols) * self.stride + self.size / 2
        x, y = self.transform @ (cols, np.full(self.cols, row * self.stride + self.size / 2))
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def latlon(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Latitude and longitude (degrees, ``(cols,)``) of the window centres of grid row ``row``."""
        lon, lat = self._to_lonlat.transform(*self.centres(row))
        return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
