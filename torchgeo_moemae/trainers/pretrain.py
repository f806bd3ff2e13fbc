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
from torch.optim import AdamW
from torchgeo.trainers import BaseTask
from torchvision.models._api import WeightsEnum

from ..export import export_encoder
from ..models import create_mae
from ..models.mae import MAEOutput
from ..models.moe import MoEAux
from ..probe.featurizer import Featurizer
from ..utils import METADATA_KEYS, fixed_masking
from ..vocabulary import DEFAULT_POOL
from .schedule import fit_schedule, warmup_cosine_scheduler
from .train_step import TrainStepMixin

__all__ = ["MoEMAEPretrainTask"]


def expert_utilisation(routing: MoEAux) -> Tensor:
    """Fraction of a layer's routing slots taken by each expert: ``(E,)``, sums to 1.

    Each token fills ``top_k`` slots; perfectly balanced routing gives ``1 / E`` per expert.
    """
    chosen = (routing.gates > 0).float()  # (T, E)
    return chosen.sum(0) / chosen.sum().clamp_min(1)


def with_metadata(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """``image`` and ``lat``/``lon``/``time`` ``(B,)`` of a batch; absent metadata -> NaN."""
    x = batch["image"]
    out = {"image": x}
    for key in METADATA_KEYS:
        value = batch.get(key)
        if value is None:
            dtype = torch.float64 if key == "time" else x.dtype
            value = torch.full((x.shape[0],), math.nan, dtype=dtype, device=x.device)
        out[key] = value
    return out


def loss_terms(out: MAEOutput) -> dict[str, Tensor]:
    """The loss terms of an output, by their logged suffix (``*_loss_masked``, ...)."""
    return {"masked": out.loss_masked, "visible": out.loss_visible, "moe": out.moe_loss}


class MoEMAEPretrainTask(TrainStepMixin, BaseTask):
    """Pre-train MoE-MAE: ``L = L_mask + alpha * L_vis + beta * L_moe`` (the paper, Table 3).

    AdamW without weight decay on norms, biases, position embeddings and learned tokens; linear
    warm-up over ``warmup_fraction`` of all optimiser steps, then cosine decay to ``min_lr``, both
    stepped per iteration. Gradient clipping and mixed precision are Trainer settings
    (``gradient_clip_val: 1.0``, ``precision: bf16-mixed`` in the configs).

    Batches are dicts with ``image`` ``(B, 7, 40, 40)`` (normalised by the datamodule) and
    optionally ``lat``, ``lon`` (degrees), ``time`` (POSIX seconds), each ``(B,)``; a missing key
    becomes NaN (= missing metadata).

    The training step never waits for the accelerator (no ``.item()``, no branching on tensor
    values; see :class:`~torchgeo_moemae.trainers.train_step.TrainStepMixin`): a step whose loss is
    NaN/inf has its optimiser update skipped on the device, and training stops with an error
    naming that batch at the next check (every ``finite_check_every_n_steps`` steps, at each epoch
    end and before any checkpoint is written), so non-finite values never reach the weights nor a
    checkpoint. On one CUDA device the whole step (forward, loss, backward, clipping, guard, fused
    AdamW) is one CUDA graph replay (``cuda_graph``); batches of another shape (an epoch's last,
    partial batch) run the same step eagerly and are counted (``train_eager_steps``).

    ``torchgeo test`` logs the same losses on the test split (``test_*``) and ``torchgeo predict``
    returns the encoder's CLS embeddings ``(B, C)`` per batch.

    Logged: ``train_loss``/``val_loss`` (total), ``*_loss_masked``, ``*_loss_visible``,
    ``*_loss_moe``, ``lr`` (per step, as device tensors that Lightning converts only every
    ``log_every_n_steps``), and per epoch ``train_util/layer{i}/expert{e}`` (fraction of routing
    slots per expert, accumulated on the device). At validation, a reconstruction figure
    (original / full / masked input / masked reconstruction) goes to the logger (if it takes
    figures) and to ``<log_dir>/figures/reconstruction_epoch{N}.png``. ``val_loss`` is the
    monitored metric.
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
        fused = self.fused_optimizer_ok()
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

    def on_train_start(self) -> None:
        """Span the schedule over this run's steps, then set up the step
        (:class:`~torchgeo_moemae.trainers.train_step.TrainStepMixin`).

        The run's length is read here, not in :meth:`configure_optimizers`: reading it there builds
        the train loader before Lightning restores a checkpoint, and Lightning then never restores
        the loader's position (a resumed run would redo its epoch). A resumed run keeps its
        schedule unless its length changed (e.g. a finished run extended with a larger
        ``max_epochs``): it then continues on the new length's cosine, and says so.
        """
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
        scheduler = self.trainer.lr_scheduler_configs[0].scheduler
        before = fit_schedule(scheduler, int(total), self.hparams["warmup_fraction"])  # type: ignore[arg-type]
        if before != total and self.global_step > 0:
            rank_zero_info(
                f"The learning-rate schedule now spans {int(total)} steps instead of the "
                f"checkpoint's {before}: from step {self.global_step} the rate follows the new "
                f"length's cosine (lr {scheduler.get_last_lr()[0]:.3g})."
            )
        super().on_train_start()

    def forward(self, batch: dict[str, Tensor], **kwargs: Any) -> MAEOutput:
        """Masked forward pass of a batch; ``kwargs`` go to :meth:`MoEMAE.forward`."""
        batch = with_metadata(batch)
        return self.model(batch.pop("image"), **batch, **kwargs)

    def training_losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """``L_mask + alpha * L_vis + beta * L_moe``, its terms and the expert utilisation ``(U,)``."""
        out = self(batch)
        with torch.no_grad():
            util = torch.cat([expert_utilisation(routing) for routing in out.routing])
        return out.loss(self.hparams["alpha"], self.hparams["beta"]), loss_terms(out), util

    def training_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Masked reconstruction loss of a batch (the update: :meth:`run_step`)."""
        batch = with_metadata(batch)
        loss, parts = self.run_step(batch, batch_idx)
        # the progress bar converts its metrics at every refresh: it shows validation only
        batch_size = batch["image"].shape[0]
        self.log("train_loss", loss, batch_size=batch_size)
        self.log_dict({f"train_loss_{k}": v for k, v in parts.items()}, batch_size=batch_size)
        return loss

    def on_train_epoch_end(self) -> None:
        """Check the guard; log the epoch's expert utilisation (one host synchronisation)."""
        super().on_train_epoch_end()
        means = self.records.pop_utilisation()
        if means is None:
            return
        names = [
            f"train_util/layer{i:02d}/expert{e}"
            for i, block in enumerate(self.model.encoder.blocks)
            for e in range(block.moe.num_experts)
        ]
        self.log_dict(dict(zip(names, means, strict=True)))

    def _evaluate(self, batch: dict[str, Tensor], batch_idx: int, stage: str) -> None:
        """Losses with a fixed masking per batch index (comparable across epochs and runs)."""
        out = self(batch, mask_ratio=self.hparams["mask_ratio"], generator=fixed_masking(batch_idx))
        loss = out.loss(self.hparams["alpha"], self.hparams["beta"])
        # means synchronised across DDP ranks (val_loss picks the best checkpoint)
        n = batch["image"].shape[0]
        self.log(f"{stage}_loss", loss, batch_size=n, prog_bar=True, sync_dist=True)
        terms = {f"{stage}_loss_{k}": v for k, v in loss_terms(out).items()}
        self.log_dict(terms, batch_size=n, sync_dist=True)

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
        return Featurizer(self.model.encoder)({**batch, **with_metadata(batch)}, DEFAULT_POOL)

    def log_reconstruction(self, batch: dict[str, Tensor]) -> Path:
        """Plot original / full / masked reconstructions; send to the logger and save a PNG."""
        from ..analysis.reconstruction import plot_reconstruction

        meta = with_metadata(batch)
        fig = plot_reconstruction(
            self.model,
            meta["image"],
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
