#!/usr/bin/env python3
"""Write a small synthetic Landsat 8 Collection 2 Level-2 product (``SR_B1..SR_B7`` + MTL).

The generator is :func:`torchgeo_moemae.scene.make_synthetic_landsat_product`; this script writes
the test scene (100 x 130 px, a fill block in the upper-left corner, ``QA_PIXEL``) into the cwd.
"""

from __future__ import annotations

from pathlib import Path

from torchgeo_moemae.scene import make_synthetic_landsat_product

#: the test scene: size, and the fill block (rows, cols) in DN 0 and QA_PIXEL bit 0
HEIGHT, WIDTH = 100, 130
FILL = (slice(0, 40), slice(0, 60))


def make_product(root: str | Path, **kwargs: object) -> Path:
    """The test product under ``root``; keyword arguments override the defaults."""
    options: dict = dict(height=HEIGHT, width=WIDTH, fill=FILL, qa_pixel=True) | kwargs
    return make_synthetic_landsat_product(root, **options)


if __name__ == "__main__":
    print(make_product(Path.cwd()))
