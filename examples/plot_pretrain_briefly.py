"""
Pre-train briefly
=================

Run a few optimiser steps of masked pre-training with the Lightning ``Trainer`` and
:class:`~torchgeo_moemae.trainers.MoEMAEPretrainTask`, then plot the logged losses and a
reconstruction. This is the same task ``torchgeo fit --config configs/pretrain_bigearthnet_ls.yaml``
runs at full scale; here the model is the tiny XXS size and training lasts 10 steps, so do not
expect good reconstructions.
"""

# %%
# Data, task and trainer
# ----------------------
import csv
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger

from torchgeo_moemae.analysis import plot_reconstruction
from torchgeo_moemae.datamodules import BigEarthNetLSDataModule
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls
from torchgeo_moemae.trainers import MoEMAEPretrainTask

seed_everything(0)
workdir = Path(tempfile.mkdtemp())
root = make_synthetic_bigearthnet_ls(workdir / "data", num_patches=80)
datamodule = BigEarthNetLSDataModule(root, batch_size=8)
task = MoEMAEPretrainTask(model="XXS", lr=2e-3, warmup_fraction=0.1, log_figures=False)
trainer = Trainer(
    max_steps=10,
    accelerator="cpu",
    logger=CSVLogger(workdir / "logs", name="pretrain"),
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    log_every_n_steps=1,
    val_check_interval=5,
    limit_val_batches=1,
    num_sanity_val_steps=0,
)
trainer.fit(task, datamodule=datamodule)

# %%
# Logged losses
# -------------
# ``train_loss = loss_masked + alpha * loss_visible + beta * loss_moe``; the learning rate follows a
# linear warm-up and a cosine decay, stepped per iteration.
with open(Path(trainer.logger.log_dir) / "metrics.csv") as f:
    rows = list(csv.DictReader(f))


def series(name: str) -> tuple[list[int], list[float]]:
    """Steps and values of one logged metric (the CSV has one column per metric)."""
    logged = [r for r in rows if r.get(name)]
    return [int(r["step"]) for r in logged], [float(r[name]) for r in logged]


fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
for name in ("train_loss", "train_loss_masked", "train_loss_visible"):
    ax1.plot(*series(name), label=name)
ax1.plot(*series("val_loss"), "o", label="val_loss")
ax1.set_xlabel("step")
ax1.legend(fontsize=8)
ax2.plot(*series("lr"))
ax2.set_xlabel("step")
ax2.set_ylabel("learning rate")
fig.tight_layout()
plt.show()

# %%
# Reconstruction
# --------------
# Columns: the input, the reconstruction with no masking, the 75 %-masked input and its
# reconstruction (visible patches pasted back). Batches from the loader are raw DN: normalise them
# with the datamodule's ``aug`` first.
datamodule.setup("validate")
batch = datamodule.aug(next(iter(datamodule.val_dataloader())))
fig = plot_reconstruction(
    task.model, batch["image"], batch["lat"], batch["lon"], batch["time"], num_samples=3
)
