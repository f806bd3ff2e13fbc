"""Masked-image-modelling pre-training of MoE-MAE as a TorchGeo task."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from timm.optim import param_groups_weight_decay
from torch import Tensor
from torch.optim import AdamW, Optimizer
from torchgeo.trainers import BaseTask
from torchvision.models._api import WeightsEnum

from ..export import export_encoder
from ..models import create_mae
from ..models.checks import skip_value_checks
from ..models.mae import MAEOutput
from ..models.moe import MoEAux
from ..probe.featurizer import Featurizer
from ..utils import METADATA_KEYS
from ..vocabulary import DEFAULT_POOL
from .cuda_graph import GraphedTrainStep, StepRecords, canonical_checkpoint, clip_gradients
from .regional import compile_blocks
from .schedule import fit_schedule, warmup_cosine_scheduler

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
    """Pre-train MoE-MAE: ``L = L_mask + alpha * L_vis + beta * L_moe`` (the paper, Table 3).

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

    On one CUDA device the whole step (forward, loss, backward, clipping, guard, fused AdamW) is
    one CUDA graph replay (``cuda_graph``, see :class:`~torchgeo_moemae.trainers.cuda_graph.GraphedTrainStep`):
    full batches replay it, batches of another shape (an epoch's last, partial batch) run the same
    step eagerly and are counted (``train_eager_steps``). Its checkpoints are those of the eager
    path, so a run may resume in either.

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
        cuda_graph: bool | None = None,
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
            compile: compile each transformer block (regional compilation, see
                :func:`~torchgeo_moemae.trainers.regional.compile_blocks`; the MoE then uses its
                fused, static-shape dispatch); the first steps pay the compilation.
            finite_check_every_n_steps: how often the host looks at the on-device record of
                non-finite losses (one synchronisation per check; bad steps are skipped meanwhile).
            cuda_graph: run each training step as one CUDA graph replay. None (default): on when
                training on one CUDA device with fused AdamW and without a gradient scaler or
                gradient accumulation. True elsewhere runs the same step object without capture
                (e.g. on a CPU); it needs the same conditions otherwise.
        """
        if finite_check_every_n_steps < 1:
            raise ValueError(
                f"finite_check_every_n_steps must be >= 1, got {finite_check_every_n_steps}"
            )
        self.weights = weights
        super().__init__()
        self._records = StepRecords()
        self._step_bad: Tensor | None = None
        self._graphed: GraphedTrainStep | None = None
        self._compiled = False

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
        # sized to the run when training starts (see on_train_start)
        scheduler = warmup_cosine_scheduler(
            optimizer,
            warmup_fraction=self.hparams["warmup_fraction"],
            min_lr=self.hparams["min_lr"],
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

    @staticmethod
    def _parts(out: MAEOutput) -> dict[str, Tensor]:
        """The loss terms of an output, by their logged suffix."""
        return {"masked": out.loss_masked, "visible": out.loss_visible, "moe": out.moe_loss}

    def _log_losses(
        self, stage: str, loss: Tensor, parts: dict[str, Tensor], batch_size: int
    ) -> None:
        # validation means are synchronised across DDP ranks (val_loss picks the best checkpoint);
        # the progress bar converts its metrics at every refresh, so it shows validation only
        sync = stage != "train"
        self.log(f"{stage}_loss", loss, batch_size=batch_size, prog_bar=sync, sync_dist=sync)
        for name, value in parts.items():
            self.log(f"{stage}_loss_{name}", value, batch_size=batch_size, sync_dist=sync)

    def _losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Total loss, its terms and the expert utilisation ``(U,)`` of a training batch."""
        out = self.model(batch["image"], lat=batch["lat"], lon=batch["lon"], time=batch["time"])
        with torch.no_grad():
            util = torch.cat([expert_utilisation(routing) for routing in out.routing])
        return out.loss(self.hparams["alpha"], self.hparams["beta"]), self._parts(out), util

    def _use_cuda_graph(self) -> bool:
        """Whether to train through :class:`GraphedTrainStep` (see ``cuda_graph``)."""
        trainer = self.trainer
        blockers = {
            "a gradient scaler (16-bit AMP)": self._uses_grad_scaler(),
            "gradient accumulation": trainer.accumulate_grad_batches != 1,
            "several devices": trainer.world_size > 1,
            "an optimiser other than fused AdamW": not trainer.optimizers[0].defaults.get("fused"),
        }
        blocked = [name for name, on in blockers.items() if on]
        wanted = self.hparams["cuda_graph"]
        if wanted is None:
            return self.device.type == "cuda" and not blocked
        if wanted and blocked:
            raise ValueError(f"cuda_graph=True cannot be used with {', '.join(blocked)}")
        return bool(wanted)

    def on_train_start(self) -> None:
        """Size the schedule to the run; start empty guard records; compile, set up the step."""
        self._fit_schedule()
        self._records = StepRecords()
        if self.hparams["compile"] and not self._compiled:
            compile_blocks(self.model)
            self._compiled = True
        self._graphed = None
        if self._use_cuda_graph():
            self._graphed = GraphedTrainStep(
                self._losses,
                self.trainer.optimizers[0],
                self._records,
                self.trainer.gradient_clip_val,
                self.trainer.gradient_clip_algorithm,
                capture=self.device.type == "cuda",
            )

    def _fit_schedule(self) -> None:
        """Span the schedule over this run's steps (``max_epochs``/``max_steps``).

        Read here, not in :meth:`configure_optimizers`: reading the run's length there builds the
        train loader before Lightning restores the loader's position and random state from a
        checkpoint, and Lightning then never restores them (the resumed run would redo the
        interrupted epoch with other masks). A resumed run keeps its schedule unless its length
        changed (e.g. a finished run extended with a larger ``max_epochs``): it then continues on
        the new length's cosine, and says so.
        """
        trainer = self.trainer
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError(
                "the learning-rate schedule needs a finite run: set trainer max_epochs or max_steps"
            )
        if total < 1:
            raise ValueError(
                "no training batches: the train split is smaller than one batch (torchgeo drops the "
                "last incomplete train batch); lower data batch_size"
            )
        config = trainer.lr_scheduler_configs[0]
        before = fit_schedule(config.scheduler, int(total), self.hparams["warmup_fraction"])  # type: ignore[arg-type]
        if before != total and self.global_step > 0:
            rank_zero_info(
                f"The learning-rate schedule now spans {int(total)} steps instead of the "
                f"checkpoint's {before}: from step {self.global_step} the rate follows the new "
                f"length's cosine (lr {trainer.optimizers[0].param_groups[0]['lr']:.3g})."
            )

    def training_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Masked reconstruction loss of a batch, with on-device logging and NaN/inf guard."""
        batch = {"image": batch["image"], **self._metadata(batch)}
        batch_size = batch["image"].shape[0]
        where = (self.global_step, self.current_epoch, batch_idx)
        if self._graphed is not None:  # the whole step, optimiser update included
            out = self._graphed(batch, where)
            loss, parts = out["loss"], {k: v for k, v in out.items() if k != "loss"}
        else:
            with skip_value_checks():  # the guard below reports NaN/inf without a host sync
                loss, parts, util = self._losses(batch)
            # new_full fills on the device: torch.tensor(..., device=cuda) would synchronise
            position = torch.stack([loss.new_full((), v, dtype=torch.long) for v in where])
            self._step_bad = self._records.update(loss, batch["image"], position, util)
            self._records.count(batch_size)
            if not self._skips_on_device():
                self._records.raise_if_non_finite()  # the optimiser cannot skip a step: check now
        self._log_losses("train", loss, parts, batch_size)
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        # a tensor rate (captured step) is filled in place by the scheduler: log a copy
        value = lr.clone() if isinstance(lr, Tensor) else loss.new_full((), lr)
        self.log("lr", value, batch_size=batch_size)
        return loss

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Back-propagate, unless the graphed step already did (with the update)."""
        if self._graphed is None:
            super().backward(loss, *args, **kwargs)

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: Optimizer) -> None:
        """Zero the gradients, unless the graphed step owns them (a replay overwrites them)."""
        if self._graphed is None:
            super().optimizer_zero_grad(epoch, batch_idx, optimizer)

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
    ) -> None:
        """Step the optimiser; with the graphed step, only run the closure (it stepped already).

        Lightning still counts the step and then steps the LR scheduler, which fills the
        graphed step's tensor learning rates in place.
        """
        if self._graphed is None:
            super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        elif optimizer_closure is not None:
            optimizer_closure()

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
        params = [p for group in optimizer.param_groups for p in group["params"]]
        clip_gradients(params, gradient_clip_val, gradient_clip_algorithm)

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        """Hand this step's non-finite flag to the fused optimiser, which then skips the update."""
        if self._step_bad is not None and self._skips_on_device():
            optimizer.found_inf = self._step_bad  # type: ignore[attr-defined]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Every ``finite_check_every_n_steps`` steps, stop if a loss was non-finite."""
        if self.global_step % self.hparams["finite_check_every_n_steps"] == 0:
            self._records.raise_if_non_finite()

    def on_train_epoch_end(self) -> None:
        """Check the guard; log the epoch's expert utilisation (one host synchronisation)."""
        self._records.raise_if_non_finite()
        if self._graphed is not None:
            self.log("train_eager_steps", float(self._graphed.eager_steps))
        means = self._records.pop_utilisation()
        if means is None:
            return
        col = 0
        for i, block in enumerate(self.model.encoder.blocks):
            for e in range(block.moe.num_experts):
                self.log(f"train_util/layer{i:02d}/expert{e}", means[col])
                col += 1

    def on_train_end(self) -> None:
        """Check the guard once more (a run may stop mid-epoch at ``max_steps``)."""
        self._records.raise_if_non_finite()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse to write a checkpoint after a non-finite step went unreported; store the
        optimiser in the eager layout (float rates) whichever path trained."""
        self._records.raise_if_non_finite()
        canonical_checkpoint(checkpoint)

    def _evaluate(self, batch: dict[str, Tensor], batch_idx: int, stage: str) -> None:
        """Loss with a fixed masking per batch index (comparable across epochs and runs)."""
        gen = torch.Generator().manual_seed(batch_idx)
        out = self(batch, mask_ratio=self.hparams["mask_ratio"], generator=gen)
        loss = out.loss(self.hparams["alpha"], self.hparams["beta"])
        self._log_losses(stage, loss, self._parts(out), batch["image"].shape[0])

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

    def export_encoder(
        self, out_dir: str | Path, save_mae: bool = True, overwrite: bool = False
    ) -> Path:
        """Write the encoder as a timm/Hugging Face Hub folder; see :func:`torchgeo_moemae.export.export_encoder`."""
        return export_encoder(self, out_dir, save_mae=save_mae, overwrite=overwrite)
