"""Embedding maps of whole scenes and archives: windows on a CRS-fixed grid -> georeferenced COGs
with STAC records, on Lightning's predict loop.

* :func:`embed_scenes` / :func:`embed_scene` -- the API (``moemae embed-scene`` on the command
  line, ``torchgeo predict --config configs/embed_scenes.yaml`` through TorchGeo's);
* :class:`SceneDataModule`, :class:`SceneEmbeddingTask`, :class:`SceneWriter` -- the engine's
  datamodule, task and prediction writer;
* :func:`resolve_inputs` / :class:`SceneSource` -- products, globs, lists and STAC Items as scenes;
* :class:`LandsatProduct` / :class:`StacScene` / :class:`RasterDatasetScene` -- strip readers;
  :func:`read_mtl` parses the MTL;
* :class:`WindowGrid` -- the window grid and the output geometry;
* :func:`make_synthetic_landsat_product` -- a synthetic product for tests and examples;
* :func:`pca_rgb` / :func:`save_quicklook` -- PCA-RGB pictures of embedding rasters.
"""

from ..lightning_noise import silence_lightning_noise
from .callback import SceneWriter
from .datamodule import SceneDataModule
from .embed import embed_scene, embed_scenes
from .grid import WindowGrid
from .inputs import SceneSource, resolve_inputs
from .mtl import LandsatMTL, parse_mtl, read_mtl
from .qa import CLOUD_BITS
from .quicklook import pca_rgb, save_quicklook
from .reader import LandsatProduct, RasterDatasetScene, SceneReader, StacScene, open_scene
from .summary import RunSummary, SceneError, SceneResult
from .synthetic import make_synthetic_landsat_product
from .task import SceneEmbeddingTask
from .writer import EmbeddingWriter

__all__ = [
    "CLOUD_BITS",
    "EmbeddingWriter",
    "LandsatMTL",
    "LandsatProduct",
    "RasterDatasetScene",
    "RunSummary",
    "SceneDataModule",
    "SceneEmbeddingTask",
    "SceneError",
    "SceneReader",
    "SceneResult",
    "SceneSource",
    "SceneWriter",
    "StacScene",
    "WindowGrid",
    "embed_scene",
    "embed_scenes",
    "make_synthetic_landsat_product",
    "open_scene",
    "parse_mtl",
    "pca_rgb",
    "read_mtl",
    "resolve_inputs",
    "save_quicklook",
]

silence_lightning_noise()  # for `torchgeo predict --config configs/embed_scenes.yaml`
