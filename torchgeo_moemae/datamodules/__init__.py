"""Lightning datamodules for the Landsat-Bench datasets."""

from .bigearthnet_ls import BigEarthNetLSDataModule
from .eurosat_ls import EuroSATLSDataModule

__all__ = ["BigEarthNetLSDataModule", "EuroSATLSDataModule"]
