"""The names the whole package shares: pools, embedding folders, export files, datasets, weights.

A leaf module (the standard library and :mod:`~torchgeo_moemae.bands` only): the command line checks
its arguments against it before torch is imported, and the library builds on the same definitions.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

from .bands import BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD, EUROSAT_LS_MEAN, EUROSAT_LS_STD

__all__ = [
    "DATASETS",
    "DEFAULT_MAX_CLOUD_FRACTION",
    "DEFAULT_POOL",
    "EXPORT_CONFIG_FILENAME",
    "EXPORT_FILES",
    "EXPORT_WEIGHTS_FILENAME",
    "MAE_FILENAME",
    "MAP_POOLS",
    "PAPER_POOLS",
    "POOLS",
    "POOL_LABELS",
    "PRECISIONS",
    "TIME_SOURCES",
    "WEIGHTS_SUFFIXES",
    "DatasetInfo",
    "HourEncoding",
    "Pool",
    "TimeSource",
    "WeightsKind",
    "dataset_info",
    "embedding_folder",
    "sample_time",
    "weights_kind",
]

# --------------------------------------------------------------------------- pools
#: How a frozen encoder's tokens become one feature vector (see
#: :class:`~torchgeo_moemae.probe.Featurizer`): the CLS token, the mean of all tokens, all tokens.
Pool = Literal["cls", "avg", "all"]
POOLS: Final[tuple[Pool, ...]] = ("cls", "avg", "all")
#: The pool every command and task uses unless told otherwise.
DEFAULT_POOL: Final[Pool] = "cls"
#: The pools with one value per embedding dimension: what an embedding map's bands can hold.
MAP_POOLS: Final[tuple[Pool, ...]] = ("cls", "avg")
#: The pools the paper reports, in its tables' order.
PAPER_POOLS: Final[tuple[Pool, ...]] = ("cls", "all", "avg")
#: Each pool as the paper's tables name it.
POOL_LABELS: Final[dict[str, str]] = {
    "cls": "CLS token",
    "all": "All tokens",
    "avg": "All tokens (avg.)",
}


#: Where a scene embedding runs in bf16: ``"auto"`` (autocast on CUDA, fp32 elsewhere),
#: ``"bf16"`` (autocast on any device) or ``"32"`` (fp32).
PRECISIONS: Final = ("auto", "bf16", "32")
#: Default ``max_cloud_fraction`` of a scene map: a window with more than 1% (16 of 1,600) pixels
#: of cloud, dilated cloud, cloud shadow or snow in ``QA_PIXEL`` is nodata; isolated false
#: detections over bright ground (beaches, roofs) are tolerated, real cloud is not.
DEFAULT_MAX_CLOUD_FRACTION: Final = 0.01


def embedding_folder(split: str, pool: str) -> str:
    """The folder of one (split, pool) of embeddings inside an embedding directory."""
    return f"{split}_{pool}"


# --------------------------------------------------------------------------- export files
#: Encoder weights of a folder written by ``moemae export`` (timm's Hub layout).
EXPORT_WEIGHTS_FILENAME: Final = "model.safetensors"
#: timm's Hub config of an export folder (``architecture``, ``pretrained_cfg``, ``model_args``).
EXPORT_CONFIG_FILENAME: Final = "config.json"
#: Full-MAE weights (encoder and decoder) of an export folder; timm ignores the file.
MAE_FILENAME: Final = "mae.safetensors"
#: Every file an export writes.
EXPORT_FILES: Final = (EXPORT_WEIGHTS_FILENAME, EXPORT_CONFIG_FILENAME, MAE_FILENAME)


# --------------------------------------------------------------------------- datasets
class DatasetInfo(NamedTuple):
    """A Landsat-Bench dataset as the commands name it."""

    #: the class path of its dataset
    dataset: str
    #: the class path of its datamodule
    datamodule: str
    #: the name the paper's tables use
    title: str
    #: the metrics the paper reports for it, in its tables' order
    metrics: tuple[str, ...]
    #: per-band normalisation statistics of its images, in DN
    mean: tuple[float, ...]
    std: tuple[float, ...]
    #: whether its samples carry where and when (else ``lat``/``lon``/``time`` are NaN)
    metadata: bool

    @property
    def class_name(self) -> str:
        """The dataset's class name (what a pack records as its source)."""
        return self.dataset.rsplit(".", 1)[1]

    def dataset_class(self) -> Any:
        """The dataset class (imports torch)."""
        return _import(self.dataset)

    def datamodule_class(self) -> Any:
        """The datamodule class (imports torch)."""
        return _import(self.datamodule)


def _import(path: str) -> Any:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


