"""Band normalisation and random flips of Landsat images.

* :func:`normalize_dn` z-scores raw DN per band (what the TIFF datamodules' kornia ``Normalize``
  computes, bit for bit); :class:`Normalize` is its module form, the ``transforms`` of the weights
  entries, for tensors and sample dicts.
* :data:`FLIP_AXES` and :func:`flip_counts` are the flips of the packed data paths: a batch is cut
  into four blocks (none, left-right, up-down, both), whatever does the gather flips each block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["CHUNK", "FLIP_AXES", "Normalize", "flip_counts", "normalize_dn"]

#: images per normalisation chunk: three passes over a chunk stay in the CPU cache
CHUNK = 32
#: Image axes each of the four flip blocks reverses: none, left-right, up-down, both.
FLIP_AXES: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def flip_counts(batch_size: int) -> list[int]:
    """How many images of a batch get each of the four flips of :data:`FLIP_AXES`.

    The batches of a shuffled split are exchangeable, so flipping contiguous blocks of random
    multinomial sizes gives every image an independent 50% chance per axis, like per-image
    coin flips, while each block is one strided copy. Drawn from torch's global RNG (seeded per
    worker by the DataLoader).
    """
    draws = torch.randint(0, 4, (batch_size,))
    return torch.bincount(draws, minlength=4).tolist()


def normalize_dn(image: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Raw DN (uint16 or float, ``(B, C, H, W)`` or ``(C, H, W)``) -> float32 ``(x - mean) / std``
    per band.

    Bit for bit what the TIFF datamodules' kornia ``Normalize`` computes, in chunks of
    :data:`CHUNK` images so that the cast, subtraction and division stay in the CPU cache.
    """
    if image.ndim == 3:
        return normalize_dn(image[None], mean, std)[0]
    if image.dtype == torch.uint16 and image.device.type != "cpu":
        # uint16 kernels are incomplete off the CPU; int32 holds every uint16 exactly.
        image = image.view(torch.int16).to(torch.int32) & 0xFFFF
    out = torch.empty(image.shape, dtype=torch.float32, device=image.device)
    mean = mean.to(out.device, torch.float32)[:, None, None]
    std = std.to(out.device, torch.float32)[:, None, None]
    for start in range(0, len(image), CHUNK):
        chunk = out[start : start + CHUNK]
        chunk.copy_(image[start : start + CHUNK])
        chunk.sub_(mean).div_(std)
    return out


class Normalize(nn.Module):
    """Per-band z-score ``(x - mean) / std`` of a ``(..., C, H, W)`` image (:func:`normalize_dn`).

    Given a sample or batch dict, normalises its ``"image"`` and passes the other keys through.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean), persistent=False)
        self.register_buffer("std", torch.tensor(std), persistent=False)

    def forward(self, x: Tensor | dict[str, Any]) -> Tensor | dict[str, Any]:
        """Normalised float32 image, or the dict with its ``"image"`` normalised."""
        if isinstance(x, dict):
            return {**x, "image": self(x["image"])}
        return normalize_dn(x, self.mean, self.std)
