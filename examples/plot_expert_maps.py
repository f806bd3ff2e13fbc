"""
Expert maps
===========

Which experts handle which parts of an image? For one MoE layer, draw per patch

* the **contribution** of each expert: the norm of its gated output, ``||g_e(x) E_e(x)||``;
* the **routing** weight the gate gives it (0 where the expert is not among the top-2);
* the **ablation** effect: how much the final patch embeddings change when that expert is
  switched off (the paper's Fig. 5 uses the first layer, which has three experts).

Routing is deterministic in eval mode, so the maps are reproducible. The encoder here is randomly
initialised (no download); load pre-trained weights to see the specialisation the paper reports.
"""

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import timm
import torch

import torchgeo_moemae  # noqa: F401  (registers the timm models)
from torchgeo_moemae.analysis import (
    expert_ablation_maps,
    expert_contribution_maps,
    plot_expert_maps,
    routing_maps,
)
from torchgeo_moemae.datamodules import BigEarthNetLSDataModule
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls

torch.manual_seed(0)
workdir = Path(tempfile.mkdtemp())
root = make_synthetic_bigearthnet_ls(workdir / "data", num_patches=40)
datamodule = BigEarthNetLSDataModule(root, batch_size=4)
datamodule.setup("fit")
batch = datamodule.aug(next(iter(datamodule.train_dataloader())))
images, meta = batch["image"], {k: batch[k] for k in ("lat", "lon", "time")}
encoder = timm.create_model("moemae_landsat").eval()

# %%
# Contribution maps
# -----------------
# ``{layer: (B, E, 10, 10)}``, one map per expert and patch.
contribution = expert_contribution_maps(encoder, images, **meta, layers=0)
print({layer: tuple(m.shape) for layer, m in contribution.items()})
fig = plot_expert_maps(images, contribution[0], title="layer 0: expert contribution", num_samples=3)

# %%
# Routing weights
# ---------------
routing = routing_maps(encoder, images, **meta, layers=0)
fig = plot_expert_maps(images, routing[0], title="layer 0: gate weight", num_samples=3)

# %%
# Ablation maps
# -------------
ablation = expert_ablation_maps(encoder, images, **meta, layers=0)
fig = plot_expert_maps(images, ablation[0], title="layer 0: change when ablated", num_samples=3)

# %%
# Expert usage across layers
# --------------------------
# The share of patches for which each expert is among the chosen two, per layer: deeper layers
# have more experts (3, then 4, then 5).
routing_all = routing_maps(encoder, images, **meta)
fig, ax = plt.subplots(figsize=(8, 3))
for layer, maps in routing_all.items():
    usage = (maps > 0).float().mean(dim=(0, 2, 3))  # (E,)
    ax.scatter(
        [layer] * len(usage), usage.numpy(), c=range(len(usage)), cmap="tab10", vmin=0, vmax=9
    )
ax.set_xlabel("layer")
ax.set_ylabel("fraction of patches routed")
ax.set_title("expert usage per layer (colour = expert index)")
fig.tight_layout()
plt.show()
