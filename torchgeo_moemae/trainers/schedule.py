"""Linear warm-up + cosine decay, stepped per optimiser iteration, over the run's length."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["WarmupCosine", "fit_schedule", "warmup_cosine_scheduler"]


class WarmupCosine:
    """Learning-rate factor: linear from ~0 to 1 over ``warmup_steps``, then cosine to ``min_ratio``.

    A callable object (not a closure) so that :class:`~torch.optim.lr_scheduler.LambdaLR` saves its
    settings in checkpoints: a resumed run continues the same schedule.

    Args:
        total_steps: optimiser steps of the whole run.
        warmup_steps: steps of the linear warm-up (0 = none).
        min_ratio: final learning rate as a fraction of the base learning rate.
    """

    def __init__(self, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> None:
        if not 0.0 <= min_ratio <= 1.0:
            raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}")
        self.min_ratio = min_ratio
        self.set_length(total_steps, warmup_steps)

    def set_length(self, total_steps: int, warmup_steps: int) -> None:
        """Span ``total_steps`` steps, the first ``warmup_steps`` of them warming up."""
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"warmup_steps must be in [0, {total_steps}], got {warmup_steps}")
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        """Factor applied to the base learning rate at optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            # (step + 1): the first update already moves the weights (a zero-lr step is wasted).
            return (step + 1) / self.warmup_steps
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_scheduler(
    optimizer: Optimizer,
    total_steps: int = 1,
    warmup_fraction: float = 0.05,
    min_lr: float = 0.0,
) -> LambdaLR:
    """Paper schedule (Table 3): warm-up over ``warmup_fraction`` of the steps, cosine to ``min_lr``.

    ``min_lr`` is absolute and taken relative to the first parameter group's learning rate. The
    length may be set later, with :func:`fit_schedule`, before the first step.
    """
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    base_lr = optimizer.param_groups[0]["lr"]
    if base_lr <= 0 or min_lr > base_lr:
        raise ValueError(f"need 0 <= min_lr <= lr and lr > 0, got lr={base_lr}, min_lr={min_lr}")
    warmup = round(warmup_fraction * total_steps)
    return LambdaLR(optimizer, WarmupCosine(total_steps, warmup, min_lr / base_lr))


def fit_schedule(scheduler: LambdaLR, total_steps: int, warmup_fraction: float) -> int:
    """Stretch or shrink a :func:`warmup_cosine_scheduler` to ``total_steps``, from where it is.

    The current learning rates become the new schedule's at the scheduler's step, so a run
    resumed with a longer ``max_epochs`` continues on the longer cosine (a run that had finished
    its decay warms back up to it) instead of training at ``min_lr``.

    Returns:
        The length the schedule had before (equal to ``total_steps`` when nothing changed).
    """
    # one WarmupCosine, shared by every parameter group
    schedule = scheduler.lr_lambdas[0]
    assert isinstance(schedule, WarmupCosine)
    assert all(f is schedule for f in scheduler.lr_lambdas)
    before = schedule.total_steps
    schedule.set_length(total_steps, round(warmup_fraction * total_steps))
    # the rates of the current step, as LambdaLR.step computes them (bit for bit when unchanged)
    step = scheduler.last_epoch
    rates = [
        base * f(step) for f, base in zip(scheduler.lr_lambdas, scheduler.base_lrs, strict=True)
    ]
    for group, lr in zip(scheduler.optimizer.param_groups, rates, strict=True):
        group["lr"] = lr
    scheduler._last_lr = rates  # what get_last_lr() reports
    return before
