"""A datamodule over packs written by ``moemae pack``: whole batches per read, optionally on device."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchgeo.datamodules import NonGeoDataModule

from ..datasets.packed import PackedDataset
from ..transforms import FLIP_AXES, flip_counts, normalize_dn
from ..vocabulary import dataset_info
from .resumable import ResumableLoader, ResumableRandomState, ResumableSampler, ranks


class PackedBatchSampler(ResumableSampler[np.ndarray]):
    """Yields one index array per batch: this rank's share of a (per-epoch shuffled) split.

    It is a :class:`~torch.utils.data.DistributedSampler` for its rank slicing, padding and
    ``set_epoch`` seeding, and so that Lightning, which replaces any other sampler by its own
    per-sample distributed one under DDP, leaves it in place; it can start an epoch part-way
    (:class:`ResumableSampler`). Use it with ``DataLoader(dataset, batch_size=None, sampler=...)``.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        """Batch ``dataset``'s indices.

        Args:
            dataset: a sized dataset.
            batch_size: indices per batch.
            shuffle: a new permutation each epoch (seeded by ``seed + epoch``, see ``set_epoch``).
            drop_last: drop this rank's last incomplete batch.
            seed: permutation seed, the same on every rank.
            num_replicas: number of ranks (each gets a disjoint, equally long share; the split
                is padded by repeating indices if needed, as DistributedSampler does).
            rank: this rank.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        super().__init__(dataset, num_replicas, rank, shuffle, seed)
        self.batch_size = batch_size
        self.drop_batch = drop_last

    def _epoch(self) -> Iterator[np.ndarray]:
        """This rank's batches of the current epoch, each a (B,) int64 array."""
        indices = np.fromiter(super()._epoch(), dtype=np.int64, count=self.num_samples)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield indices[start : start + self.batch_size]

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        if self.drop_batch:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)


class _Batches(Dataset[dict[str, Tensor]]):
    """The loader's view of a pack: an index array in, one raw batch out.

    With ``on_device`` only the indices travel (the pack is gathered on the device); with
    ``flips`` the gather applies random flips (see :meth:`PackedDataset.raw_batch`).
    """

    def __init__(self, pack: PackedDataset, flips: bool, on_device: bool) -> None:
        self.pack, self.flips, self.on_device = pack, flips, on_device

    def __len__(self) -> int:
        return len(self.pack)

    def __getitem__(self, indices: np.ndarray) -> dict[str, Tensor]:
        if self.on_device:
            return {"index": torch.from_numpy(indices)}
        counts = flip_counts(len(indices)) if self.flips else None
        return self.pack.raw_batch(indices, counts)


