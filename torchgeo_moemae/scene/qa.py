"""Landsat Collection 2 ``QA_PIXEL`` bits: fill, and what makes a window cloud-masked.

``QA_PIXEL`` (uint16, one per pixel) flags, among others, bit 0 fill, bit 1 dilated cloud, bit 2
cirrus, bit 3 cloud, bit 4 cloud shadow, bit 5 snow, bit 6 clear and bit 7 water (USGS Landsat 8-9
Collection 2 Level-2 Science Product Guide). BigEarthNet-L, the pre-training data, holds only
cloud-free patches, so a window covered by cloud, dilated cloud, cloud shadow or snow is out of the
encoder's distribution; cirrus is left in (thin cirrus over land is common in the pre-training
patches too).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CLOUD_BITS", "CLOUD_MASK", "FILL_BIT", "cloud_pixels"]

#: bit of a fill pixel
FILL_BIT = 0
#: the bits that make a pixel "cloud" for the window mask
CLOUD_BITS: dict[str, int] = {"dilated cloud": 1, "cloud": 3, "cloud shadow": 4, "snow": 5}
#: all of :data:`CLOUD_BITS` as one mask
CLOUD_MASK = sum(1 << bit for bit in CLOUD_BITS.values())


def cloud_pixels(qa: np.ndarray) -> np.ndarray:
    """``QA_PIXEL`` values -> bool array, True where any of :data:`CLOUD_BITS` is set."""
    return (qa & CLOUD_MASK) != 0
