"""
Plot a dataset sample
=====================

Write the built-in synthetic BigEarthNet-L dataset, read it with
:class:`~torchgeo_moemae.datasets.BigEarthNetLS` and plot a sample: its RGB composite with the
label names, its seven-band spectrum and its geo-temporal metadata.
"""

# %%
# Create the data
# ---------------
# The generator writes the exact BigEarthNet-L layout (GeoTIFFs, label/metadata JSONs, split
# CSVs), so every reader below works unchanged on the real dataset.
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.pyplot as plt

from torchgeo_moemae.bands import BANDS
from torchgeo_moemae.datasets import BigEarthNetLS, make_synthetic_bigearthnet_ls

workdir = Path(tempfile.mkdtemp())
root = make_synthetic_bigearthnet_ls(workdir / "data", num_patches=60, seed=0)
dataset = BigEarthNetLS(root, split="train")
print(f"{len(dataset)} training patches, {dataset.num_classes} classes")

# %%
# One sample
# ----------
# ``image`` is float32 raw surface-reflectance DN (7, 40, 40), ``label`` is multi-hot over the 19
# BigEarthNet classes, and ``lat``/``lon`` (degrees) and ``time`` (POSIX seconds, UTC) are 0-dim.
sample = dataset[0]
for key, value in sample.items():
    print(f"{key:>5}: {tuple(value.shape)} {value.dtype}")
when = datetime.fromtimestamp(sample["time"].item(), tz=UTC)
print(
    f"lat {sample['lat'].item():.3f}, lon {sample['lon'].item():.3f}, acquired {when:%Y-%m-%d %H:%M} UTC"
)

fig = dataset.plot(sample)
plt.show()

# %%
# Mean spectrum of the patch
# --------------------------
# Convert DN to surface reflectance with the Collection 2 Level-2 scale and offset.
reflectance = sample["image"].mean(dim=(1, 2)) * 2.75e-5 - 0.2
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(BANDS, reflectance.numpy(), marker="o")
ax.set_ylabel("surface reflectance")
ax.set_title("mean spectrum of the patch")
fig.tight_layout()
plt.show()
