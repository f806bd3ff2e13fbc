"""The data side of scene embedding: scenes -> windows in row strips, sharded whole across ranks."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torchgeo.datamodules import BaseDataModule

from ..bands import BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from ..datamodules.resumable import ranks
from ..transforms import normalize_dn
from ..vocabulary import DEFAULT_MAX_CLOUD_FRACTION
from .inputs import SceneSource, resolve_inputs
from .windows import SceneWindows

__all__ = ["SceneDataModule"]

# The loader yields whole batches (batch_size=None): Lightning's per-sample batch indices, which
# prediction writers may use, do not exist here, and SceneWriter does not need them.
warnings.filterwarnings("ignore", message="Couldn't infer the batch indices", category=UserWarning)


class SceneDataModule(BaseDataModule):
    """The windows of many Landsat scenes for ``Trainer.predict`` (``torchgeo predict``).

    ``setup`` resolves ``inputs`` (:func:`~torchgeo_moemae.scene.resolve_inputs`);
    ``predict_dataloader`` yields this rank's scenes (``scenes[rank::world_size]``, minus those
    in :attr:`done`) as :class:`~torchgeo_moemae.scene.SceneWindows` batches: whole scenes per
    rank and per worker, so no rank waits for another and a scene's batches arrive in order. On
    the device each batch's DN are z-scored with the BigEarthNet-L statistics (as in
    pre-training); ``lat``/``lon``/``time`` pass through.

    Args:
        inputs: product folders or ``.tar``\\ s, globs, text files of paths, STAC Item /
            ItemCollection ``.json`` files (or, from Python, ``pystac`` objects and TorchGeo
            ``RasterDataset``\\ s).
        batch_size: windows per model batch (at most).
        num_workers: data-loader worker processes (each reads whole scenes).
        stride: window step in pixels (40: adjacent 40x40 windows; smaller: overlapping).
        max_fill_fraction: windows with more fill than this are nodata (entirely-fill windows
            always are).
        max_cloud_fraction: windows whose fraction of ``QA_PIXEL`` cloud, dilated cloud, cloud
            shadow or snow exceeds this are nodata (default
            :data:`~torchgeo_moemae.vocabulary.DEFAULT_MAX_CLOUD_FRACTION`; 1: no cloud mask).
        time: override of the acquisition time, POSIX seconds UTC (NaN: unknown).
    """

    def __init__(
        self,
        inputs: str | Path | Sequence[Any],
        batch_size: int = 256,
        num_workers: int = 0,
        stride: int = 40,
        max_fill_fraction: float = 1.0,
        max_cloud_fraction: float = DEFAULT_MAX_CLOUD_FRACTION,
        time: float | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if stride < 1:
            raise ValueError(f"stride must be positive, got {stride}")
        for name, value in (
            ("max_fill_fraction", max_fill_fraction),
            ("max_cloud_fraction", max_cloud_fraction),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        super().__init__(SceneWindows, batch_size, num_workers)
        self.inputs = inputs
        self.stride = stride
        self.max_fill_fraction = max_fill_fraction
        self.max_cloud_fraction = max_cloud_fraction
        self.time = time
        self.scenes: list[SceneSource] = []
        #: the scenes (by id) not to embed: their outputs are finished (set by the writer)
        self.done: set[str] = set()

    @property
    def window_size(self) -> int:
        """The encoder's input size (40 px without a Trainer)."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        encoder = getattr(module, "encoder", None)
        return int(encoder.img_size[0]) if encoder is not None else 40

    def setup(self, stage: str) -> None:
        """Resolve the inputs into scenes."""
        self.scenes = resolve_inputs(self.inputs, time=self.time)

    def rank_scenes(self) -> list[SceneSource]:
        """The scenes this rank embeds: its whole-scene share of those not :attr:`done`."""
        world, rank = ranks(self.trainer)
        todo = [s for s in self.scenes if s.id not in self.done]
        return todo[rank::world]

    def predict_dataloader(self) -> DataLoader[dict[str, Any]]:
        """This rank's scenes as batches of windows (already batched: ``batch_size=None``)."""
        dataset = SceneWindows(
            self.rank_scenes(),
            size=self.window_size,
            stride=self.stride,
            batch_size=self.batch_size,
            max_fill_fraction=self.max_fill_fraction,
            max_cloud_fraction=self.max_cloud_fraction,
        )
        return DataLoader(
            dataset,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
        )

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Z-score the DN on the device (bit for bit as the other datamodules' ``Normalize``)."""
        mean, std = torch.tensor(BIGEARTHNET_LS_MEAN), torch.tensor(BIGEARTHNET_LS_STD)
        return {**batch, "image": normalize_dn(batch["image"], mean, std)}
