"""Landsat-Bench datasets (BigEarthNet-L, EuroSAT-L) and a synthetic BigEarthNet-L generator."""

from .bigearthnet_ls import BigEarthNetLS
from .eurosat_ls import EuroSATLS
from .synthetic import make_synthetic_bigearthnet_ls
from .utils import InvalidSampleError, MissingSampleFileError

__all__ = [
    "BigEarthNetLS",
    "EuroSATLS",
    "InvalidSampleError",
    "MissingSampleFileError",
    "make_synthetic_bigearthnet_ls",
]