def _to_tensor(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory; uint16 as its int16 bit pattern (which, unlike
    uint16, has indexing and flip kernels on every device)."""
    return torch.from_numpy(array.view(np.int16) if array.dtype == np.uint16 else array)


class PackedDataModule(ResumableRandomState, NonGeoDataModule):
    """LightningDataModule over a directory of packs (``root/{train,val,test}``).

    The loaders read whole batches: a :class:`PackedBatchSampler` yields index arrays and each
    batch is one slice per array of the memory-mapped pack, so no Python runs per sample. Batches
    after transfer are exactly the TIFF datamodule's: ``image`` float32 (B, 7, P, P) z-scored with
    the source dataset's statistics, ``label``, ``lat``/``lon`` float32 and ``time`` float64 (B,).

    With ``on_device`` the loaders yield only the indices; each split is copied to the batch's
    device once (uint16 DN: about 6 GB for BigEarthNet-L train) and gathered, flipped and
    normalised there. With ``augment``, train images are flipped at random on both axes.

    Under DDP each rank reads its own share of every split (ranks from the Trainer, else from
    ``torch.distributed``); the train order changes every epoch (``set_epoch``, called by
    Lightning) and is the same on every rank for a given ``seed``.
    """

    def __init__(
        self,
        root: str | Path = "data/packed",
        batch_size: int = 128,
        num_workers: int = 0,
        pin_memory: bool = False,
        augment: bool = False,
        on_device: bool = False,
        seed: int = 0,
        verify: bool = False,
    ) -> None:
        """Initialize a new PackedDataModule.

        Args:
            root: directory with one pack per split (``moemae pack --out``).
            batch_size: samples per batch (per rank).
            num_workers: DataLoader worker processes (0 is usually fastest for packs).
            pin_memory: pin host memory of batches (when CUDA is available).
            augment: random horizontal/vertical flips of train images.
            on_device: keep each split on the accelerator and gather batches there.
            seed: seed of the per-epoch train permutation.
            verify: check every array's SHA-256 when opening the packs.
        """
        super().__init__(PackedDataset, batch_size, num_workers, root=root, verify=verify)
        self.pin_memory = pin_memory
        self.augment = augment
        self.on_device = on_device
        self.seed = seed
        self._device_packs: dict[str, dict[str, Tensor]] = {}

    def setup(self, stage: str) -> None:
        """Open the packs of ``stage`` (``predict``: the test pack) and take the normalisation
        statistics of their source."""
        super().setup(stage)
        if stage == "predict":
            self.predict_dataset = PackedDataset(split="test", **self.kwargs)
        packs = [self.train_dataset, self.val_dataset, self.test_dataset, self.predict_dataset]
        pack = next((p for p in packs if isinstance(p, PackedDataset)), None)
        if pack is None:
            return
        name = pack.settings["dataset"]
        try:
            info = dataset_info(name)
        except ValueError as err:
            raise ValueError(f"{pack.path}: no normalisation statistics: {err}") from None
        self.mean, self.std = torch.tensor(info.mean), torch.tensor(info.std)

    def _split_pack(self, split: str) -> PackedDataset:
        pack = self._valid_attribute(f"{split}_dataset", "dataset")
        assert isinstance(pack, PackedDataset)
        return pack

    def _dataloader_factory(self, split: str) -> DataLoader[dict[str, Tensor]]:
        """A loader of whole batches of ``split`` for this rank."""
        pack = self._split_pack(split)
        replicas, rank = ranks(self.trainer)
        train = split == "train"
        sampler = PackedBatchSampler(pack, self.batch_size, train, train, self.seed, replicas, rank)
        # the train loader is resumable mid-epoch; the others always run whole
        loader = ResumableLoader if train else DataLoader
        return loader(
            _Batches(pack, flips=self.augment and train, on_device=self.on_device),
            batch_size=None,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def on_after_batch_transfer(
        self, batch: dict[str, Tensor], dataloader_idx: int
    ) -> dict[str, Tensor]:
        """Finish a transferred batch for the Trainer's current split (see :meth:`finish_batch`)."""
        if self.trainer is None:
            return batch
        if self.trainer.training:
            split = "train"
        elif self.trainer.testing:
            split = "test"
        elif self.trainer.predicting:
            split = "predict"
        else:
            split = "val"
        return self.finish_batch(batch, split)

    def finish_batch(self, batch: dict[str, Tensor], split: str) -> dict[str, Tensor]:
        """Gather (with ``on_device``), flip (train, ``augment``) and normalise a loader batch.

        Args:
            batch: a batch of this datamodule's ``{split}_dataloader``, on its device.
            split: the split it came from.

        Returns:
            ``image`` float32 normalised, ``label``, ``lat``, ``lon``, ``time``.
        """
        if "index" in batch:
            batch = self._gather(split, batch["index"])
        image = normalize_dn(batch["image"], self.mean, self.std)
        return {**batch, "image": image}

    def _gather(self, split: str, index: Tensor) -> dict[str, Tensor]:
        """Rows ``index`` of the split's on-device copy (made on first use), flipped for train."""
        arrays = self._device_packs.get(split)
        if arrays is None or arrays["image"].device != index.device:
            pack = self._split_pack(split)
            host = {"image": pack.image, **pack.table()}
            arrays = {k: _to_tensor(np.array(v)).to(index.device) for k, v in host.items()}
            self._device_packs[split] = arrays
        batch = {k: v.index_select(0, index) for k, v in arrays.items()}
        image = batch["image"]
        if self.augment and split == "train":
            blocks = image.split(flip_counts(len(image)))
            image = torch.cat(
                [b.flip(d) if d else b for b, d in zip(blocks, FLIP_AXES, strict=True)]
            )
        if image.dtype == torch.int16:
            image = image.view(torch.uint16)
        return {**batch, "image": image}
