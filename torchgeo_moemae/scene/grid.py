"""The grid of square windows over a scene, fixed in the scene's CRS, and its output geometry."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pyproj import CRS, Transformer
from rasterio import Affine

__all__ = ["WindowGrid"]

#: tolerance of the grid anchoring, in pixels (map coordinates are floats)
_EPS = 1e-6


@dataclass(frozen=True)
class WindowGrid:
    """``size x size`` px windows every ``stride`` px on a grid fixed in the scene's CRS.

    The grid does not start at the scene's corner: a window's upper-left pixel is one whose
    centre lies at a multiple of ``stride x res`` in map x and y (Landsat's 30 m pixels have their
    centres on multiples of 30 m, their edges 15 m off; for a raster whose pixel edges are on
    multiples of ``res``, the centre half a pixel right of / below such a multiple). So the grids of
    all scenes in one CRS coincide: maps of overlapping scenes and of different dates of a place
    align pixel for pixel and stack without resampling.

    Window ``(i, j)`` covers scene rows ``row0 + i * stride .. + size`` and columns
    ``col0 + j * stride .. + size``; only windows entirely inside the scene are used. Its embedding
    is output pixel ``(i, j)``: a ``stride``-px square centred on the window centre, so the output
    transform is the scene transform shifted by ``(row0, col0) + (size - stride) / 2`` px and scaled
    by ``stride``.

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
        if self.transform.b != 0 or self.transform.d != 0 or self.transform.e >= 0:
            raise ValueError(
                f"the scene must be north-up, got transform {tuple(self.transform)[:6]}"
            )
        if self.rows < 1 or self.cols < 1:
            raise ValueError(
                f"the scene ({self.height}x{self.width} px) holds no whole {self.size}x{self.size} "
                f"window of the grid anchored at multiples of {self.stride} px in its CRS"
            )

    @property
    def col0(self) -> int:
        """Scene column of the first window's left edge."""
        res = self.transform.a
        first = math.floor((self.transform.c + res / 2) / res + _EPS)  # column 0's global index
        return -first % self.stride

    @property
    def row0(self) -> int:
        """Scene row of the first window's top edge."""
        res = -self.transform.e
        first = math.floor((res / 2 - self.transform.f) / res + _EPS)  # row 0's (downward) index
        return -first % self.stride

    @property
    def rows(self) -> int:
        """Windows per column (output height)."""
        return max(0, (self.height - self.row0 - self.size) // self.stride + 1)

    @property
    def cols(self) -> int:
        """Windows per row (output width)."""
        return max(0, (self.width - self.col0 - self.size) // self.stride + 1)

    @property
    def out_transform(self) -> Affine:
        """Output pixel -> map transform (pixel = ``stride`` scene pixels, centred on its window)."""
        shift = (self.size - self.stride) / 2
        return (
            self.transform
            @ Affine.translation(self.col0 + shift, self.row0 + shift)
            @ Affine.scale(self.stride)
        )

    def top(self, row: int) -> int:
        """Scene row of the top edge of the windows of grid row ``row``."""
        return self.row0 + row * self.stride

    @cached_property
    def _to_lonlat(self) -> Transformer:
        return Transformer.from_crs(self.crs, CRS.from_epsg(4326), always_xy=True)

    def centres(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates ``x, y`` ``(cols,)`` of the centres of the windows of grid row ``row``."""
        cols = self.col0 + np.arange(self.cols) * self.stride + self.size / 2
        x, y = self.transform @ (cols, np.full(self.cols, self.top(row) + self.size / 2))
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def latlon(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Latitude and longitude (degrees, ``(cols,)``) of the window centres of grid row ``row``."""
        lon, lat = self._to_lonlat.transform(*self.centres(row))
        return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
