"""BigEarthNet-Landsat (Landsat-Bench): 7-band Landsat patches, CORINE multi-labels, metadata."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar, get_args

import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchgeo.datasets import BigEarthNet

from ..vocabulary import TimeSource
from .base import LandsatBenchDataset, Transforms
from .metadata import (
    authors_filename_time,
    bounds_center_lonlat,
    metadata_tensors,
    parse_acquisition_date,
)
from .plotting import plot_rgb
from .utils import (
    InvalidSampleError,
    MissingSampleFileError,
    OnError,
    center_crop,
    check_pixels,
    read_raster,
    resize,
    to_tensor,
)


class BigEarthNetLS(LandsatBenchDataset):
    """BigEarthNet-L from Landsat-Bench (Corley et al., 2025).

    Landsat 8/9 Collection 2 Level-2 patches (SR_B1..SR_B7, 30 m, 38..45 px) co-located with the
    BigEarthNet v1 Sentinel-2 patches, with their CORINE labels. Layout under ``root``::

        bigearthnet-l/images/<id>.tif                   7-band uint16 GeoTIFF
        bigearthnet-l/labels/<id>_labels_metadata.json  labels, UTM bounds, projection, date
        bigearthnet-{train,val,test}.csv                patch id in the first column

    Sample keys:

    * ``image``: float32 (7, P, P) raw DN, P = ``patch_size``. Larger patches are center-cropped;
      a dimension smaller than P (rare, 38-39 px) is bilinearly resized up to P after the crop
      (a resize rather than a reflect-pad, which would mirror edge structure into the patch).
      Fill (DN 0) is kept, even a patch that is entirely fill (Landsat-Bench has such patches;
      the authors' code trained on them); ``max_fill_fraction`` drops them on request. A
      non-finite image is a bad sample.
    * ``label``: int64 multi-hot (``num_classes``,); 43 CORINE labels mapped to 19 with
      torchgeo's :class:`~torchgeo.datasets.BigEarthNet` converter (some map to none).
    * ``lat``, ``lon``: float32 0-dim degrees, centre of the JSON's UTM bounds in WGS84
      (the GeoTIFF transform of Landsat-Bench files is not used).
    * ``time``: float64 0-dim POSIX seconds (UTC) of the JSON ``acquisition_date`` (the
      Sentinel-2 date of the original patch; the Landsat scene is within +-6 months). With
      ``time_source="authors_filename"``: the time the authors' loader parsed from the patch id,
      ``strptime(id.split("_")[2][0:10], "%Y%m%dT%H")`` as UTC, i.e. the date and the first digit
      of the hour (``T093351`` -> 0 h, ``T101031`` -> 1 h, and ``T93351``, written without the
      zero, -> 9 h): the hours their published weights saw. Feed it to an encoder with
      ``hour_encoding="utc"``, which takes the hour as given (``"authors"`` would truncate it again).

    Bad input (``on_error``): with ``"raise"`` a missing image or label file fails at
    ``__init__``, a corrupt/truncated TIFF, wrong band count, bad JSON, unparseable date or
    out-of-range position fails at ``__getitem__``; every message names the file. With
    ``"skip"`` every sample is read once at ``__init__``, bad ones are dropped and listed in
    :attr:`skipped` (id -> reason), and a warning gives the count. A split file listing no
    sample is an error naming the file.
    """

    url = "https://hf.co/datasets/isaaccorley/bigearthnet-l/resolve/main/"
    filename = "bigearthnet-l.tar.gz"
    directory = "bigearthnet-l"
    split_filenames: ClassVar[dict[str, str]] = {
        "train": "bigearthnet-train.csv",
        "val": "bigearthnet-val.csv",
        "test": "bigearthnet-test.csv",
    }
    md5s: ClassVar[dict[str, str | None]] = {
        filename: None,
        **dict.fromkeys(split_filenames.values()),
    }
    num_bands = 7
    #: BigEarthNet v1 patch names; used to tell a CSV header row from an id.
    id_pattern = re.compile(r"^S2[AB]_MSIL2A_\d{8}T\d+_\d+_\d+$")

    def __init__(
        self,
        root: str | Path = "data",
        split: str = "train",
        num_classes: int = 19,
        patch_size: int | None = 40,
        transforms: Transforms | None = None,
        download: bool = False,
        checksum: bool = False,
        on_error: OnError = "raise",
        max_fill_fraction: float | None = None,
        time_source: TimeSource = "json",
    ) -> None:
        """Initialize a new BigEarthNetLS instance.

        Args:
            root: directory holding the split CSVs and ``bigearthnet-l/``.
            split: one of "train", "val", "test".
            num_classes: 19 (BigEarthNet-19 nomenclature) or 43 (original CORINE labels).
            patch_size: output height/width in px; None keeps each patch's native size.
            transforms: applied to each sample dict.
            download: fetch and extract missing files from the Hugging Face Hub.
            checksum: verify MD5s of the split CSVs and the archive where they are known.
            on_error: "raise" or "skip" bad samples (see class docstring).
            max_fill_fraction: None keeps every patch; a number in [0, 1] drops, at ``__init__``,
                the patches whose fraction of fill pixels (DN 0 in every band, after the crop)
                exceeds it (``0.99`` drops all-fill patches), listing them in :attr:`skipped`.
            time_source: ``"json"`` (the true acquisition time) or ``"authors_filename"`` (the
                authors' parse of the patch id, to reproduce the paper's features and probes;
                with an encoder of ``hour_encoding="utc"``: see ``docs/user_guide/fidelity.rst``).

        Raises:
            ValueError: for an invalid argument.
            DatasetNotFoundError: if the data is absent and ``download`` is False.
            MissingSampleFileError: (``on_error="raise"``) an id's image or label file is absent.
        """
        if num_classes not in (19, 43):
            raise ValueError(f"num_classes must be 19 or 43, got {num_classes}")
        if time_source not in get_args(TimeSource):
            raise ValueError(
                f"time_source must be 'json' (acquisition_date of the label JSON) or "
                f"'authors_filename' (the authors' parse of the patch id), got {time_source!r}"
            )
        self.time_source = time_source
        self.num_classes = num_classes
        self.classes: list[str] = BigEarthNet.class_sets[num_classes]
        self._class2idx = {c: i for i, c in enumerate(BigEarthNet.class_sets[43])}
        self.image_dir = os.path.join(root, self.directory, "images")
        self.label_dir = os.path.join(root, self.directory, "labels")
        super().__init__(
            root, split, patch_size, transforms, download, checksum, on_error, max_fill_fraction
        )

    def image_path(self, patch_id: str) -> str:
        """Path of a patch's GeoTIFF."""
        return os.path.join(self.image_dir, f"{patch_id}.tif")

    def label_path(self, patch_id: str) -> str:
        """Path of a patch's label/metadata JSON."""
        return os.path.join(self.label_dir, f"{patch_id}_labels_metadata.json")

    def _read_split_ids(self) -> list[str]:
        """Patch ids in the first column of the split CSV, without a header row if it has one."""
        with open(self.split_path, newline="") as f:
            ids = [row[0].strip() for row in csv.reader(f) if row and row[0].strip()]
        # A header ("0" in the sample set, a column name elsewhere) is neither a known image nor
        # shaped like a patch name; a real id that merely lacks its image is kept and reported.
        if (
            ids
            and not self.id_pattern.match(ids[0])
            and not os.path.isfile(self.image_path(ids[0]))
        ):
            del ids[0]
        return ids

    def _data_dirs(self) -> list[str]:
        """The extracted image and label directories."""
        return [self.image_dir, self.label_dir]

    def _verify(self) -> None:
        """As the base class; a flat sample (``images/``, ``labels/``, ``samples.csv``) as ``root``
        is refused with how to arrange it, rather than "dataset not found"."""
        flat = [os.path.join(self.root, name) for name in ("images", "labels", "samples.csv")]
        if all(os.path.exists(p) for p in flat) and not os.path.isdir(
            os.path.join(self.root, self.directory)
        ):
            raise ValueError(
                f"{self.root} holds a flat BigEarthNet-L sample (images/, labels/, samples.csv), "
                "not the Landsat-Bench layout: arrange it first with "
                f"torchgeo_moemae.datasets.arrange_bigearthnet_sample({str(self.root)!r}, NEW_ROOT) "
                "(disjoint train/val/test splits, links instead of copies) and use NEW_ROOT"
            )
        super()._verify()

    def _list_samples(self) -> tuple[list[str], dict[str, str]]:
        """Split ids with both files, found by two directory listings instead of 2N stats."""
        images = set(os.listdir(self.image_dir))
        labels = set(os.listdir(self.label_dir))
        found: list[str] = []
        missing: dict[str, str] = {}
        for patch_id in self._read_split_ids():
            if f"{patch_id}.tif" not in images:
                missing[patch_id] = (
                    f"{self.image_path(patch_id)}: image missing (id in {self.split_path})"
                )
            elif f"{patch_id}_labels_metadata.json" not in labels:
                missing[patch_id] = f"{self.label_path(patch_id)}: label JSON missing"
            else:
                found.append(patch_id)
        return found, missing

    def _load(self, patch_id: str) -> dict[str, Tensor]:
        """Read, validate and assemble one sample (no transforms)."""
        path = self.image_path(patch_id)
        array = read_raster(path, self.num_bands)
        check_pixels(array, path)
        image = to_tensor(array)
        if self.patch_size is not None:
            image = resize(center_crop(image, self.patch_size), self.patch_size)
        label, meta = self._load_label(patch_id)
        return {"image": image, "label": self._encode(label, patch_id), **meta}

    def _load_label(self, patch_id: str) -> tuple[list[str], dict[str, Tensor]]:
        """Label names and ``lat``/``lon``/``time`` tensors from a patch's JSON."""
        path = self.label_path(patch_id)
        try:
            with open(path) as f:
                doc: dict[str, Any] = json.load(f)
        except FileNotFoundError as err:
            raise MissingSampleFileError(f"{path}: label JSON missing") from err
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InvalidSampleError(f"{path}: unreadable label JSON ({err})") from err
        if not isinstance(doc, dict):
            raise InvalidSampleError(f"{path}: label JSON is not an object")
        labels = doc.get("labels")
        if not isinstance(labels, list) or not labels:
            raise InvalidSampleError(f"{path}: 'labels' missing or empty")
        lat, lon = bounds_center_lonlat(doc, path)
        if self.time_source == "authors_filename":
            time = authors_filename_time(patch_id)
        else:
            time = parse_acquisition_date(doc.get("acquisition_date"), path)
        return labels, metadata_tensors(lat, lon, time)

    def _encode(self, labels: list[str], patch_id: str) -> Tensor:
        """CORINE label names -> int64 multi-hot (num_classes,)."""
        unknown = [name for name in labels if name not in self._class2idx]
        if unknown:
            raise InvalidSampleError(f"{self.label_path(patch_id)}: unknown labels {unknown}")
        indices = [self._class2idx[name] for name in labels]
        if self.num_classes == 19:
            # Labels with no 19-class counterpart (e.g. airports) are dropped, as in torchgeo.
            mapped = (BigEarthNet.label_converter.get(i) for i in indices)
            indices = [i for i in mapped if i is not None]
        target = torch.zeros(self.num_classes, dtype=torch.int64)
        target[indices] = 1
        return target

    def plot(
        self, sample: dict[str, Tensor], show_titles: bool = True, suptitle: str | None = None
    ) -> Figure:
        """RGB (B4, B3, B2) of a sample titled with its label names (and ``prediction`` if any).

        Args:
            sample: a sample from :meth:`__getitem__`, optionally with a multi-hot ``prediction``.
            show_titles: write the label names above the image.
            suptitle: optional figure title.

        Returns:
            the figure.
        """
        prediction = sample.get("prediction")
        return plot_rgb(
            sample["image"],
            self._names(sample["label"]),
            None if prediction is None else self._names(prediction),
            show_titles,
            suptitle,
        )

    def _names(self, multi_hot: Tensor) -> list[str]:
        """Class names of the set entries of a (num_classes,) multi-hot vector."""
        return [self.classes[i] for i in multi_hot.nonzero().flatten().tolist()]
