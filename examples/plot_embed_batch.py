"""
Load the encoder and embed a batch
==================================

Create the MoE-MAE encoder with timm, load weights from a local file, and turn a batch of Landsat
patches with their metadata into embeddings: 105 tokens per image (4 metadata tokens, the CLS
token and 10x10 patch tokens), pooled to a CLS vector, a token average or all tokens flattened,
as the paper does (the tokens before the encoder's final LayerNorm, through
:class:`~torchgeo_moemae.probe.Featurizer`).
"""

# %%
# A batch from the datamodule
# ---------------------------
# The datamodule z-scores images on the device (``on_after_batch_transfer``); outside a Lightning
# Trainer apply its ``aug`` yourself.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import timm
import torch
from safetensors.torch import save_file

import torchgeo_moemae  # noqa: F401  (registers the timm models)
from torchgeo_moemae.analysis import to_rgb
from torchgeo_moemae.datamodules import BigEarthNetLSDataModule
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls
from torchgeo_moemae.probe import Featurizer

torch.manual_seed(0)
workdir = Path(tempfile.mkdtemp())
root = make_synthetic_bigearthnet_ls(workdir / "data", num_patches=60)
datamodule = BigEarthNetLSDataModule(root, batch_size=8)
datamodule.setup("fit")
batch = datamodule.aug(next(iter(datamodule.train_dataloader())))
print({k: tuple(v.shape) for k, v in batch.items()})

# %%
# The encoder
# -----------
# ``pretrained=True`` with ``pretrained_cfg_overlay=dict(file=...)`` loads a local checkpoint: the
# authors' ``pretrained_S_best.pth``, their state dict, or the ``model.safetensors`` written by
# ``moemae export``. This offline example saves randomly initialised weights and loads them back;
# point ``file`` at real weights to get meaningful embeddings.
weights = workdir / "model.safetensors"
save_file(timm.create_model("moemae_landsat").state_dict(), weights)
encoder = timm.create_model(
    "moemae_landsat", pretrained=True, pretrained_cfg_overlay=dict(file=str(weights))
).eval()
print(f"{sum(p.numel() for p in encoder.parameters()):,} parameters")

# %%
# Embeddings
# ----------
# Eval mode makes the expert routing deterministic. ``lat``/``lon`` are degrees and ``time`` POSIX
# seconds; pass ``None`` (or NaN per sample) where metadata is missing. The paper's embeddings are
# the tokens *before* the final LayerNorm, which :class:`~torchgeo_moemae.probe.Featurizer` takes
# (as ``moemae embed`` and the probes do); ``encoder.forward_features`` gives them after it.
featurizer = Featurizer(encoder)
with torch.no_grad():
    tokens = featurizer.tokens(batch)  # (B, 105, 144), before the final LayerNorm
    cls = featurizer.pool(tokens, "cls")  # (B, 144), the paper's "CLS token"
    avg = featurizer.pool(tokens, "avg")  # (B, 144), "all tokens (avg.)"
    flat = featurizer.pool(tokens, "all")  # (B, 15120), "all tokens"
print(
    "tokens",
    tuple(tokens.shape),
    "cls",
    tuple(cls.shape),
    "avg",
    tuple(avg.shape),
    "all",
    tuple(flat.shape),
)

# %%
# Patch tokens as an image
# ------------------------
# Project the 100 patch tokens of each image onto their first three principal components and show
# them as colours next to the input: patches with similar embeddings get similar colours.
patches = tokens[:, encoder.num_prefix_tokens :]  # (B, 100, 144)
centred = patches - patches.mean(dim=(0, 1))
_, _, v = torch.pca_lowrank(centred.flatten(0, 1), q=3, center=False)
pcs = (centred @ v).reshape(len(tokens), *encoder.grid_size, 3)
pcs = (pcs - pcs.amin(dim=(0, 1, 2))) / (pcs.amax(dim=(0, 1, 2)) - pcs.amin(dim=(0, 1, 2)))

fig, axes = plt.subplots(2, 4, figsize=(8, 4.4))
for i in range(4):
    axes[0, i].imshow(to_rgb(batch["image"][i]))
    axes[1, i].imshow(pcs[i].numpy(), interpolation="nearest")
    axes[0, i].set_title(f"sample {i}", fontsize=9)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("RGB")
axes[1, 0].set_ylabel("token PCA")
fig.tight_layout()
plt.show()
