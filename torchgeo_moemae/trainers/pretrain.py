"""Masked-image-modelling pre-training of MoE-MAE as a TorchGeo task."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from timm.optim import param_groups_weight_decay
from torch import Tensor
from torch.optim import AdamW
from torchgeo.trainers import BaseTask
from torchvision.models._api import WeightsEnum

from ..export import export_encoder
from ..models import MAEOutput, MoEAux, create_mae
from ..utils import METADATA_KEYS
from .schedule import warmup_cosine_scheduler

__all__ = ["MoEMAEPretrainTask"]


def expert_utilisation(routing: MoEAux) -> Tensor:
    """Fraction of a layer's routing slots taken by each expert: ``(E,)``, sums to 1.

    Each token fills ``top_k`` slots; perfectly balanced routing gives ``1 / E`` per expert.
    """
    chosen = (routing.gates > 0).float()  # (T, E)
    return chosen.sum(0) / chosen.sum().clamp_min(1)


class MoEMAEPretrainTask(BaseTask):
    """Pre-train MoE-MAE: ``L = L_mask + alpha * L_vis + beta * L_moe`` (SPEC sections 3-4).

    AdamW without weight decay on norms, biases, position embeddings and learned tokens; linear
    warm-up over ``warmup_fraction`` of all optimiser steps, then cosine decay to ``min_lr``, both
    stepped per iteration. Gradient clipping and mixed precision are Trainer settings
    (``gradient_clip_val: 1.0``, ``precision: bf16-mixed`` in the configs).

    Batches are dicts with ``image`` ``(B, 7, 40, 40)`` (normalised by the datamodule) and
    optionally ``lat``, ``lon`` (degrees), ``time`` (POSIX seconds), each ``(B,)``; a missing key
    becomes NaN (= missing metadata). Every training step checks that the loss is finite (one host
    synchronisation per step) and stops with an error naming the batch otherwise, before
    ``backward`` can write NaNs into the weights.

    ``torchgeo test`` logs the same losses on the test split (``test_*``) and ``torchgeo predict``
    returns the encoder's CLS embeddings ``(B, C)`` per batch.

    Logged: ``train_loss``/``val_loss`` (total), ``*_loss_masked``, ``*_loss_visible``,
    ``*_loss_moe``, ``lr``, and per epoch ``train_util/layer{i}/expert{e}`` (fraction of routing
    slots per expert). At validation, a reconstruction figure (original / full / masked input /
    masked reconstruction) goes to the logger (if it takes figures) and to
    ``<log_dir>/figures/reconstruction_epoch{N}.png``. ``val_loss`` is the monitored metric.
    """

    monitor = "val_loss"
    mode = "min"

    def __init__(
        self,
        model: str = "moemae_landsat",
        mask_ratio: float = 0.75,
        alpha: float = 0.1,
        beta: float = 0.5,
        lr: float = 3e-4,
        weight_decay: float = 0.05,
        warmup_fraction: float = 0.05,
        min_lr: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        weights: WeightsEnum | str | None = None,
        log_figures: bool = True,
    ) -> None:
        """Initialize a new MoEMAEPretrainTask.

        Args:
            model: ``"S"``, ``"XS"``, ``"XXS"`` or a timm name (``moemae_landsat``, ``*_xs``, ``*_xxs``).
            mask_ratio: fraction of the patches hidden from the encoder.
            alpha: weight of the visible-patch reconstruction loss.
            beta: weight of the encoder's expert-balancing loss.
            lr: peak (base) learning rate.
            weight_decay: AdamW weight decay (not applied to norms, biases, embeddings, tokens).
            warmup_fraction: fraction of all optimiser steps spent in linear warm-up.
            min_lr: learning rate at the end of the cosine decay.
            betas: AdamW betas (the paper states none; these are torch's defaults).
            weights: initial weights: a weights entry or its name (e.g.
                ``"MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS"``, the authors' full MAE), or a
                path to a full MAE checkpoint (the authors' ``.pth``, ``mae.safetensors``) or an
                encoder-only one (``model.safetensors``; the decoder then starts from scratch).
                Not saved in the hyper-parameters, so Lightning checkpoints never depend on the file.
            log_figures: log a reconstruction figure at each validation.
        """
        self.weights = weights
        super().__init__()

    def configure_models(self) -> None:
        """Build the MAE around a timm encoder (so it carries timm's ``pretrained_cfg``)."""
        self.model = create_mae(
            self.hparams["model"],
            self.weights,
            allow_encoder_weights=True,
            mask_ratio=self.hparams["mask_ratio"],
        )

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """AdamW with decay-free groups and the per-step warm-up + cosine schedule."""
        # "*bias" also covers the stacked per-expert biases (moe.w_bias, 2-D) that timm's
        # 1-D rule would miss.
        no_decay = {*self.model.no_weight_decay(), "*bias"}
        groups = param_groups_weight_decay(
            self.model, self.hparams["weight_decay"], no_weight_decay_list=no_decay
        )
        optimizer = AdamW(groups, lr=self.hparams["lr"], betas=tuple(self.hparams["betas"]))
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError(
                "the learning-rate schedule needs a finite run: set trainer max_epochs or max_steps"
            )
        if total < 1:
            raise ValueError(
                "no training batches: the train split is smaller than one batch (torchgeo drops the "
                "last incomplete train batch); lower data batch_size"
            )
        scheduler = warmup_cosine_scheduler(
            optimizer, int(total), self.hparams["warmup_fraction"], self.hparams["min_lr"]
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _metadata(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """``lat``/``lon``/``time`` of the batch as ``(B,)`` tensors; absent keys -> NaN."""
        x = batch["image"]
        out = {}
        for key in METADATA_KEYS:
            value = batch.get(key)
            if value is None:
                dtype = torch.float64 if key == "time" else x.dtype
                value = torch.full((x.shape[0],), math.nan, dtype=dtype, device=x.device)
            out[key] = value
        return out

    def forward(self, batch: dict[str, Tensor], **kwargs: Any) -> MAEOutput:
        """Masked forward pass of a batch; ``kwargs`` go to :meth:`MoEMAE.forward`."""
        return self.model(batch["image"], **self._metadata(batch), **kwargs)

    def _where(self, batch_idx: int) -> str:
        return f"batch {batch_idx} (epoch {self.current_epoch}, global step {self.global_step})"

    def _check_finite(self, batch: dict[str, Tensor], loss: Tensor, batch_idx: int) -> None:
        """Raise before ``backward`` if the loss is NaN/inf, naming the batch and the cause."""
        if torch.isfinite(loss).all():  # the one host sync per step
            return
        image = batch["image"]
        bad = (~torch.isfinite(image)).flatten(1).any(1).nonzero().flatten().tolist()
        cause = (
            f"the input image has NaN/inf values in samples {bad} of the batch"
            if bad
            else "the input is finite, so the weights or an overflow produced it"
        )
        raise RuntimeError(
            f"non-finite training loss ({loss.item()}) at {self._where(batch_idx)}: {cause}. "
            "Training stopped before the update so the weights are not corrupted."
        )

    def _log_losses(self, stage: str, out: MAEOutput, loss: Tensor, batch_size: int) -> None:
        # validation means are synchronised across DDP ranks (val_loss picks the best checkpoint)
        sync = stage != "train"
        self.log(f"{stage}_loss", loss, batch_size=batch_size, prog_bar=True, sync_dist=sync)
        parts = {"masked": out.loss_masked, "visible": out.loss_visible, "moe": out.moe_loss}
        for name, value in parts.items():
            self.log(f"{stage}_loss_{name}", value, batch_size=batch_size, sync_dist=sync)

    def training_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Masked reconstruction loss of a batch, with logging and the NaN/inf guard."""
        out = self(batch)
        loss = out.loss(self.hparams["alpha"], self.hparams["beta"])
        self._check_finite(batch, loss, batch_idx)
        batch_size = batch["image"].shape[0]
        self._log_losses("train", out, loss, batch_size)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=batch_size)
        with torch.no_grad():
            for i, routing in enumerate(out.routing):
                for e, frac in enumerate(expert_utilisation(routing)):
                    # per-epoch means only: per-step scalars for ~60 experts would flood the logs
                    self.log(
                        f"train_util/layer{i:02d}/expert{e}",
                        frac,
                        on_step=False,
                        on_epoch=True,
                        batch_size=batch_size,
                    )
        return loss

    def _evaluate(self, batch: dict[str, Tensor], batch_idx: int, stage: str) -> None:
        """Loss with a fixed masking per batch index (comparable across epochs and runs)."""
        gen = torch.Generator().manual_seed(batch_idx)
        out = self(batch, mask_ratio=self.hparams["mask_ratio"], generator=gen)
        loss = out.loss(self.hparams["alpha"], self.hparams["beta"])
        self._log_losses(stage, out, loss, batch["image"].shape[0])

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Validation loss with a fixed masking per batch index (comparable across epochs)."""
        self._evaluate(batch, batch_idx, "val")
        if (
            batch_idx == 0
            and self.hparams["log_figures"]
            and not self.trainer.sanity_checking
            and self.trainer.is_global_zero
        ):
            self.log_reconstruction(batch)

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Masked reconstruction losses on the test split (``test_loss``, ``test_loss_*``)."""
        self._evaluate(batch, batch_idx, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Embeddings: the encoder's CLS token after the final norm, ``(B, C)``, no masking."""
        tokens = self.model.encoder.forward_features(batch["image"], **self._metadata(batch))
        return tokens[:, self.model.encoder.cls_index]

    def log_reconstruction(self, batch: dict[str, Tensor]) -> Path:
        """Plot original / full / masked reconstructions; send to the logger and save a PNG."""
        from ..analysis.reconstruction import plot_reconstruction

        meta = self._metadata(batch)
        fig = plot_reconstruction(
            self.model,
            batch["image"],
            lat=meta["lat"],
            lon=meta["lon"],
            time=meta["time"],
            mask_ratio=self.hparams["mask_ratio"],
        )
        experiment = getattr(self.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_figure"):
            experiment.add_figure("reconstruction", fig, global_step=self.global_step)
        path = self.figure_dir / f"reconstruction_epoch{self.current_epoch:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        return path

    @property
    def figure_dir(self) -> Path:
        """``<logger log_dir>/figures`` (or ``<default_root_dir>/figures`` without a logger)."""
        log_dir = self.logger.log_dir if self.logger is not None else None
        return Path(log_dir or self.trainer.default_root_dir) / "figures"

    def export_encoder(self, out_dir: str | Path, save_mae: bool = True) -> Path:
        """Write the encoder as a timm/Hugging Face Hub folder; see :func:`torchgeo_moemae.export.export_encoder`."""
        return export_encoder(self, out_dir, save_mae=save_mae)
