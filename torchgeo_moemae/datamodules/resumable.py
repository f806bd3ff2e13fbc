"""Training that resumes where it stopped: the loader's position and torch's random state.

Lightning's checkpoints record the train loader's position (:class:`ResumableLoader`) and, through
the datamodule (:class:`ResumableRandomState`), torch's random state, so that a resumed run draws
the batches, masks, noise and flips an uninterrupted one would.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

T = TypeVar("T")
B = TypeVar("B")


def ranks(trainer: Trainer | None) -> tuple[int, int]:
    """``(num_replicas, rank)``: the Trainer's, else ``torch.distributed``'s, else ``(1, 0)``."""
    if trainer is not None:
        return trainer.world_size, trainer.global_rank
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class ResumableSampler(DistributedSampler[T]):
    """A :class:`~torch.utils.data.DistributedSampler` whose next epoch can start part-way.

    Being a DistributedSampler, Lightning leaves it in place under DDP (it would replace any
    other sampler); its order depends only on ``seed``, ``epoch`` and the rank, so an epoch can
    be replayed from any position. Subclasses change what an epoch yields in :meth:`_epoch`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As :class:`~torch.utils.data.DistributedSampler`."""
        super().__init__(*args, **kwargs)
        self._skip = 0
        #: epochs :meth:`set_epoch` is ahead of this sampler's (see :class:`ResumableLoader`)
        self.epoch_offset = 0

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch - epoch_offset``'s order."""
        super().set_epoch(epoch - self.epoch_offset)

    def skip(self, items: int) -> None:
        """Leave out the first ``items`` items of the next epoch's iteration (only that one)."""
        self._skip = items

    def __iter__(self) -> Iterator[Any]:
        """The current epoch's items, after any :meth:`skip`."""
        start, self._skip = self._skip, 0
        return itertools.islice(self._epoch(), start, None)

    def _epoch(self) -> Iterator[Any]:
        """Every item of the current epoch on this rank."""
        return super().__iter__()


class ResumableRandomState:
    """Checkpoint hooks of a LightningDataModule: torch's random state (CPU and CUDA).

    The model's masking and noise and the datamodules' flips draw from it. Lightning saves
    :meth:`state_dict` in every checkpoint and calls :meth:`load_state_dict` while restoring one,
    before training starts (its sanity check runs on a copy of the state), so a resumed run draws
    what an uninterrupted one would. Under DDP rank 0's state is saved, restored on every rank.

    The train loader cannot carry this state: Lightning restores a loader only from a checkpoint
    written mid-epoch, not from one written at an epoch's end.
    """

    def state_dict(self) -> dict[str, Any]:
        """torch's random state now: ``{"rng": {"cpu": ..., "cuda": [...]}}``."""
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
        return {"rng": {"cpu": torch.get_rng_state(), "cuda": cuda}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Set torch's random state to a :meth:`state_dict`'s."""
        torch.set_rng_state(state_dict["rng"]["cpu"])
        cuda = state_dict["rng"]["cuda"]
        for device, state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)


class ResumableLoader(DataLoader[B]):
    """A training DataLoader over a :class:`ResumableSampler` that Lightning can resume mid-epoch.

    Lightning's fit loop saves :meth:`state_dict` in every checkpoint and, when training resumes
    from one written mid-epoch, calls :meth:`load_state_dict` before the first batch; the resumed
    run then gets the remaining batches of the interrupted epoch, in the same order (the random
    state is the datamodule's, see :class:`ResumableRandomState`).

    A run stopped by ``max_steps`` ends its epoch in Lightning's count, though not in the data:
    the resumed run first finishes that epoch's batches, and from then on the sampler's epoch is
    one behind Lightning's (``epoch_offset``), so that every epoch's order is the one an
    uninterrupted run uses.

    Worker seeds come from ``seed + epoch`` rather than from torch's global generator, which
    starting an epoch would otherwise advance. Flips drawn inside workers (``num_workers > 0``
    with a packed datamodule's ``augment`` off the device) restart their stream on resume.
    """

    def __init__(self, dataset: Dataset[Any], sampler: Sampler[Any], **kwargs: Any) -> None:
        """``DataLoader(dataset, sampler=sampler, **kwargs)``.

        Lightning may rebuild the loader with a sampler of its own (``overfit_batches``): with
        a sampler other than a :class:`ResumableSampler` it is a plain DataLoader.
        """
        kwargs.setdefault("generator", torch.Generator())
        super().__init__(dataset, sampler=sampler, **kwargs)
        #: (epoch, batches) to continue from at the next iteration, set by load_state_dict
        self._resume: tuple[int, int] | None = None
        self._consumed = 0

    def __iter__(self) -> Iterator[B]:  # type: ignore[override]
        """The current epoch's batches (the rest of them after :meth:`load_state_dict`)."""
        sampler = self.sampler
        resume, self._resume = self._resume, None
        self._consumed = 0
        if not isinstance(sampler, ResumableSampler):
            yield from super().__iter__()
            return
        if resume is not None and resume[1] < len(self):
            # the interrupted epoch is unfinished: finish it, whatever Lightning's epoch now is
            epoch, self._consumed = resume
            sampler.epoch_offset += sampler.epoch - epoch
            sampler.epoch = epoch
        # each sampler item is a batch (batch_size=None) or a sample
        sampler.skip(self._consumed * (self.batch_size or 1))
        assert self.generator is not None
        self.generator.manual_seed(sampler.seed + sampler.epoch)
        for batch in super().__iter__():
            self._consumed += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Epoch, permutation seed and batches handed out this epoch."""
        sampler = self.sampler
        if not isinstance(sampler, ResumableSampler):
            return {}
        return {
            "epoch": sampler.epoch,
            "epoch_offset": sampler.epoch_offset,
            "seed": sampler.seed,
            "batches": self._consumed,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`: the next iteration skips the batches it counts."""
        sampler = self.sampler
        if not isinstance(sampler, ResumableSampler) or not state_dict:
            return
        sampler.seed = state_dict["seed"]
        sampler.epoch = state_dict["epoch"]
        sampler.epoch_offset = state_dict["epoch_offset"]
        self._resume = (state_dict["epoch"], state_dict["batches"])
