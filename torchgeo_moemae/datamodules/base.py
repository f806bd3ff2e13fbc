"""What the Landsat-Bench datamodules share: normalisation, optional flips, pinned loaders."""

from __future__ import annotations

import os
from typing import Any

import kornia.augmentation as K
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import NonGeoDataset

from .resumable import ResumableLoader, ResumableRandomState, ResumableSampler, ranks


class LandsatBenchDataModule(ResumableRandomState, NonGeoDataModule):
    """A :class:`~torchgeo.datamodules.NonGeoDataModule` for 7-band Landsat-Bench datasets.

    On the device, every batch is z-scored per band with the subclass's ``mean``/``std`` (DN);
    with ``augment`` the train batches are also randomly flipped. The kornia pipeline uses
    ``data_keys=None``: ``image`` is transformed, while ``label``, ``lat``, ``lon`` and ``time``
    pass through unchanged (flips do not move a patch's location or date). ``predict``
    (``torchgeo predict``) runs on the test split. Training resumes where a checkpoint stopped
    (:class:`~torchgeo_moemae.datamodules.ResumableLoader`,
    :class:`~torchgeo_moemae.datamodules.ResumableRandomState`).
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
        """torchgeo's loader for ``split``, with ``pin_memory`` as configured; for ``train``, a
        :class:`ResumableLoader` with the same settings (shuffled, incomplete batch dropped)."""
        loader = self._train_loader() if split == "train" else super()._dataloader_factory(split)
        if not self.pin_memory:
            return loader
        # DataLoader reads pin_memory when an iterator starts, so setting it here is enough;
        # this keeps torchgeo's shuffle/drop_last/persistent_workers choices in one place.
        loader.pin_memory = torch.cuda.is_available()
        return loader

    def _train_loader(self) -> ResumableLoader[dict[str, Tensor]]:
        """Shuffled batches of the train split that Lightning can resume mid-epoch.

        The order is seeded like Lightning's own distributed sampler (``seed_everything``'s seed,
        else 0) plus the epoch, and this rank's share is taken under DDP.
        """
        dataset = self._valid_attribute("train_dataset", "dataset")
        replicas, rank = ranks(self.trainer)
        seed = int(os.getenv("PL_GLOBAL_SEED", 0))
        sampler: ResumableSampler[int] = ResumableSampler(dataset, replicas, rank, True, seed)
        return ResumableLoader(
            dataset,
            sampler=sampler,  # by name: Lightning may rebuild the loader with another sampler
            batch_size=self._valid_attribute("train_batch_size", "batch_size"),
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            drop_last=True,
            persistent_workers=self.num_workers > 0,
        )
