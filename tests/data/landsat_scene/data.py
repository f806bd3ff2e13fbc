#!/usr/bin/env python3
"""Write a small synthetic Landsat 8 Collection 2 Level-2 product (``SR_B1..SR_B7`` + MTL).

The generator is :func:`torchgeo_moemae.scene.make_synthetic_landsat_product`; this script writes
the test scene (100 x 130 px, a fill block in the upper-left corner, ``QA_PIXEL``) into the cwd.
:func:`seeded_encoder` gives an encoder whose weights depend only on a seed (numpy's generator, not
torch's), as the golden embeddings of ``make_golden.py`` need.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import numpy as np

from torchgeo_moemae.scene import make_synthetic_landsat_product

#: the test scene: size, and the fill block (rows, cols) in DN 0 and QA_PIXEL bit 0; its grid
#: (window upper-left pixel centres on multiples of the stride x 30 m) starts at row 6, column 6
#: for strides 20 and 40, so the block holds windows (0, 0) and (0, 1) of stride 20 whole
HEIGHT, WIDTH = 100, 130
FILL = (slice(0, 46), slice(0, 66))


def make_product(root: str | Path, **kwargs: object) -> Path:
    """The test product under ``root``; keyword arguments override the defaults."""
    options: dict = dict(height=HEIGHT, width=WIDTH, fill=FILL, qa_pixel=True) | kwargs
    return make_synthetic_landsat_product(root, **options)


def seeded_encoder(model: str = "moemae_landsat_xxs", seed: int = 0) -> Any:
    """``model`` in eval mode with every parameter drawn from ``numpy.random.default_rng(seed)``
    in name order: N(0, 0.02), LayerNorm weights N(1, 0.02). The same on every torch version."""
    import timm
    import torch

    import torchgeo_moemae  # noqa: F401  (registers the timm models)

    encoder = timm.create_model(model).eval()
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, param in sorted(encoder.named_parameters()):
            values = rng.normal(0.0, 0.02, tuple(param.shape))
            if param.ndim == 1 and "norm" in name and name.endswith("weight"):
                values += 1.0
            param.copy_(torch.from_numpy(values))
    return encoder


if __name__ == "__main__":
    print(make_product(Path.cwd()))


#: band -> asset key of the Landsat C2 L2 items of Microsoft Planetary Computer's and USGS's STAC APIs
STAC_KEYS = {
    "SR_B1": "coastal",
    "SR_B2": "blue",
    "SR_B3": "green",
    "SR_B4": "red",
    "SR_B5": "nir08",
    "SR_B6": "swir16",
    "SR_B7": "swir22",
    "QA_PIXEL": "qa_pixel",
}


def stac_item(product: Path, relative_to: Path | None = None) -> dict:
    """A STAC Item (dict) of a georeferenced synthetic product, shaped like a Planetary Computer
    ``landsat-c2-l2`` item: band assets keyed by common name, hrefs to the product's TIFFs
    (relative to ``relative_to`` if given, else absolute)."""
    from torchgeo_moemae.scene import read_mtl

    mtl = read_mtl(next(product.glob("*_MTL.txt")))
    when = dt.datetime.fromtimestamp(mtl.time, dt.UTC).isoformat().replace("+00:00", "Z")
    assets = {}
    for band, key in STAC_KEYS.items():
        path = next(product.glob(f"*_{band}.TIF"), None)
        if path is None:
            continue
        href = os.path.relpath(path, relative_to) if relative_to else str(path)
        assets[key] = {
            "href": href,
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"] if band != "QA_PIXEL" else ["cloud", "cloud-shadow", "snow-ice"],
        }
    x0, y0 = mtl.ul_x - 15, mtl.ul_y + 15
    x1, y1 = x0 + 30 * mtl.width, y0 - 30 * mtl.height
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
        "id": product.name,
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[-3.2, 53.5], [-3.0, 53.5], [-3.0, 53.4], [-3.2, 53.4], [-3.2, 53.5]]],
        },
        "bbox": [-3.2, 53.4, -3.0, 53.5],
        "properties": {
            "datetime": when,
            "platform": "landsat-8",
            "proj:epsg": 32600 + mtl.utm_zone,
            "proj:bbox": [x0, y1, x1, y0],
        },
        "links": [],
        "assets": assets,
        "collection": "landsat-c2-l2",
    }
