"""Embedding maps of whole scenes: windows on a grid -> a georeferenced embedding GeoTIFF.

* :func:`embed_scene` -- the API (``moemae embed-scene`` on the command line);
* :class:`LandsatProduct` / :class:`RasterDatasetScene` -- strip readers of a Landsat C2 L2
  product (folder or ``.tar``) or a TorchGeo ``RasterDataset``; :func:`read_mtl` parses the MTL;
* :class:`WindowGrid` -- the window grid and the output geometry;
* :func:`make_synthetic_landsat_product` -- a synthetic product for tests and examples;
* :func:`pca_rgb` / :func:`save_quicklook` -- PCA-RGB pictures of embedding rasters.
"""

from .embed import embed_scene
from .encoder import load_scene_encoder
from .grid import WindowGrid
from .mtl import LandsatMTL, parse_mtl, read_mtl
from .quicklook import pca_rgb, save_quicklook
from .reader import LandsatProduct, RasterDatasetScene, SceneReader, open_scene
from .synthetic import make_synthetic_landsat_product
from .writer import EmbeddingWriter

__all__ = [
    "EmbeddingWriter",
    "LandsatMTL",
    "LandsatProduct",
    "RasterDatasetScene",
    "SceneReader",
    "WindowGrid",
    "embed_scene",
    "load_scene_encoder",
    "make_synthetic_landsat_product",
    "open_scene",
    "parse_mtl",
    "pca_rgb",
    "read_mtl",
    "save_quicklook",
]
