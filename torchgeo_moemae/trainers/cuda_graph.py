"""A whole training step replayed as one CUDA graph, and the on-device records it keeps.

Launching a small model's ~4,000 kernels one by one from Python costs far more than the kernels
themselves. :class:`GraphedTrainStep` records forward, loss, backward, gradient clipping, the
non-finite guard and the fused AdamW update once as a CUDA graph and replays it for every batch
of the recorded shape, after copying the batch into static input buffers. Without capture (CPU,
or ``capture=False``) the same object runs the same code eagerly on the same buffers, so its
logic is testable anywhere.

:class:`StepRecords` keeps what the host looks at only now and then (the first non-finite step,
the expert utilisation) as device tensors updated in place, so that recording them never waits
for the device and stays valid inside a captured graph.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim import Optimizer

from ..models.checks import skip_value_checks
from .clipping import clip_grad_norm_

__all__ = [
    "GraphedTrainStep",
    "LossFn",
    "StepRecords",
    "canonical_checkpoint",
    "clip_gradients",
]

#: ``batch -> (loss, named loss parts to log, expert utilisation (U,))``; runs the model.
LossFn = Callable[[dict[str, Tensor]], tuple[Tensor, dict[str, Tensor], Tensor]]


class StepRecords:
    """On-device records of the non-finite guard and the expert utilisation.

    :meth:`update` runs inside the training step without reading anything on the host; the
    host reads the records with :meth:`raise_if_non_finite` and :meth:`pop_utilisation` only at
    its checks. The tensors are allocated at the first update and then only written in place
    (a captured graph keeps their addresses); the per-sample NaN/inf flags have the first
    batch's size (the full batch: later batches are never larger).
    """

    def __init__(self) -> None:
        self.where: Tensor | None = None  # (global step, epoch, batch index) of the first bad step
        self.loss: Tensor | None = None  # its loss
        self.samples: Tensor | None = None  # (B,) its samples with NaN/inf pixels
        self.util_sum: Tensor | None = None  # (U,) utilisation summed over samples
        self.util_weight = 0  # samples in util_sum (counted on the host)

    def update(self, loss: Tensor, image: Tensor, where: Tensor, util: Tensor) -> Tensor:
        """Record one step; returns its non-finite flag (``0.``/``1.``, AdamW's ``found_inf``).

        Args:
            loss: the step's total loss ``()``.
            image: the batch's images ``(B, ...)``.
            where: ``(3,)`` long: global step, epoch, batch index.
            util: expert utilisation of the step ``(U,)``.
        """
        loss = loss.detach().float()
        bad = ~torch.isfinite(loss)
        samples = ~torch.isfinite(image.detach()).flatten(1).all(1)
        if self.where is None or self.loss is None or self.samples is None:
            self.where = torch.full_like(where, -1)
            self.loss = loss.new_zeros(())
            self.samples = samples.new_zeros(samples.shape)
            self.util_sum = torch.zeros_like(util, dtype=torch.float32)
        n = self.samples.shape[0]
        samples = F.pad(samples[:n], (0, n - min(n, samples.shape[0])))
        first = bad & (self.where[0] < 0)
        self.where.copy_(torch.where(first, where, self.where))
        self.loss.copy_(torch.where(first, loss, self.loss))
        self.samples.copy_(torch.where(first, samples, self.samples))
        assert self.util_sum is not None
        self.util_sum.add_(util.detach().float() * image.shape[0])
        return bad.float()

    def count(self, batch_size: int) -> None:
        """Count a recorded step's samples for the utilisation mean (host side, every step)."""
        self.util_weight += batch_size

    def raise_if_non_finite(self) -> None:
        """Raise if a non-finite loss was recorded (one host synchronisation)."""
        if self.where is None or self.loss is None or self.samples is None:
            return
        step, epoch, batch_idx = self.where.tolist()
        if step < 0:
            return
        bad = self.samples.nonzero().flatten().tolist()
        cause = (
            f"the input image has NaN/inf values in samples {bad} of the batch"
            if bad
            else "the input is finite, so the weights or an overflow produced it"
        )
        raise RuntimeError(
            f"non-finite training loss ({self.loss.item()}) at batch {batch_idx} "
            f"(epoch {epoch}, global step {step}): {cause}. The update of that step was skipped, "
            "so the weights are not corrupted."
        )

    def pop_utilisation(self) -> list[float] | None:
        """Mean utilisation since the last call (one host synchronisation); None if nothing."""
        if self.util_sum is None or not self.util_weight:
            return None
        means = (self.util_sum / self.util_weight).tolist()
        self.util_sum.zero_()  # in place: a captured graph keeps adding to this tensor
        self.util_weight = 0
        return means


def _grad_params(optimizer: Optimizer) -> list[Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def clip_gradients(params: list[Tensor], value: float | None, algorithm: str | None) -> None:
    """Clip as Lightning's ``gradient_clip_val``/``gradient_clip_algorithm`` say, without a sync.

    :func:`~torchgeo_moemae.trainers.clipping.clip_grad_norm_` multiplies by a clamped
    coefficient (no host read) and never raises on non-finite norms; the guard handles those.
    """
    if not value:
        return
    if algorithm == "value":
        torch.nn.utils.clip_grad_value_(params, value)
    else:
        clip_grad_norm_(params, value)


class GraphedTrainStep:
    """Forward, loss, backward, clipping, guard and AdamW step of a batch: one CUDA graph replay.

    The first batch fixes the static shapes. Each later batch of the same keys, shapes and dtypes
    is copied into the static buffers and replayed (or, without capture, run on them eagerly);
    a batch of any other shape (the last, partial batch of an epoch) runs eagerly (compiled
    blocks included) and is counted in :attr:`eager_steps`: nothing is silently recaptured or
    recompiled. The first ``warmup_steps``
    full batches run eagerly on a side stream (they create the optimiser state and the libraries'
    workspaces, which a capture cannot), then the next one is captured and replayed.

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
