"""The non-finite guard of a training step: on-device records the host reads only now and then.

A training step that never waits for the accelerator cannot look at its loss. :class:`StepRecords`
keeps, as device tensors updated in place, the first step whose loss was NaN/inf (where, its loss,
which samples had NaN/inf pixels) and the expert utilisation; the host reads them at its checks
(:meth:`StepRecords.raise_if_non_finite`, :meth:`StepRecords.pop_utilisation`). Updating them
never synchronises and stays valid inside a captured CUDA graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["StepRecords"]


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
