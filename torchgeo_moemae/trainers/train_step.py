"""A LightningModule's training step that never waits for the accelerator.

:class:`TrainStepMixin` gathers what such a step needs from Lightning, so that a task only defines
its losses (:meth:`TrainStepMixin.training_losses`) and calls :meth:`TrainStepMixin.run_step`
from ``training_step``. Each step:

* records, without a host synchronisation, whether its loss was NaN/inf
  (:class:`~torchgeo_moemae.trainers.guard.StepRecords`); fused AdamW skips that step's update on
  the device (``found_inf``), and training stops with an error naming the batch at the next check
  (every ``finite_check_every_n_steps`` steps, at each epoch's end, at the end of training and
  before any checkpoint is written). Optimisers without ``found_inf`` are checked at every step;
* clips gradients as the Trainer asks (``gradient_clip_val``), without a host synchronisation
  (:func:`~torchgeo_moemae.trainers.clipping.clip_gradients`), fused optimisers included;
* with ``compile``, runs compiled transformer blocks
  (:func:`~torchgeo_moemae.trainers.regional.compile_blocks`);
* with ``cuda_graph`` (default: on one CUDA device with fused AdamW, no gradient scaler, no
  gradient accumulation), runs whole, optimiser update included, through
  :class:`~torchgeo_moemae.trainers.cuda_graph.GraphedTrainStep`: one CUDA graph replay per full
  batch. Lightning then only counts the step and steps the LR scheduler; its backward, gradient
  zeroing and optimiser step are skipped here. Checkpoints are written in the eager path's layout
  (:func:`~torchgeo_moemae.trainers.cuda_graph.canonical_checkpoint`), so a run resumes in either.

The host class sets the hyper-parameters ``compile``, ``cuda_graph`` and
``finite_check_every_n_steps``.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor
from torch.optim import Optimizer

from ..models.checks import skip_value_checks
from .clipping import clip_gradients
from .cuda_graph import GraphedTrainStep, canonical_checkpoint
from .guard import StepRecords
from .regional import compile_blocks

__all__ = ["TrainStepMixin"]

#: Devices on which AdamW's fused kernel (with ``found_inf`` support) runs.
_FUSED_DEVICES = ("cuda", "cpu")


class TrainStepMixin(LightningModule):
    """Lightning hooks of a training step without host synchronisation; see the module docstring.

    Attributes:
        graphed: the captured step, when training through one (else None).
    """

    graphed: GraphedTrainStep | None = None
    _records: StepRecords | None = None
    _step_bad: Tensor | None = None  # the eager path's non-finite flag, for found_inf
    _compiled = False

    @property
    def records(self) -> StepRecords:
        """The guard's records of this run's steps (empty before training starts)."""
        if self._records is None:
            self._records = StepRecords()
        return self._records

    def training_losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Total loss ``()``, its named terms and the expert utilisation ``(U,)`` of a batch."""
        raise NotImplementedError

    def fused_optimizer_ok(self) -> bool:
        """Whether a fused optimiser may be used: no gradient scaler, parameters on CUDA or CPU."""
        return not self._uses_grad_scaler() and all(
            p.device.type in _FUSED_DEVICES for p in self.parameters()
        )

    def run_step(
        self, batch: dict[str, Tensor], batch_idx: int
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Run a training batch (the whole update, with the captured step); log ``lr``.

        Args:
            batch: ``image`` ``(B, C, H, W)`` and the metadata ``(B,)``, on the model's device.
            batch_idx: its index in the epoch (reported by the guard).

        Returns:
            the total loss and its named terms, as device tensors.
        """
        batch_size = batch["image"].shape[0]
        where = (self.global_step, self.current_epoch, batch_idx)
        if self.graphed is not None:
            out = self.graphed(batch, where)
            loss, parts = out["loss"], {k: v for k, v in out.items() if k != "loss"}
        else:
            with skip_value_checks():  # the guard reports NaN/inf without a host sync
                loss, parts, util = self.training_losses(batch)
            # new_full fills on the device: torch.tensor(..., device=cuda) would synchronise
            position = torch.stack([loss.new_full((), v, dtype=torch.long) for v in where])
            self._step_bad = self.records.update(loss, batch["image"], position, util)
            self.records.count(batch_size)
            if not self._skips_on_device():
                self.records.raise_if_non_finite()  # the optimiser cannot skip a step: check now
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        # a tensor rate (captured step) is filled in place by the scheduler: log a copy
        value = lr.clone() if isinstance(lr, Tensor) else loss.new_full((), lr)
        self.log("lr", value, batch_size=batch_size)
        return loss, parts

    # ------------------------------------------------------------------ Lightning hooks
    def on_train_start(self) -> None:
        """Start empty records; compile the blocks (once); set up the captured step."""
        self._records = StepRecords()
        if self.hparams["compile"] and not self._compiled:
            compile_blocks(self)
            self._compiled = True
        self.graphed = None
        if self._use_cuda_graph():
            self.graphed = GraphedTrainStep(
                self.training_losses,
                self.trainer.optimizers[0],
                self.records,
                self.trainer.gradient_clip_val,
                self.trainer.gradient_clip_algorithm,
                capture=self.device.type == "cuda",
            )

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Back-propagate, unless the captured step already did (with the update)."""
        if self.graphed is None:
            super().backward(loss, *args, **kwargs)

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: Optimizer) -> None:
        """Zero the gradients, unless the captured step owns them (a replay overwrites them)."""
        if self.graphed is None:
            super().optimizer_zero_grad(epoch, batch_idx, optimizer)

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
    ) -> None:
        """Step the optimiser; with the captured step, only run the closure (it stepped already).

        Lightning still counts the step and then steps the LR scheduler, which fills the
        captured step's tensor learning rates in place.
        """
        if self.graphed is None:
            super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        elif optimizer_closure is not None:
            optimizer_closure()

    def configure_gradient_clipping(
        self,
        optimizer: Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip as the Trainer asks; for a fused optimiser, directly (its grads are unscaled)."""
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
            self.records.raise_if_non_finite()

    def on_train_epoch_end(self) -> None:
        """Stop if a loss was non-finite; log the captured step's eager (odd-shaped) steps."""
        self.records.raise_if_non_finite()
        if self.graphed is not None:
            self.log("train_eager_steps", float(self.graphed.eager_steps))

    def on_train_end(self) -> None:
        """Check the guard once more (a run may stop mid-epoch at ``max_steps``)."""
        self.records.raise_if_non_finite()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse to save after an unreported non-finite step; save the eager path's layout."""
        self.records.raise_if_non_finite()
        canonical_checkpoint(checkpoint)

    # ------------------------------------------------------------------ eligibility
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

    def _uses_grad_scaler(self) -> bool:
        """Whether Lightning scales the loss (16-bit AMP), which then owns ``found_inf``."""
        return str(self.trainer.precision).startswith("16")

    def _skips_on_device(self) -> bool:
        """Whether the optimiser skips a non-finite step itself (fused AdamW, no GradScaler)."""
        optimizer = self.trainer.optimizers[0]
        return bool(optimizer.defaults.get("fused")) and not self._uses_grad_scaler()
