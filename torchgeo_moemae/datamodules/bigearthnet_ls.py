"""BigEarthNet-L datamodule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..bands import BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from ..datasets.bigearthnet_ls import BigEarthNetLS
from ..datasets.utils import OnError
from .base import LandsatBenchDataModule


class BigEarthNetLSDataModule(LandsatBenchDataModule):
    """LightningDataModule for :class:`~torchgeo_moemae.datasets.BigEarthNetLS`.

    Batches: ``image`` (B, 7, P, P) z-scored with the BigEarthNet-L statistics (after transfer to
    the device), ``label`` (B, num_classes) int64 multi-hot, ``lat``/``lon`` (B,) float32
    degrees, ``time`` (B,) float64 POSIX seconds. P = ``patch_size`` (center crop).
    """

    mean = torch.tensor(BIGEARTHNET_LS_MEAN)
    std = torch.tensor(BIGEARTHNET_LS_STD)

    def __init__(
        self,
        root: str | Path = "data",
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        patch_size: int | None = 40,
        num_classes: int = 19,
        augment: bool = False,
        download: bool = False,
        checksum: bool = False,
        on_error: OnError = "raise",
        max_fill_fraction: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new BigEarthNetLSDataModule.

        Args:
            root: dataset root (split CSVs and ``bigearthnet-l/``).
            batch_size: samples per batch.
            num_workers: DataLoader worker processes.
            pin_memory: pin host memory of batches (when CUDA is available).
            patch_size: image height/width in px (center crop); None keeps the native size.
            num_classes: 19 or 43 labels.
            augment: random horizontal/vertical flips of train batches.
            download: download missing files from the Hugging Face Hub.
            checksum: verify MD5s where known.
            on_error: "raise" or "skip" bad samples.
            max_fill_fraction: drop patches with more fill (DN 0) pixels than this fraction
                (None keeps all); see :class:`BigEarthNetLS`.
            **kwargs: more :class:`BigEarthNetLS` arguments (e.g. ``time_source``).
        """
        super().__init__(
            BigEarthNetLS,
            batch_size,
            num_workers,
            pin_memory,
            augment,
            root=root,
            patch_size=patch_size,
            num_classes=num_classes,
            download=download,
            checksum=checksum,
            on_error=on_error,
            max_fill_fraction=max_fill_fraction,
            **kwargs,
        )
