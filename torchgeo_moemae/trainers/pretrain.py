"""Masked-image-modelling pre-training of MoE-MAE as a TorchGeo task."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from timm.optim import param_groups_weight_decay
from torch import Tensor
from torch.optim import AdamW, Optimizer
from torchgeo.trainers import BaseTask
from torchvision.models._api import WeightsEnum

from ..export import export_encoder
from ..models import MAEOutput, MoEAux, create_mae, skip_value_checks
from ..probe.featurizer import DEFAULT_POOL, Featurizer
from ..utils import METADATA_KEYS
from .schedule import warmup_cosine_scheduler

__all__ = ["MoEMAEPretrainTask"]


#: Devices on which AdamW's fused kernel (with ``found_inf`` support) runs.
_FUSED_DEVICES = ("cuda", "cpu")


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
    becomes NaN (= missing metadata).

    The training step never waits for the accelerator (no ``.item()``, no branching on tensor
    values): a step whose loss is NaN/inf has its optimiser update skipped on the device (fused
    AdamW's ``found_inf``), the first such step is recorded on the device, and training stops with
    an error naming that batch at the next check (every ``finite_check_every_n_steps`` steps, at
    each epoch end and before any checkpoint is written), so non-finite values never reach the
    weights nor a checkpoint. Optimisers without ``found_inf`` support fall back to a per-step check.

    ``torchgeo test`` logs the same losses on the test split (``test_*``) and ``torchgeo predict``
    returns the encoder's CLS embeddings ``(B, C)`` per batch.

    Logged: ``train_loss``/``val_loss`` (total), ``*_loss_masked``, ``*_loss_visible``,
    ``*_loss_moe``, ``lr`` (per step, as device tensors that Lightning converts only every
    ``log_every_n_steps``), and per epoch ``train_util/layer{i}/expert{e}`` (fraction of routing
    slots per expert, accumulated on the device). At validation, a reconstruction figure (original / full / masked input /
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
        compile: bool = False,
        finite_check_every_n_steps: int = 100,
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
            compile: train through ``torch.compile`` of the model (the MoE then uses its fused,
                static-shape dispatch); the first steps pay the compilation.
            finite_check_every_n_steps: how often the host looks at the on-device record of
                non-finite losses (one synchronisation per check; bad steps are skipped meanwhile).
        """
        if finite_check_every_n_steps < 1:
            raise ValueError(
                f"finite_check_every_n_steps must be >= 1, got {finite_check_every_n_steps}"
            )
        self.weights = weights
        super().__init__()
        self._train_forward: Callable[..., MAEOutput] | None = None
        self._reset_guard()

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
        # Fused AdamW (one kernel per step on CUDA and CPU) also takes `found_inf`, which skips a
        # non-finite step on the device without a host synchronisation.
        # Not under 16-bit AMP: Lightning's GradScaler path cannot clip a fused optimiser's grads.
        fused = not self._uses_grad_scaler() and all(
            p.device.type in _FUSED_DEVICES for p in self.model.parameters()
        )
        optimizer = AdamW(
            groups, lr=self.hparams["lr"], betas=tuple(self.hparams["betas"]), fused=fused or None
        )
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

    def _reset_guard(self) -> None:
        """Forget the on-device records of the non-finite guard and the expert utilisation."""
        # first non-finite step: (global step, epoch, batch index), loss, and which samples of
        # that batch had NaN/inf pixels; -1 = none yet
        self._bad_where: Tensor | None = None
        self._bad_loss: Tensor | None = None
        self._bad_samples: Tensor | None = None
        self._step_bad: Tensor | None = None
        self._util_sum: Tensor | None = None
        self._util_weight = 0

    def _record_finite(self, batch: dict[str, Tensor], loss: Tensor, batch_idx: int) -> None:
        """Record on the device whether this step's loss is finite (no host synchronisation)."""
        image = batch["image"]
        bad = ~torch.isfinite(loss.detach())
        # new_full fills on the device: torch.tensor(..., device=cuda) would synchronise
        where = torch.stack(
            [
                loss.new_full((), v, dtype=torch.long)
                for v in (self.global_step, self.current_epoch, batch_idx)
            ]
        )
        samples = ~torch.isfinite(image.detach()).flatten(1).all(1)
        if self._bad_where is None or self._bad_loss is None or self._bad_samples is None:
            self._bad_where = torch.full_like(where, -1)
            self._bad_loss = loss.detach().float().new_zeros(())
            self._bad_samples = samples.new_zeros(samples.shape)
        if samples.shape[0] > self._bad_samples.shape[0]:
            self._bad_samples = F.pad(
                self._bad_samples, (0, samples.shape[0] - self._bad_samples.shape[0])
            )
        samples = F.pad(samples, (0, self._bad_samples.shape[0] - samples.shape[0]))
        first = bad & (self._bad_where[0] < 0)
        self._bad_where = torch.where(first, where, self._bad_where)
        self._bad_loss = torch.where(first, loss.detach().float(), self._bad_loss)
        self._bad_samples = torch.where(first, samples, self._bad_samples)
        self._step_bad = bad.float()

    def _raise_if_non_finite(self) -> None:
        """Raise if a non-finite loss was recorded (one host synchronisation)."""
        if self._bad_where is None or self._bad_loss is None or self._bad_samples is None:
            return
        step, epoch, batch_idx = self._bad_where.tolist()
        if step < 0:
            return
        bad = self._bad_samples.nonzero().flatten().tolist()
        cause = (
            f"the input image has NaN/inf values in samples {bad} of the batch"
            if bad
            else "the input is finite, so the weights or an overflow produced it"
        )
        raise RuntimeError(
            f"non-finite training loss ({self._bad_loss.item()}) at batch {batch_idx} "
            f"(epoch {epoch}, global step {step}): {cause}. The update of that step was skipped, "
            "so the weights are not corrupted."
        )

    def _log_losses(self, stage: str, out: MAEOutput, loss: Tensor, batch_size: int) -> None:
        # validation means are synchronised across DDP ranks (val_loss picks the best checkpoint);
        # the progress bar converts its metrics at every refresh, so it shows validation only
        sync = stage != "train"
        self.log(f"{stage}_loss", loss, batch_size=batch_size, prog_bar=sync, sync_dist=sync)
        parts = {"masked": out.loss_masked, "visible": out.loss_visible, "moe": out.moe_loss}
        for name, value in parts.items():
            self.log(f"{stage}_loss_{name}", value, batch_size=batch_size, sync_dist=sync)

    def on_train_start(self) -> None:
        """Start with empty guard/utilisation records; compile the model if asked."""
        self._reset_guard()
        if self.hparams["compile"] and self._train_forward is None:
            # compile the bound forward, not the module: no second copy of the parameters in
            # the state dict
            self._train_forward = torch.compile(self.model.forward)

    def training_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Masked reconstruction loss of a batch, with on-device logging and NaN/inf guard."""
        forward = self._train_forward or self.model.forward
        with skip_value_checks():  # the guard below reports NaN/inf without a host sync
            out = forward(batch["image"], **self._metadata(batch))
        loss = out.loss(self.hparams["alpha"], self.hparams["beta"])
        self._record_finite(batch, loss, batch_idx)
        if not self._skips_on_device():
            self._raise_if_non_finite()  # the optimiser cannot skip a step: check now
        batch_size = batch["image"].shape[0]
        self._log_losses("train", out, loss, batch_size)
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        self.log("lr", loss.new_full((), lr), batch_size=batch_size)
        with torch.no_grad():
            util = torch.cat([expert_utilisation(routing) for routing in out.routing])
            self._util_sum = util * batch_size + (0 if self._util_sum is None else self._util_sum)
            self._util_weight += batch_size
        return loss

    def _uses_grad_scaler(self) -> bool:
        """Whether Lightning scales the loss (16-bit AMP), which then owns ``found_inf``."""
        return str(self.trainer.precision).startswith("16")

    def _skips_on_device(self) -> bool:
        """Whether the optimiser skips a non-finite step itself (fused AdamW, no GradScaler)."""
        optimizer = self.trainer.optimizers[0]
        return bool(optimizer.defaults.get("fused")) and not self._uses_grad_scaler()

    def configure_gradient_clipping(
        self,
        optimizer: Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip as the Trainer asks; for the fused optimiser, directly (its grads are unscaled)."""
        if not optimizer.defaults.get("fused"):
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        # Lightning's mixed-precision plugin refuses to clip for any fused optimiser (it assumes a
        # GradScaler unscales inside it); fused is only chosen without a GradScaler (bf16, fp32).
        if not gradient_clip_val:
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        """Hand this step's non-finite flag to the fused optimiser, which then skips the update."""
        if self._step_bad is not None and self._skips_on_device():
            optimizer.found_inf = self._step_bad  # type: ignore[attr-defined]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Every ``finite_check_every_n_steps`` steps, stop if a loss was non-finite."""
        if self.global_step % self.hparams["finite_check_every_n_steps"] == 0:
            self._raise_if_non_finite()

    def on_train_epoch_end(self) -> None:
        """Check the guard; log the epoch's expert utilisation (one host synchronisation)."""
        self._raise_if_non_finite()
        if self._util_sum is None:
            return
        means = (self._util_sum / self._util_weight).tolist()
        self._util_sum, self._util_weight = None, 0
        col = 0
        for i, block in enumerate(self.model.encoder.blocks):
            for e in range(block.moe.num_experts):
                self.log(f"train_util/layer{i:02d}/expert{e}", means[col])
                col += 1

    def on_train_end(self) -> None:
        """Check the guard once more (a run may stop mid-epoch at ``max_steps``)."""
        self._raise_if_non_finite()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse to write a checkpoint after a non-finite step went unreported."""
        self._raise_if_non_finite()

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
        """Embeddings ``(B, D)`` of unmasked images, as every command embeds (:class:`Featurizer`)."""
        return Featurizer(self.model.encoder)({**batch, **self._metadata(batch)}, DEFAULT_POOL)

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
