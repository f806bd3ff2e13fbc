"""BigEarthNet-L datamodule."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from ..bands import BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from ..datasets.bigearthnet_ls import BigEarthNetLS
from ..datasets.utils import OnError
from ..vocabulary import TimeSource
from .base import LandsatBenchDataModule


class BigEarthNetLSDataModule(LandsatBenchDataModule):
    """LightningDataModule for :class:`~torchgeo_moemae.datasets.BigEarthNetLS`.

    Batches: ``image`` (B, 7, P, P) z-scored with the BigEarthNet-L statistics (after transfer to
    the device), ``label`` (B, num_classes) int64 multi-hot, ``lat``/``lon`` (B,) float32
    degrees, ``time`` (B,) float64 POSIX seconds. P = ``patch_size`` (center crop).

    ``time_source="auto"`` (the default) gives the weights the hours they were trained with
    (:func:`~torchgeo_moemae.vocabulary.sample_time`): under a Trainer, the task's
    ``sample_time_source`` (the authors' weights: their parse of the patch id; weights trained
    here, and tasks that do not say: the label JSON's time); outside a Trainer, the JSON's time.
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
        time_source: TimeSource | Literal["auto"] = "auto",
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
            time_source: ``"json"``, ``"authors_filename"`` (see :class:`BigEarthNetLS`) or
                ``"auto"``: what the task's weights need (see above).
            **kwargs: more :class:`BigEarthNetLS` arguments.
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
        self.time_source = time_source
        # what a dataset built from ``kwargs`` outside a Trainer reads (see ``setup``)
        self.kwargs["time_source"] = "json" if time_source == "auto" else time_source

    def setup(self, stage: str) -> None:
        """Resolve ``time_source="auto"`` (see the class docstring), then build the splits."""
        source = self.time_source
        if source == "auto":
            trainer = getattr(self, "trainer", None)
            module = trainer.lightning_module if trainer is not None else None
            source = getattr(module, "sample_time_source", None) or "json"
        self.kwargs["time_source"] = source
        super().setup(stage)
