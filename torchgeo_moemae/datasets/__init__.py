"""Landsat-Bench datasets (BigEarthNet-L, EuroSAT-L) and a synthetic BigEarthNet-L generator."""

from .bigearthnet_ls import BigEarthNetLS
from .eurosat_ls import EuroSATLS
from .layout import arrange_bigearthnet_sample
from .packed import PackedDataset, PackError, pack_dataset
from .synthetic import make_synthetic_bigearthnet_ls
from .utils import InvalidSampleError, MissingSampleFileError

__all__ = [
    "BigEarthNetLS",
    "EuroSATLS",
    "InvalidSampleError",
    "MissingSampleFileError",
    "PackError",
    "PackedDataset",
    "arrange_bigearthnet_sample",
    "make_synthetic_bigearthnet_ls",
    "pack_dataset",
]
