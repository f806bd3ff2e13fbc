"""
Two dates of one place: aligned embedding maps and their change
===============================================================

Embed two acquisitions of the same place with :func:`~torchgeo_moemae.scene.embed_scenes` and
compare them pixel by pixel. The windows of every scene sit on one grid fixed in the UTM zone
(their upper-left pixel centres on multiples of ``stride x 30 m``), so the two maps align exactly
although the scenes' footprints differ: they stack without resampling. Windows covered by cloud in
``QA_PIXEL`` are nodata.

Synthetic Collection 2 Level-2 products stand in for real ones (offline, seconds on a CPU): between
the two dates a lake appears and a cloud drifts over part of the second scene. With a random
encoder, as here, every pixel also changes a little with the date (the acquisition time is part of
each window's input); with trained weights and real scenes the distance map follows the land.
"""

# %%
# Two acquisitions, a year apart
# ------------------------------
# The second scene is shifted 33 columns right and 17 rows down (a neighbouring orbit), has a new
# lake (low near- and short-wave infrared) and a cloud flagged in its ``QA_PIXEL`` band.
import datetime as dt
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import rasterio
import torch
from rasterio.plot import plotting_extent
from rasterio.windows import from_bounds

from torchgeo_moemae.models.factory import load_model
from torchgeo_moemae.scene import LandsatProduct, embed_scenes, make_synthetic_landsat_product

work = Path(tempfile.mkdtemp())
before = make_synthetic_landsat_product(
    work / "in", 200, 240, qa_pixel=True, time=dt.datetime(2020, 9, 27, 11, 10, tzinfo=dt.UTC)
)
cloud = (slice(20, 90), slice(150, 230))
after = make_synthetic_landsat_product(
    work / "in",
    200,
    240,
    ul_centre=(487020.0 + 33 * 30, 5929980.0 - 17 * 30),
    time=dt.datetime(2021, 9, 14, 11, 10, tzinfo=dt.UTC),
    qa_flags=[(*cloud, 3), (*cloud, 1)],  # cloud and dilated cloud
    path_row="205023",
)
lake = (slice(100, 170), slice(30, 110))
water = {"SR_B2": 8600, "SR_B3": 8700, "SR_B4": 8200, "SR_B5": 7600, "SR_B6": 7500, "SR_B7": 7450}
for band, dn in water.items():
    with rasterio.open(next(after.glob(f"*_{band}.TIF")), "r+") as src:
        values = src.read(1)
        values[lake] = dn
        values[cloud] = 30000  # bright cloud tops in every band
        src.write(values, 1)
for band in ("SR_B1",):
    with rasterio.open(next(after.glob(f"*_{band}.TIF")), "r+") as src:
        values = src.read(1)
        values[cloud] = 30000
        src.write(values, 1)

# %%
# Embed both
# ----------
# One run over both products (a list, a glob, a text file of paths or a STAC ItemCollection all
# work): one Cloud-Optimized GeoTIFF, quicklook and STAC Item per scene, a STAC Collection of the
# run. Windows every 20 px (600 m), CLS embeddings of the XXS encoder, randomly initialised.
torch.manual_seed(0)
encoder, weights = load_model("XXS")  # no weights: a random initialisation (a demo)
summary = embed_scenes(
    [before, after], work / "maps", encoder, weights=weights, stride=20, progress=False
)
print("\n".join(summary.lines()))

# %%
# Stack the maps on their common grid
# -----------------------------------
# The maps' pixels coincide, so the overlap is a window of each, read without resampling.
maps = [rasterio.open(work / "maps" / f"{p.name}.tif") for p in (before, after)]
left = max(m.bounds.left for m in maps)
right = min(m.bounds.right for m in maps)
bottom = max(m.bounds.bottom for m in maps)
top = min(m.bounds.top for m in maps)
windows = [from_bounds(left, bottom, right, top, m.transform) for m in maps]
print(
    "overlap in each map (col, row offsets):", [(int(w.col_off), int(w.row_off)) for w in windows]
)
a, b = (
    m.read(window=w.round_offsets().round_lengths()) for m, w in zip(maps, windows, strict=True)
)
for m in maps:
    m.close()

# %%
# Per-pixel cosine distance
# -------------------------
# ``1 - cos`` between the two embeddings of each pixel; NaN where either date is nodata (cloud).
cos = (a * b).sum(axis=0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))
distance = 1 - cos
extent = (left, right, bottom, top)


def true_colour(product: Path) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    scene = LandsatProduct(product)
    dn, _, _ = scene.read_rows(0, scene.height)
    rgb = np.clip((np.moveaxis(dn[[3, 2, 1]], 0, -1) * 2.75e-5 - 0.2) / 0.3, 0, 1)
    return rgb, plotting_extent(rgb[..., 0], scene.transform)


fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharex=True, sharey=True)
for ax, product, title in zip(axes, (before, after), ("2020-09-27", "2021-09-14"), strict=False):
    rgb, scene_extent = true_colour(product)
    ax.imshow(rgb, extent=scene_extent)
    ax.set_title(f"true colour, {title}")
axes[2].set_facecolor("0.8")
shown = axes[2].imshow(distance, extent=extent, cmap="magma", interpolation="nearest")
axes[2].set_title("cosine distance (grey: no data)")
fig.colorbar(shown, ax=axes[2], shrink=0.8)
for ax in axes:
    ax.set_xlim(extent[0] - 3000, extent[1] + 3000)
    ax.set_ylim(extent[2] - 3000, extent[3] + 3000)
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.tick_params(labelsize=7)
fig.tight_layout()
plt.show()
