"""Held-out evaluation of a masked autoencoder with a fixed, seeded masking."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from ..models import MoEMAE
from ..utils import batch_metadata, eval_mode

__all__ = ["masked_reconstruction_loss"]


@torch.no_grad()
def masked_reconstruction_loss(
    model: MoEMAE,
    batches: Iterable[dict[str, Tensor]],
    mask_ratio: float = 0.75,
    seed: int = 0,
    transform: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
) -> float:
    """Mean over all masked patches of the per-patch sum of squared errors (``L_mask``).

    The model runs in eval mode (deterministic routing, no dropout); the masking is drawn from a
    CPU generator seeded with ``seed``, so two models evaluated on the same batches see exactly the
    same visible patches. The model's train/eval mode is restored afterwards.

    Args:
        model: the MoE-MAE.
        batches: dicts with ``image`` ``(B, 7, H, W)`` and optional ``lat``/``lon``/``time`` ``(B,)``.
        mask_ratio: fraction of hidden patches.
        seed: seed of the masking.
        transform: applied to each batch first (e.g. a datamodule's normalisation ``aug``).
    """
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0.0
    with eval_mode(model):
        for batch in batches:
            batch = transform(batch) if transform is not None else batch
            x = batch["image"].to(device, torch.float32)
            meta = {k: v.to(device) for k, v in batch_metadata(batch).items()}
            out = model(x, **meta, mask_ratio=mask_ratio, generator=gen)
            masked = out.mask.sum().item()
            total += out.loss_masked.item() * masked
            count += masked
    if count == 0:
        raise ValueError("no batches to evaluate")
    return total / count
