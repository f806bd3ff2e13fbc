"""Gradient clipping as the Trainer asks, with a constant number of operations and no host sync."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["clip_grad_norm_", "clip_gradients"]


@torch.no_grad()
def clip_grad_norm_(
    parameters: Iterable[Tensor], max_norm: float, norm_type: float = 2.0
) -> Tensor:
    """:func:`torch.nn.utils.clip_grad_norm_` for gradients on one device, in nine operations.

    torch's version moves every per-tensor norm to the first device before stacking them: one
    ``aten::to`` per parameter tensor (hundreds per step, each a dispatcher call on the host).
    The gradients of one device need no move; the arithmetic, and so the result, is torch's.
    Gradients on several devices are left to torch's version. No host synchronisation.

    Returns:
        The total norm of the gradients (before clipping), a scalar tensor.
    """
    params = list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or len({g.device for g in grads}) > 1:
        return torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, norm_type)), norm_type)
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total, foreach=True)
    return total


def clip_gradients(params: list[Tensor], value: float | None, algorithm: str | None) -> None:
    """Clip as Lightning's ``gradient_clip_val``/``gradient_clip_algorithm`` say, without a sync.

    :func:`clip_grad_norm_` multiplies by a clamped coefficient (no host read) and never raises
    on non-finite norms: the non-finite guard (:mod:`~torchgeo_moemae.trainers.guard`) handles
    those.
    """
    if not value:
        return
    if algorithm == "value":
        torch.nn.utils.clip_grad_value_(params, value)
    else:
        clip_grad_norm_(params, value)
