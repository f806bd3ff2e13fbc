"""
Linear probe
============

Freeze an encoder, embed the training and test splits and fit the paper's probe (one-vs-rest
logistic regression, SAG solver) with :func:`torchgeo_moemae.probe.linear_probe`. The metrics are
the paper's: micro/macro precision, recall, F1 and mAP for the multi-label BigEarthNet task.

Here the encoder is randomly initialised (no weights are downloaded) and the data is a small
synthetic set, so the numbers only show the mechanics; see :doc:`/results` for the paper's values.
"""

# %%
# One call
# --------
# :func:`~torchgeo_moemae.probe.linear_probe` embeds ``train_split`` and ``eval_split`` of the
# datamodule (eval mode, deterministic routing, the datamodule's normalisation, metadata passed
# to the encoder), fits the probe on the first and scores the second.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import timm
import torch

import torchgeo_moemae  # noqa: F401  (registers the timm models)
from torchgeo_moemae.datamodules import BigEarthNetLSDataModule
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls
from torchgeo_moemae.probe import (
    extract_embeddings,
    format_metrics_table,
    linear_probe,
    probe_embeddings,
)

torch.manual_seed(0)
workdir = Path(tempfile.mkdtemp())
root = make_synthetic_bigearthnet_ls(workdir / "data", num_patches=120)
datamodule = BigEarthNetLSDataModule(root, batch_size=32)
encoder = timm.create_model("moemae_landsat_xxs")

metrics = linear_probe(encoder, datamodule, pool="cls", method="sklearn")
print(format_metrics_table({"cls": metrics}))

# %%
# Embed once, probe several ways
# ------------------------------
# To compare poolings and probes, extract the embeddings once and fit on them. ``cls`` is the CLS
# token and ``avg`` the mean of the 105 tokens; ``all`` (the 105 tokens flattened, 15,120 features
# for size S) is the paper's best but its SAG fit is slow on a CPU, so it is left out here.
# ``method="torch"`` is the minibatch probe for features that do not fit in memory.
pools = ("cls", "avg")
train = extract_embeddings(encoder, datamodule, "train", pools=pools, progress=False)
test = extract_embeddings(encoder, datamodule, "test", pools=pools, progress=False)
results = {
    f"{pool}, {method}": probe_embeddings(train[pool], test[pool], method=method)
    for pool in pools
    for method in ("sklearn", "torch")
}
print(format_metrics_table(results))

# %%
# Compare
# -------
names = ["f1_micro", "f1_macro", "map_micro", "map_macro"]
fig, ax = plt.subplots(figsize=(7, 3))
width = 0.8 / len(results)
for i, (label, values) in enumerate(results.items()):
    ax.bar(
        [j + i * width for j in range(len(names))], [values[n] for n in names], width, label=label
    )
ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names)
ax.set_ylim(0, 1)
ax.legend(fontsize=8)
ax.set_title("linear probes on synthetic BigEarthNet-L (random XXS encoder)")
fig.tight_layout()
plt.show()
