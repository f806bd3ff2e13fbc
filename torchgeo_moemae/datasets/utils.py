"""Shared helpers of the Landsat-Bench datasets: errors, raster reading, resizing, downloads."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
import rasterio.errors
import torch
import torch.nn.functional as F
from torch import Tensor
from torchgeo.datasets.utils import check_integrity

from ..errors import root_cause

logger = logging.getLogger(__name__)

#: What a dataset does with a bad sample: fail loudly, or drop it at ``__init__`` and count it.
OnError = Literal["raise", "skip"]

#: Landsat Collection 2 Level-2 fill value (DN).
FILL_VALUE = 0


class InvalidSampleError(ValueError):
    """A sample on disk is unusable; the message names the file and the problem."""


class MissingSampleFileError(InvalidSampleError, FileNotFoundError):
    """A file a sample needs (image, label JSON) does not exist."""


def read_raster(path: str | Path, expected_bands: int) -> np.ndarray:
    """Read a whole multi-band GeoTIFF.

    Args:
        path: file to read.
        expected_bands: the band count the format prescribes; any other count is an error.

    Returns:
        array (C, H, W) in the file's dtype.

    Raises:
        MissingSampleFileError: if ``path`` does not exist.
        InvalidSampleError: if the file is corrupt or truncated, or has the wrong band count.
    """
    if not os.path.isfile(path):
        raise MissingSampleFileError(f"{path}: image file is missing")
    try:
        # GDAL otherwise lists the directory on every open to look for sidecar files: with
        # BigEarthNet-L's 519k patches in one images/ directory that dominates loading.
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(path) as src:
            if src.count != expected_bands:
                raise InvalidSampleError(
                    f"{path}: expected {expected_bands} bands, found {src.count}"
                )
            array: np.ndarray = src.read()
    except rasterio.errors.RasterioError as err:
        # GDAL reports truncation either on open or on the first strip read.
        raise InvalidSampleError(
            f"{path}: unreadable or truncated GeoTIFF ({root_cause(err)})"
        ) from err
    return array


def check_pixels(image: np.ndarray, path: str | Path) -> None:
    """Reject an image holding NaN/inf.

    Fill (DN 0), partial or total, is kept, as in the authors' code and Landsat-Bench: the real
    sample set has a patch that is entirely fill. ``max_fill_fraction`` drops such samples on request.

    Raises:
        InvalidSampleError: naming ``path``.
    """
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise InvalidSampleError(f"{path}: image holds non-finite values")


def fill_fraction(image: Tensor) -> float:
    """Fraction of the pixels of a (C, H, W) image that are fill (DN 0 in every band)."""
    return float((image == FILL_VALUE).all(dim=0).float().mean())


def check_max_fill_fraction(value: float | None) -> float | None:
    """Validate the ``max_fill_fraction`` argument: None or a number in [0, 1].

    Raises:
        ValueError: naming the argument.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(
            "max_fill_fraction must be None (keep every sample) or a number in [0, 1] (drop samples "
            f"whose fraction of fill pixels, DN 0 in every band, exceeds it), got {value!r}"
        )
    return float(value)


def center_crop(image: Tensor, size: int) -> Tensor:
    """Crop the central ``size`` x ``size`` window (dimensions already <= size stay as they are).

    Args:
        image: (C, H, W).

    Returns:
        (C, min(H, size), min(W, size)); for odd margins the extra pixel is dropped at the end.
    """
    h, w = image.shape[-2:]
    top, left = max(h - size, 0) // 2, max(w - size, 0) // 2
    return image[..., top : top + min(h, size), left : left + min(w, size)]


def resize(image: Tensor, size: int) -> Tensor:
    """Bilinearly resize (C, H, W) to (C, size, size) (no antialias, align_corners=False)."""
    if image.shape[-2:] == (size, size):
        return image
    out = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False)
    return out[0]


def to_tensor(image: np.ndarray) -> Tensor:
    """(C, H, W) integer DN array -> float32 tensor (uint16 has no torch dtype before 2.3)."""
    return torch.from_numpy(image.astype(np.float32, copy=False))


def warn_skipped(dataset: str, skipped: dict[str, str], kept: int) -> None:
    """Log how many samples were dropped (``on_error="skip"``, ``max_fill_fraction``), with the
    first reason as an example."""
    if skipped:
        first = next(iter(skipped.values()))
        logger.warning(
            "%s: skipped %d sample(s), kept %d (first: %s); see dataset.skipped",
            dataset,
            len(skipped),
            kept,
            first,
        )


def verify_md5(path: str, md5: str | None, checksum: bool) -> None:
    """Check ``path`` against ``md5`` when ``checksum`` is set.

    Raises:
        RuntimeError: if the MD5 does not match. A file with no known MD5 only warns: the
            Landsat-Bench repos publish none, and an error would make ``checksum=True`` unusable.
    """
    if not checksum:
        return
    if md5 is None:
        warnings.warn(f"{path}: no MD5 is known for this file, not verified", stacklevel=4)
        return
    if not check_integrity(path, md5):
        raise RuntimeError(f"{path}: MD5 mismatch (expected {md5}); delete it and download again")
