"""Fixtures for the trainer tests: tiny in-memory Landsat-like batches and single-threaded torch."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils.data import DataLoader, Dataset


class RandomLandsat(Dataset[dict[str, torch.Tensor]]):
    """``n`` normalised 7x40x40 images with lat/lon/time; optional NaN pixels in some samples."""

    def __init__(self, n: int = 16, seed: int = 0, nan_samples: tuple[int, ...] = ()) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 7, 40, 40, generator=gen)
        for i in nan_samples:
            self.images[i, 3, 5, 5] = math.nan
        self.lat = torch.rand(n, generator=gen) * 30 + 40
        self.lon = torch.rand(n, generator=gen) * 30 - 10
        self.time = torch.full((n,), 1.5e9, dtype=torch.float64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "image": self.images[i],
            "lat": self.lat[i],
            "lon": self.lon[i],
            "time": self.time[i],
        }


def loader(
    n: int = 16, batch_size: int = 4, **kwargs: object
) -> DataLoader[dict[str, torch.Tensor]]:
    """A deterministic (unshuffled) loader over :class:`RandomLandsat`."""
    return DataLoader(RandomLandsat(n, **kwargs), batch_size=batch_size)  # type: ignore[arg-type]


@pytest.fixture
def make_loader() -> Callable[..., DataLoader[dict[str, torch.Tensor]]]:
    """Factory of :func:`loader`."""
    return loader


class NoHostSync(TorchFunctionMode):
    """Fails on any tensor-to-host read: what would stall an accelerator's queue each step."""

    forbidden: ClassVar[set[Any]] = {
        torch.Tensor.item,
        torch.Tensor.tolist,
        torch.Tensor.cpu,
        torch.Tensor.numpy,
        torch.Tensor.__bool__,
        torch.Tensor.__float__,
        torch.Tensor.__int__,
        torch.Tensor.nonzero,
        torch.nonzero,
    }

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in self.forbidden:
            raise AssertionError(f"host synchronisation in the training step: {func}")
        return func(*args, **(kwargs or {}))
