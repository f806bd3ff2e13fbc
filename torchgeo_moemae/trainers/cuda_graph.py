"""A whole training step replayed as one CUDA graph.

Launching a small model's ~4,000 kernels one by one from Python costs far more than the kernels
themselves. :class:`GraphedTrainStep` records forward, loss, backward, gradient clipping, the
non-finite guard (:class:`~torchgeo_moemae.trainers.guard.StepRecords`) and the fused AdamW update
once as a CUDA graph and replays it for every batch of the recorded shape, after copying the batch
into static input buffers. Without capture (CPU, or ``capture=False``) the same object runs the
same code eagerly on the same buffers, so its logic is testable anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from ..models.checks import skip_value_checks
from .clipping import clip_gradients
from .guard import StepRecords

__all__ = ["GraphedTrainStep", "LossFn", "canonical_checkpoint"]

#: ``batch -> (loss, named loss parts to log, expert utilisation (U,))``; runs the model.
LossFn = Callable[[dict[str, Tensor]], tuple[Tensor, dict[str, Tensor], Tensor]]


def _grad_params(optimizer: Optimizer) -> list[Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


class GraphedTrainStep:
    """Forward, loss, backward, clipping, guard and AdamW step of a batch: one CUDA graph replay.

    The first batch fixes the static shapes. Each later batch of the same keys, shapes and dtypes
    is copied into the static buffers and replayed (or, without capture, run on them eagerly);
    a batch of any other shape (the last, partial batch of an epoch) runs eagerly (compiled
    blocks included) and is counted in :attr:`eager_steps`: nothing is silently recaptured or
    recompiled. The first ``warmup_steps`` full batches run eagerly on a side stream (they create
    the optimiser state and the libraries' workspaces, which a capture cannot), then the next one
    is captured and replayed.

    What a replay needs from outside is updated in place: the learning rates are device tensors
    that an LR scheduler fills (:func:`torch.optim.lr_scheduler.LRScheduler` does so for tensor
    rates), and the ``(global step, epoch, batch index)`` of the guard is filled before each call.
    Random numbers (masking, gate noise, dropout) come from the default CUDA generator, whose
    offset advances at every replay: each step draws fresh ones, and a seeded run repeats.

    Args:
        loss_fn: the model's losses of a batch (see :data:`LossFn`).
        optimizer: fused AdamW; its rates become tensors on the parameters' device and, with
            capture, its groups ``capturable``.
        records: where the guard and the utilisation are recorded.
        clip_val: gradient clipping threshold (None or 0: none).
        clip_algorithm: ``"norm"`` (default) or ``"value"``.
        capture: record and replay a CUDA graph (CUDA only); False runs the same steps eagerly.
        warmup_steps: eager full-batch steps before the capture (>= 1).
    """

    def __init__(
        self,
        loss_fn: LossFn,
        optimizer: Optimizer,
        records: StepRecords,
        clip_val: float | None = None,
        clip_algorithm: str | None = None,
        capture: bool = True,
        warmup_steps: int = 3,
    ) -> None:
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be >= 1, got {warmup_steps}")
        if capture and not torch.cuda.is_available():
            raise RuntimeError("capture=True needs CUDA; use capture=False on this machine")
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.records = records
        self.clip_val = clip_val
        self.clip_algorithm = clip_algorithm
        self.capture = capture
        self.warmup_steps = warmup_steps
        self.params = _grad_params(optimizer)
        device = self.params[0].device
        # float32 is what the fused CUDA kernel reads; on CPU float64 keeps Python's exact rate
        lr_dtype = torch.float32 if device.type == "cuda" else torch.float64
        for group in optimizer.param_groups:
            if not isinstance(group["lr"], Tensor):  # filled in place by the scheduler from now on
                group["lr"] = torch.tensor(float(group["lr"]), dtype=lr_dtype, device=device)
            if capture:
                group["capturable"] = True
        self.static: dict[str, Tensor] | None = None
        self.where = torch.full((3,), -1, dtype=torch.long, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: dict[str, Tensor] = {}
        self.static_steps = 0  #: full batches: replays (or eager runs on the static buffers)
        self.eager_steps = 0  #: batches of another shape, run eagerly
        self._warm = 0

    def __call__(
        self, batch: Mapping[str, Tensor], where: tuple[int, int, int]
    ) -> dict[str, Tensor]:
        """Train on ``batch``; returns ``loss`` and the parts as device tensors (never read here).

        Args:
            batch: ``image`` ``(B, C, H, W)`` and the metadata, all on the parameters' device.
            where: global step, epoch and batch index (reported by the guard).
        """
        for i, position in enumerate(where):
            self.where[i].fill_(position)  # a device-side fill: no synchronisation
        self.records.count(batch["image"].shape[0])
        if self.static is None:
            self.static = {k: torch.empty_like(v) for k, v in batch.items()}
        if not self.fits(batch):
            self.eager_steps += 1
            # compiled blocks run eagerly too: a new shape would otherwise compile them all again
            with torch.compiler.set_stance("force_eager"):
                return self._eager(dict(batch))
        for key, value in batch.items():
            self.static[key].copy_(value, non_blocking=True)
        self.static_steps += 1
        if not self.capture:
            return self._eager(self.static)
        if self.graph is None:
            if self._warm < self.warmup_steps:
                self._warm += 1
                return self._warmup(self.static)
            self._capture()
        assert self.graph is not None
        self.graph.replay()
        return self.outputs

    def fits(self, batch: Mapping[str, Tensor]) -> bool:
        """Whether ``batch`` has the static buffers' keys, shapes and dtypes (can replay)."""
        static = self.static
        return (
            static is not None
            and batch.keys() == static.keys()
            and all(
                v.shape == static[k].shape and v.dtype == static[k].dtype for k, v in batch.items()
            )
        )

    def _body(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The step itself: the same code runs eagerly, at warm-up and inside the capture."""
        device = batch["image"].device.type
        # the surrounding precision context (e.g. Lightning's bf16 autocast), without its weight
        # cache: a cache inside a capture would hold casts made at capture time
        enabled = torch.is_autocast_enabled(device)
        dtype = torch.get_autocast_dtype(device)
        with (
            torch.autocast(device, dtype, enabled=enabled, cache_enabled=False),
            skip_value_checks(),
        ):
            loss, parts, util = self.loss_fn(batch)
        loss.backward()
        clip_gradients(self.params, self.clip_val, self.clip_algorithm)
        bad = self.records.update(loss, batch["image"], self.where, util)
        self.optimizer.found_inf = bad  # type: ignore[attr-defined]  # fused AdamW skips the update
        self.optimizer.step()
        return {"loss": loss.detach(), **{k: v.detach() for k, v in parts.items()}}

    def _eager(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        # set_to_none: backward then writes fresh gradients, as the graph's backward does
        self.optimizer.zero_grad(set_to_none=True)
        return self._body(batch)

    def _warmup(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            out = self._eager(batch)
        torch.cuda.current_stream().wait_stream(stream)
        return out

    def _capture(self) -> None:
        assert self.static is not None
        # gradients allocated inside the capture live in the graph's pool; replays overwrite them
        self.optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: the data loader's pin-memory thread may call CUDA meanwhile
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.outputs = self._body(self.static)


def canonical_checkpoint(checkpoint: dict[str, Any]) -> None:
    """Write optimiser and scheduler states in the eager path's layout (in place).

    The captured step keeps learning rates as device tensors and its groups ``capturable``;
    checkpoints store plain floats and ``capturable=False`` instead, so a checkpoint written by
    either path resumes in the other (:class:`GraphedTrainStep` converts again on creation).
    AdamW's per-parameter ``step`` is a float32 tensor on the parameters' device in both (fused).
    """
    for state in checkpoint.get("optimizer_states", []):
        for group in state.get("param_groups", []):
            for key in ("lr", "initial_lr"):
                if isinstance(group.get(key), Tensor):
                    group[key] = group[key].item()
            if "capturable" in group:
                group["capturable"] = False
    for state in checkpoint.get("lr_schedulers", []):
        for key in ("base_lrs", "_last_lr"):
            if key in state:
                state[key] = [v.item() if isinstance(v, Tensor) else v for v in state[key]]
