"""What the Landsat-Bench datamodules share: normalisation, optional flips, pinned loaders."""

from __future__ import annotations

from typing import Any

import kornia.augmentation as K
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import NonGeoDataset


class LandsatBenchDataModule(NonGeoDataModule):
    """A :class:`~torchgeo.datamodules.NonGeoDataModule` for 7-band Landsat-Bench datasets.

    On the device, every batch is z-scored per band with the subclass's ``mean``/``std`` (DN);
    with ``augment`` the train batches are also randomly flipped. The kornia pipeline uses
    ``data_keys=None``: ``image`` is transformed, while ``label``, ``lat``, ``lon`` and ``time``
    pass through unchanged (flips do not move a patch's location or date). ``predict``
    (``torchgeo predict``) runs on the test split.
    """

    def __init__(
        self,
        dataset_class: type[NonGeoDataset],
        batch_size: int,
        num_workers: int,
        pin_memory: bool,
        augment: bool,
        **kwargs: Any,
    ) -> None:
        """Set up loaders and augmentations; ``kwargs`` go to ``dataset_class``."""
        super().__init__(dataset_class, batch_size, num_workers, **kwargs)
        self.pin_memory = pin_memory
        if augment:
            self.train_aug = K.AugmentationSequential(
                K.Normalize(mean=self.mean, std=self.std),
                K.RandomHorizontalFlip(),
                K.RandomVerticalFlip(),
                data_keys=None,
                keepdim=True,
            )

    def setup(self, stage: str) -> None:
        """As torchgeo's, plus ``predict``: the test split (its labels are not used)."""
        super().setup(stage)
        if stage == "predict":
            self.predict_dataset = self.dataset_class(  # type: ignore[call-arg]
                split="test", **self.kwargs
            )

    def _dataloader_factory(self, split: str) -> DataLoader[dict[str, Tensor]]:
        """torchgeo's loader for ``split``, with ``pin_memory`` as configured."""
        loader = super()._dataloader_factory(split)
        if not self.pin_memory:
            return loader
        # DataLoader reads pin_memory when an iterator starts, so setting it here is enough;
        # this keeps torchgeo's shuffle/drop_last/persistent_workers choices in one place.
        loader.pin_memory = torch.cuda.is_available()
        return loader
