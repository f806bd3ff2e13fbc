"""EuroSAT-Landsat (Landsat-Bench): 10-class Landsat scene classification, no metadata."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchgeo.datasets import EuroSAT

from .base import LandsatBenchDataset, Transforms
from .metadata import missing_metadata
from .plotting import plot_rgb
from .utils import OnError, check_pixels, read_raster, resize, to_tensor


class EuroSATLS(LandsatBenchDataset):
    """EuroSAT-L from Landsat-Bench (Corley et al., 2025).

    The EuroSAT scenes re-imaged by Landsat 8/9 (about 22x22 px at 30 m). Layout under ``root``::

        eurosat-l/<Class>/<Class>_<n>.tif   8-band GeoTIFF: SR_B1..SR_B7, ST_B10
        eurosat-{train,val,test}.txt        torchgeo's EuroSAT split files (16,200/5,400/5,400)

    Sample keys: ``image`` float32 (7, P, P) raw DN (the thermal 8th band is dropped; bilinearly
    resized to P = ``patch_size``, no antialias), ``label`` int64 0-dim class index into
    :attr:`classes`, and ``lat``/``lon`` (float32) and ``time`` (float64) all NaN, so batches
    collate like BigEarthNetLS's and the model treats the metadata as missing.

    Bad input follows ``on_error`` as in :class:`BigEarthNetLS`: a split entry with no file (or an
    unknown class) fails at ``__init__``, an unreadable image or wrong band count at
    ``__getitem__``; ``"skip"`` reads everything at ``__init__`` and lists drops in :attr:`skipped`.
    """

    url = "https://hf.co/datasets/isaaccorley/eurosat-l/resolve/main/"
    #: the split files are torchgeo's EuroSAT ones, served (with known MD5s) by torchgeo
    split_url = EuroSAT.url
    filename = "eurosat-l.zip"
    directory = "eurosat-l"
    split_filenames = EuroSAT.split_filenames
    md5s: ClassVar[dict[str, str | None]] = {
        filename: None,
        **{EuroSAT.split_filenames[s]: md5 for s, md5 in EuroSAT.split_md5s.items()},
    }
    num_bands = 8
    #: class folder names in sorted order, i.e. torchgeo EuroSAT's label indices
    classes: tuple[str, ...] = (
        "AnnualCrop",
        "Forest",
        "HerbaceousVegetation",
        "Highway",
        "Industrial",
        "Pasture",
        "PermanentCrop",
        "Residential",
        "River",
        "SeaLake",
    )

    def __init__(
        self,
        root: str | Path = "data",
        split: str = "train",
        patch_size: int | None = 40,
        transforms: Transforms | None = None,
        download: bool = False,
        checksum: bool = False,
        on_error: OnError = "raise",
        max_fill_fraction: float | None = None,
    ) -> None:
        """Initialize a new EuroSATLS instance.

        Args:
            root: directory holding the split files and ``eurosat-l/``.
            split: one of "train", "val", "test".
            patch_size: output height/width in px (bilinear resize); None keeps the native size.
            transforms: applied to each sample dict.
            download: fetch and extract missing files from the Hugging Face Hub.
            checksum: verify MD5s (known for the split files, not for the archive).
            on_error: "raise" or "skip" bad samples.
            max_fill_fraction: None keeps every image; a number in [0, 1] drops, at ``__init__``,
                the images whose fraction of fill pixels (DN 0 in every band) exceeds it.

        Raises:
            ValueError: for an invalid argument.
            DatasetNotFoundError: if the data is absent and ``download`` is False.
            MissingSampleFileError: (``on_error="raise"``) a split entry has no image.
        """
        self._class2idx = {c: i for i, c in enumerate(self.classes)}
        super().__init__(
            root, split, patch_size, transforms, download, checksum, on_error, max_fill_fraction
        )

    def image_path(self, name: str) -> str:
        """Path of ``<Class>_<n>.tif``."""
        return os.path.join(self.root, self.directory, self._class_of(name), name)

    @staticmethod
    def _class_of(name: str) -> str:
        return name.rsplit("_", 1)[0]

    def _data_dirs(self) -> list[str]:
        """The extracted class directory root."""
        return [os.path.join(self.root, self.directory)]

    def _list_samples(self) -> tuple[list[str], dict[str, str]]:
        """Split entries (``.jpg`` names in torchgeo's files become ``.tif``) that have an image."""
        with open(self.split_path) as f:
            names = [os.path.splitext(line.strip())[0] + ".tif" for line in f if line.strip()]
        listings: dict[str, set[str]] = {}
        found: list[str] = []
        missing: dict[str, str] = {}
        for name in names:
            cls = self._class_of(name)
            if cls not in self._class2idx:
                missing[name] = f"{self.split_path}: {name!r} is not of a EuroSAT class"
                continue
            if cls not in listings:
                folder = os.path.join(self.root, self.directory, cls)
                listings[cls] = set(os.listdir(folder)) if os.path.isdir(folder) else set()
            if name in listings[cls]:
                found.append(name)
            else:
                missing[name] = f"{self.image_path(name)}: image missing (in {self.split_path})"
        return found, missing

    def _load(self, sample_id: str) -> dict[str, Tensor]:
        """Read, validate and assemble one sample (no transforms)."""
        path = self.image_path(sample_id)
        array = read_raster(path, self.num_bands)[:7]  # drop ST_B10 (thermal)
        check_pixels(array, path)
        image = to_tensor(array)
        if self.patch_size is not None:
            image = resize(image, self.patch_size)
        label = torch.tensor(self._class2idx[self._class_of(sample_id)], dtype=torch.int64)
        return {"image": image, "label": label, **missing_metadata()}

    def plot(
        self, sample: dict[str, Tensor], show_titles: bool = True, suptitle: str | None = None
    ) -> Figure:
        """RGB (B4, B3, B2) of a sample titled with its class (and ``prediction`` if any).

        Args:
            sample: a sample from :meth:`__getitem__`, optionally with a ``prediction`` index.
            show_titles: write the class name above the image.
            suptitle: optional figure title.

        Returns:
            the figure.
        """
        prediction = sample.get("prediction")
        return plot_rgb(
            sample["image"],
            [self.classes[int(sample["label"])]],
            None if prediction is None else [self.classes[int(prediction)]],
            show_titles,
            suptitle,
        )
