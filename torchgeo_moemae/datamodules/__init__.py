"""Lightning datamodules for the Landsat-Bench datasets and for packs of them."""

from .bigearthnet_ls import BigEarthNetLSDataModule
from .eurosat_ls import EuroSATLSDataModule
from .packed import PackedBatchSampler, PackedDataModule
from .resumable import ResumableLoader, ResumableRandomState, ResumableSampler

__all__ = [
    "BigEarthNetLSDataModule",
    "EuroSATLSDataModule",
    "PackedBatchSampler",
    "PackedDataModule",
    "ResumableLoader",
    "ResumableRandomState",
    "ResumableSampler",
]
