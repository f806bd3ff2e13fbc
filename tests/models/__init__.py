"""Tests of torchgeo_moemae.models."""

from __future__ import annotations

import torch


def image_batch(b: int = 2) -> tuple[torch.Tensor, ...]:
    """Random normalised images ``(b, 7, 40, 40)`` with ``lat``, ``lon``, float64 ``time``."""
    x = torch.randn(b, 7, 40, 40)
    lat = torch.linspace(40, 60, b)
    lon = torch.linspace(-5, 25, b)
    time = torch.linspace(1.5e9, 1.53e9, b, dtype=torch.float64)
    return x, lat, lon, time
