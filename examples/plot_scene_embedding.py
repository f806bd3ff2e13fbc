"""
Embedding map of a Landsat scene
================================

Embed every 40x40 px window of a real Landsat 8 Collection 2 Level-2 crop (Liverpool Bay and the
Sefton coast north of Liverpool, 2020-09-27) with :func:`~torchgeo_moemae.scene.embed_scene`, and show
the resulting embedding map as a PCA-RGB picture beside the true-colour image.

The crop ships with the documentation (``docs/data/landsat8-l2-scene``, USGS public domain): the
seven ``SR_B*`` TIFFs carry no georeferencing, so it is rebuilt from the MTL file (UTM zone 30N,
upper-left pixel centre, 30 m grid).
"""

# %%
# The scene
# ---------
# :class:`~torchgeo_moemae.scene.LandsatProduct` reads the MTL (acquisition time, grid) and the
# bands in strips of rows.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import rasterio
import torch
from rasterio.plot import plotting_extent

from torchgeo_moemae.errors import PretrainedWeightsError
from torchgeo_moemae.models import MoEMAELandsat_Weights
from torchgeo_moemae.models.factory import load_model
from torchgeo_moemae.scene import LandsatProduct, embed_scene, pca_rgb

torch.manual_seed(0)
try:
    here = Path(__file__).resolve().parent
except NameError:  # run interactively from the examples folder
    here = Path.cwd()
crop = here.parent / "docs" / "data" / "landsat8-l2-scene"
scene = LandsatProduct(crop)
print(scene.crs, scene.height, "x", scene.width, "px, acquired at POSIX", scene.time)

# %%
# The encoder
# -----------
# :func:`~torchgeo_moemae.models.factory.load_model` builds the encoder from weights (the
# published entry, an exported folder or the authors' ``pretrained_S_best.pth``) and says where
# they came from, for the map's record. This offline build falls back to a random initialisation
# when the published weights cannot be fetched. Even random features follow the land cover;
# trained ones separate it better.
try:
    encoder, weights = load_model("S", MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS)
except PretrainedWeightsError:  # offline, not in the Hugging Face cache
    encoder, weights = load_model("S")
print("weights:", weights)

# %%
# Embed the scene
# ---------------
# Windows every 20 px (600 m, overlapping), CLS embeddings, written as a Cloud-Optimized GeoTIFF
# with one band per embedding dimension and a PCA-RGB quicklook next to it.
out = embed_scene(
    crop, Path(tempfile.mkdtemp()) / "liverpool.tif", encoder, stride=20, progress=False
)
with rasterio.open(out) as src:
    print(src.count, "bands,", src.height, "x", src.width, "px of", src.res, "m,", src.crs)
    map_extent = plotting_extent(src)

# %%
# True colour beside the embedding map
# ------------------------------------
# Both panels share map coordinates (UTM metres); the embedding map covers the area of the whole
# windows of the grid.
dn, _, _ = scene.read_rows(0, scene.height)
rgb = np.moveaxis(dn[[3, 2, 1]], 0, -1) * 2.75e-5 - 0.2  # DN -> surface reflectance
rgb = np.clip(rgb / np.percentile(rgb, 99), 0, 1)
scene_extent = plotting_extent(rgb[..., 0], scene.transform)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True, sharey=True)
axes[0].imshow(rgb, extent=scene_extent)
axes[0].set_title("true colour (B4, B3, B2)")
axes[1].imshow(pca_rgb(out), extent=map_extent, interpolation="nearest")
axes[1].set_title(f"embedding map, PCA-RGB ({weights})")
for ax in axes:
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.tick_params(labelsize=7)
fig.tight_layout()
plt.show()
