"""PCA-RGB pictures of embedding rasters: the first three principal components as colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from ..outputs import atomic_path

__all__ = ["QUICKLOOK_MIN_SIZE", "pca_rgb", "save_quicklook"]

#: the quicklook's longer side is at least this many pixels (each window a block of pixels)
QUICKLOOK_MIN_SIZE = 512


def pca_rgb(path: str | Path, percentiles: tuple[float, float] = (2.0, 98.0)) -> np.ndarray:
    """The embedding raster at ``path`` as an ``(H, W, 4)`` RGBA image in [0, 1].

    Two streaming passes over the rows (memory ``O(dim^2 + H * W)``): the mean and covariance of
    the valid pixels, then their projection on the top three principal components, each stretched
    between the given percentiles. Nodata pixels are transparent.
    """
    with rasterio.open(path) as src:
        dim, height, width = src.count, src.height, src.width
        total = np.zeros(dim)
        outer = np.zeros((dim, dim))
        count = 0
        for row in range(height):
            values = _valid_rows(src, row)
            total += values.sum(axis=0)
            outer += values.T @ values
            count += len(values)
        rgba = np.zeros((height, width, 4))
        if count < 2:
            return rgba
        mean = total / count
        cov = outer / count - np.outer(mean, mean)
        _, vectors = np.linalg.eigh(cov)
        components = vectors[:, ::-1][:, :3]  # eigh sorts ascending
        # A deterministic sign per component (largest loading positive) so colours are reproducible.
        components *= np.sign(components[np.abs(components).argmax(axis=0), range(3)])
        for row in range(height):
            values = src.read(window=Window(0, row, width, 1))[:, 0].T.astype(np.float64)
            valid = ~np.isnan(values).any(axis=1)
            rgba[row, valid, :3] = (values[valid] - mean) @ components
            rgba[row, valid, 3] = 1.0
    valid = rgba[..., 3] > 0
    lo, hi = np.percentile(rgba[valid, :3], percentiles, axis=0)
    rgba[..., :3] = np.where(
        valid[..., None], np.clip((rgba[..., :3] - lo) / np.maximum(hi - lo, 1e-12), 0, 1), 0
    )
    return rgba


def _valid_rows(src: rasterio.io.DatasetReader, row: int) -> np.ndarray:
    """The non-nodata pixels of raster row ``row`` as ``(n, dim)`` float64."""
    values = src.read(window=Window(0, row, src.width, 1))[:, 0].T.astype(np.float64)
    return values[~np.isnan(values).any(axis=1)]


def save_quicklook(tif: str | Path, png: str | Path, min_size: int = QUICKLOOK_MIN_SIZE) -> Path:
    """Write :func:`pca_rgb` of ``tif`` to ``png`` (atomically); returns ``png``.

    The picture is enlarged by a whole factor (nearest neighbour: each window a square block of
    pixels) until its longer side reaches ``min_size``, so that a map of a few windows per side is
    viewable at its natural size.
    """
    import matplotlib.image

    rgba = pca_rgb(tif)
    factor = max(1, -(-min_size // max(rgba.shape[:2])))
    rgba = rgba.repeat(factor, axis=0).repeat(factor, axis=1)
    png = Path(png)
    with atomic_path(png) as tmp:
        matplotlib.image.imsave(tmp, rgba, format="png")
    return png