#: ``--dataset`` name -> the dataset.
DATASETS: Final[dict[str, DatasetInfo]] = {
    "bigearthnet_ls": DatasetInfo(
        "torchgeo_moemae.datasets.BigEarthNetLS",
        "torchgeo_moemae.datamodules.BigEarthNetLSDataModule",
        "BigEarthNet-L",
        ("precision_micro", "recall_micro", "f1_micro", "f1_macro", "map_micro", "map_macro"),
        BIGEARTHNET_LS_MEAN,
        BIGEARTHNET_LS_STD,
        True,
    ),
    "eurosat_ls": DatasetInfo(
        "torchgeo_moemae.datasets.EuroSATLS",
        "torchgeo_moemae.datamodules.EuroSATLSDataModule",
        "EuroSAT-L",
        ("overall_accuracy", "precision_macro", "recall_macro", "f1_macro"),
        EUROSAT_LS_MEAN,
        EUROSAT_LS_STD,
        False,
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """The dataset of a ``--dataset`` name or a dataset class name (``"BigEarthNetLS"``).

    Raises:
        ValueError: naming the known datasets.
    """
    for key, info in DATASETS.items():
        if name in (key, info.class_name):
            return info
    raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")


# --------------------------------------------------------------------------- sample time
#: How the encoder's hour token reads ``time``: ``"utc"``, the UTC hour as given; ``"authors"``,
#: the first digit of the zero-padded two-digit UTC hour, as the authors' loader read it (the rule
#: their published weights were trained with; see ``docs/user_guide/fidelity.rst``).
HourEncoding = Literal["utc", "authors"]
#: Where a Landsat-Bench sample's ``time`` comes from: ``"json"``, the acquisition time of its
#: label JSON; ``"authors_filename"``, what the authors' loader parsed from the patch id (the date
#: and the first digit of the hour as written, so ``T93351`` keeps 9 h).
TimeSource = Literal["json", "authors_filename"]
TIME_SOURCES: Final[tuple[TimeSource, ...]] = ("json", "authors_filename")


def sample_time(
    weights_hour_encoding: str, time_source: str | None = None
) -> tuple[TimeSource, HourEncoding]:
    """The time source of Landsat-Bench samples and the encoder's hour rule that give weights the
    hours they were trained with.

    The authors' weights (``"authors"``) saw what their loader parsed from each patch id, taken
    as given: ``("authors_filename", "utc")`` reproduces their pipeline exactly, also for the ids
    written without the hour's leading zero. Weights trained here (``"utc"``) saw the true time:
    ``("json", "utc")``. A ``time_source`` given overrides the first; the hour rule follows so
    that the authors' rule is applied once (by the data, or else by the encoder).

    Raises:
        ValueError: for an unknown time source or hour rule.
    """
    if weights_hour_encoding not in ("utc", "authors"):
        raise ValueError(f"hour_encoding must be 'utc' or 'authors', got {weights_hour_encoding!r}")
    if time_source is None:
        time_source = "authors_filename" if weights_hour_encoding == "authors" else "json"
    if time_source not in TIME_SOURCES:
        raise ValueError(f"time_source must be one of {TIME_SOURCES}, got {time_source!r}")
    if time_source == "authors_filename":
        return "authors_filename", "utc"
    return "json", "authors" if weights_hour_encoding == "authors" else "utc"


# --------------------------------------------------------------------------- weights
#: File name endings that make a weights string a path, existing or not.
WEIGHTS_SUFFIXES: Final = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")

#: ``"path"``: an export folder or a weights file; ``"entry"``: a weights entry of this package
#: (``MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS``); ``"torchgeo"``: a TorchGeo weights
#: entry (``ResNet18_Weights.LANDSAT_OLI_SR_MOCO``).
WeightsKind = Literal["path", "entry", "torchgeo"]


def weights_kind(weights: str | os.PathLike[str]) -> WeightsKind:
    """What a weights string names (without reading anything).

    An existing path, a name with a weights-file ending (``.pth``, ``.safetensors`` ...) or with a
    folder in it is a path; ``<Enum>_Weights.<MEMBER>`` is a weights entry: this package's when the
    enum is one of its ``MoEMAE*_Weights``, else TorchGeo's.

    Raises:
        ValueError: for a string that is neither (naming what is expected).
    """
    text = os.fspath(weights)
    path = Path(text)
    if path.exists() or path.suffix in WEIGHTS_SUFFIXES or len(path.parts) > 1:
        return "path"
    enum, dot, member = text.partition(".")
    if dot and enum.endswith("_Weights") and member.isidentifier():
        return "entry" if enum.startswith("MoEMAE") else "torchgeo"
    raise ValueError(
        f"weights {text!r}: neither an existing file or folder nor a weights name; expected an "
        "export folder, a .safetensors/.pth file, a weights name of this package (e.g. "
        "MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS) or of TorchGeo (e.g. "
        "ResNet18_Weights.LANDSAT_OLI_SR_MOCO)"
    )
