"""EuroSAT-L datamodule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..bands import EUROSAT_LS_MEAN, EUROSAT_LS_STD
from ..datasets.eurosat_ls import EuroSATLS
from ..datasets.utils import OnError
from .base import LandsatBenchDataModule


class EuroSATLSDataModule(LandsatBenchDataModule):
    """LightningDataModule for :class:`~torchgeo_moemae.datasets.EuroSATLS`.

    Batches: ``image`` (B, 7, P, P) z-scored with the EuroSAT-L statistics (after transfer to the
    device; the ~22 px scenes are bilinearly resized to P = ``patch_size``), ``label`` (B,) int64
    class indices, and ``lat``/``lon``/``time`` (B,) all NaN (no metadata).
    """

    mean = torch.tensor(EUROSAT_LS_MEAN)
    std = torch.tensor(EUROSAT_LS_STD)

    def __init__(
        self,
        root: str | Path = "data",
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        patch_size: int | None = 40,
        augment: bool = False,
        download: bool = False,
        checksum: bool = False,
        on_error: OnError = "raise",
        max_fill_fraction: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new EuroSATLSDataModule.

        Args:
            root: dataset root (split files and ``eurosat-l/``).
            batch_size: samples per batch.
            num_workers: DataLoader worker processes.
            pin_memory: pin host memory of batches (when CUDA is available).
            patch_size: image height/width in px (bilinear resize); None keeps the native size.
            augment: random horizontal/vertical flips of train batches.
            download: download missing files from the Hugging Face Hub.
            checksum: verify MD5s where known.
            on_error: "raise" or "skip" bad samples.
            max_fill_fraction: drop images with more fill (DN 0) pixels than this fraction
                (None keeps all); see :class:`EuroSATLS`.
            **kwargs: more :class:`EuroSATLS` arguments.
        """
        super().__init__(
            EuroSATLS,
            batch_size,
            num_workers,
            pin_memory,
            augment,
            root=root,
            patch_size=patch_size,
            download=download,
            checksum=checksum,
            on_error=on_error,
            max_fill_fraction=max_fill_fraction,
            **kwargs,
        )
