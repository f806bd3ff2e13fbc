"""Packed Landsat-Bench splits: one memory-mappable image array plus a metadata table on disk.

A pack is a directory of NumPy ``.npy`` files and a JSON manifest::

    manifest.json   source, dataset class, split, settings, counts, skipped samples, checksums
    image.npy       (N, 7, P, P) uint16 DN (float32 if some sample is not integral, see below)
    label.npy       (N, num_classes) int64 multi-hot, or (N,) int64 class index
    lat.npy         (N,) float32 degrees      lon.npy  (N,) float32 degrees
    time.npy        (N,) float64 POSIX seconds
    id.npy          (N,) unicode sample ids, in the dataset's order

``.npy`` is NumPy's own, versioned format: a short header and the raw C-ordered array, so
``np.load(mmap_mode="r")`` maps it without reading it, any NumPy reads it back, and it needs no
new dependency (Parquet or Zarr would add pyarrow or zarr for a single dense array).

The image array holds exactly the dataset's samples after its center crop / resize to
``patch_size``. Those are integral DN unless a patch had to be resized up (BigEarthNet-L's rare
38-39 px patches, every EuroSAT-L scene): the pack is then stored as float32, so that packed and
TIFF samples stay identical bit for bit; the manifest says which and why.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor
from torchgeo.datasets import NonGeoDataset
from tqdm.auto import tqdm

from .. import __version__
from ..outputs import OVERWRITE_HINT, atomic_path, check_output
from ..transforms import FLIP_AXES
from ..utils import file_sha256
from ..vocabulary import dataset_info
from .base import LandsatBenchDataset

logger = logging.getLogger(__name__)

#: version of the on-disk layout; bumped when it changes incompatibly
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: array name -> file of a pack
ARRAYS = ("image", "label", "lat", "lon", "time", "id")
#: dataset attributes that decide a pack's content (those a dataset has are recorded)
SETTINGS = ("patch_size", "num_classes", "on_error", "max_fill_fraction", "time_source")
UINT16_MAX = np.iinfo(np.uint16).max


class PackError(ValueError):
    """A pack on disk is unusable; the message names the file and what was expected."""


def _settings(dataset: LandsatBenchDataset) -> dict[str, Any]:
    """What identifies a pack's content: source, class, split and the content-relevant settings."""
    settings: dict[str, Any] = {
        "dataset": type(dataset).__name__,
        "source": str(Path(dataset.root).resolve()),
        "split": dataset.split,
    }
    for key in SETTINGS:
        if hasattr(dataset, key):
            settings[key] = getattr(dataset, key)
    return settings


def _integral(image: Tensor) -> bool:
    """Whether float DN are whole numbers in the uint16 range (so uint16 stores them exactly)."""
    return bool((image == image.round()).all() and image.min() >= 0 and image.max() <= UINT16_MAX)


def _widen(images: np.memmap, path: Path, rows: int) -> np.memmap:
    """A float32 copy of a uint16 image file (its first ``rows`` written), replacing the file.

    Copied in chunks, so that RAM use stays small whatever the number of rows.
    """
    wide_path = path.with_suffix(".float32.npy")
    wide = np.lib.format.open_memmap(wide_path, mode="w+", dtype=np.float32, shape=images.shape)
    for start in range(0, rows, 4096):
        stop = min(start + 4096, rows)
        wide[start:stop] = images[start:stop]
    os.replace(wide_path, path)
    return wide


def _write_images(dataset: LandsatBenchDataset, path: Path, progress: bool) -> dict[str, Any]:
    """Write every sample's image to ``path`` (uint16, switching to float32 if needed).

    Returns:
        the table columns (label, lat, lon, time) and the reason for a float32 pack, if any.
    """
    first = dataset[0]
    shape = (len(dataset), *first["image"].shape)
    images: np.memmap = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=shape)
    columns: dict[str, list[Tensor]] = {k: [] for k in ("label", "lat", "lon", "time")}
    resized = 0
    bar = tqdm(
        range(len(dataset)), desc=f"pack {dataset.split}", unit="patch", disable=not progress
    )
    for i in bar:
        sample = first if i == 0 else dataset[i]
        image = sample["image"]
        if tuple(image.shape) != shape[1:]:
            raise PackError(
                f"{dataset.ids[i]}: image shape {tuple(image.shape)} differs from the first "
                f"sample's {shape[1:]}; pack with a patch_size"
            )
        exact = _integral(image)
        if images.dtype == np.uint16 and not exact:
            # Keep the samples exact: go on in float32.
            images = _widen(images, path, i)
        resized += not exact
        images[i] = image.numpy()
        for key, column in columns.items():
            column.append(sample[key])
    images.flush()
    del images
    table = {k: torch.stack(v).numpy() for k, v in columns.items()}
    reason = f"{resized} sample(s) resized to patch_size hold non-integral DN" if resized else None
    return {"table": table, "float32_reason": reason}


def pack_dataset(
    dataset: LandsatBenchDataset | str,
    out_dir: str | Path,
    *,
    split: str = "train",
    root: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = logger.info,
    **kwargs: Any,
) -> Path:
    """Pack one split of a Landsat-Bench dataset into ``out_dir``.

    Args:
        dataset: a dataset instance (without ``transforms``), or a name of
            :data:`~torchgeo_moemae.vocabulary.DATASETS` that is instantiated as ``cls(root, split=split, **kwargs)``.
        out_dir: the pack directory to write (created; its parent must be writable).
        split: the split to pack (only with a dataset name).
        root: the dataset root (required with a dataset name).
        overwrite: replace an existing pack of other content.
        progress: show a progress bar.
        log: told what happened, in one line: the pack was written, rewritten (an earlier pack
            replaced) or reused.
        **kwargs: more dataset arguments (e.g. ``patch_size``, ``on_error``).

    Returns:
        ``out_dir`` as a Path. An existing pack with the same source, split and settings is
        reused as it is (not re-read).

    Raises:
        ValueError: for an unknown dataset name, a missing ``root``, or a dataset with transforms.
        FileExistsError: if ``out_dir`` holds a different pack (or other files) and not
            ``overwrite``.
    """
    out = Path(out_dir)
    # the folder/file and permission checks (and removal of an interrupted run's leftovers) before
    # the dataset is read; whether an existing pack is reused, kept or replaced is decided below
    check_output(out, folder=True, overwrite=True, what="pack folder")
    if isinstance(dataset, str):
        info = dataset_info(dataset)
        if root is None:
            raise ValueError("root is required when dataset is given by name")
        dataset = cast(LandsatBenchDataset, info.dataset_class()(root, split=split, **kwargs))
    if dataset.transforms is not None:
        raise ValueError("pack a dataset without transforms: a pack stores the samples as read")
    if len(dataset) == 0:
        raise ValueError(f"{type(dataset).__name__} split {dataset.split!r} has no samples")
    settings = _settings(dataset)
    earlier = (out / MANIFEST).is_file()
    if out.exists() and not overwrite:
        record = json.loads((out / MANIFEST).read_text()) if earlier else {}
        if record.get("settings") == settings:
            log(
                f"{out}: reused, a pack of the same source and settings ({record['count']} samples)"
            )
            return out
        raise FileExistsError(f"{out}: exists and is not a pack of {settings}; {OVERWRITE_HINT}")

    # Written under a partial name next to the target and renamed at the end, so an interrupted
    # run leaves no half pack.
    with atomic_path(out, folder=True) as tmp:
        written = _write_images(dataset, tmp / "image.npy", progress)
        table = written["table"]
        np.save(tmp / "id.npy", np.asarray(dataset.ids, dtype=str))
        for key, array in table.items():
            np.save(tmp / f"{key}.npy", array)
        arrays = {}
        for key in ARRAYS:
            path = tmp / f"{key}.npy"
            array = np.load(path, mmap_mode="r")
            arrays[key] = {
                "file": path.name,
                "shape": list(array.shape),
                "dtype": array.dtype.str,
                "bytes": path.stat().st_size,
                "sha256": file_sha256(path),
            }
        manifest = {
            "format": "torchgeo-moemae-pack",
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "settings": settings,
            "count": len(dataset),
            "skipped": dict(dataset.skipped),
            "image_dtype_reason": written["float32_reason"] or "every sample is integral DN",
            "arrays": arrays,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    done = "rewritten (the earlier pack replaced)" if earlier else "written"
    log(f"{out}: {done}, {len(dataset)} samples")
    return out


class PackedDataset(NonGeoDataset):
    """A pack written by :func:`pack_dataset`, memory-mapped.

    ``dataset[i]`` is the same sample as the source dataset's ``[i]`` (``image`` float32 (7, P, P)
    DN, ``label``, 0-dim ``lat``/``lon`` float32 and ``time`` float64), bit for bit.
    ``dataset[indices]`` (a sequence, array or tensor of indices) is the collated batch of those
    samples, read with one slice per array. :meth:`raw_batch` is the loaders' fast path.
    """

    def __init__(self, root: str | Path, split: str | None = None, verify: bool = False) -> None:
        """Open and check a pack.

        Args:
            root: the pack directory, or (with ``split``) the directory holding one per split.
            split: sub-directory of ``root`` to open.
            verify: also compare every array's SHA-256 with the manifest (reads everything).

        Raises:
            FileNotFoundError: if the manifest or an array file is missing.
            PackError: if the manifest is unreadable or of another format, or an array file is
                truncated or of another shape, dtype, length or checksum than it records.
        """
        self.path = Path(root) / split if split is not None else Path(root)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{manifest_path}: no pack manifest (run `moemae pack`)")
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise PackError(f"{manifest_path}: unreadable manifest ({err})") from err
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise PackError(
                f"{manifest_path}: format_version {self.manifest.get('format_version')!r}, "
                f"expected {FORMAT_VERSION}"
            )
        count = self.manifest["count"]
        self._arrays = {key: self._open(key, count, verify) for key in ARRAYS}
        #: sample ids in pack order
        self.ids: list[str] = self._arrays["id"].tolist()
        #: id -> reason of every sample the source dataset dropped
        self.skipped: dict[str, str] = self.manifest["skipped"]
        #: the source dataset's class name, split and settings
        self.settings: dict[str, Any] = self.manifest["settings"]

    def _open(self, key: str, count: int, verify: bool) -> np.ndarray:
        """Memory-map one array, checked against the manifest."""
        entry = self.manifest["arrays"][key]
        path = self.path / entry["file"]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: array file missing from the pack")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise PackError(f"{path}: {size} bytes, the manifest expects {entry['bytes']}")
        try:
            array = np.load(path, mmap_mode="r")
        except ValueError as err:
            raise PackError(f"{path}: not a readable .npy array ({err})") from err
        found = (list(array.shape), array.dtype.str)
        if found != (entry["shape"], entry["dtype"]) or array.shape[0] != count:
            raise PackError(
                f"{path}: shape {found[0]} dtype {found[1]}, the manifest expects "
                f"{entry['shape']} {entry['dtype']} with {count} rows"
            )
        if verify and file_sha256(path) != entry["sha256"]:
            raise PackError(f"{path}: SHA-256 differs from the manifest's (corrupt file)")
        # A plain ndarray view of the map: np.memmap's Python-level __getitem__ costs more than
        # the copy itself for a batch-sized gather.
        return np.asarray(array)

    @property
    def image(self) -> np.ndarray:
        """The (N, 7, P, P) image array (memory-mapped uint16 or float32 DN)."""
        return self._arrays["image"]

    def table(self) -> dict[str, np.ndarray]:
        """The memory-mapped per-sample columns: ``label``, ``lat``, ``lon``, ``time``."""
        return {k: self._arrays[k] for k in ("label", "lat", "lon", "time")}

    def __len__(self) -> int:
        """Number of samples."""
        return int(self.manifest["count"])

    def __getitem__(self, index: int | Sequence[int] | np.ndarray | Tensor) -> dict[str, Tensor]:
        """One sample (int index), or the collated batch of several (float32 ``image``)."""
        batch = self.raw_batch(np.asarray(index))
        batch["image"] = batch["image"].to(torch.float32)
        return batch

    def raw_batch(
        self, indices: np.ndarray, flips: Sequence[int] | None = None
    ) -> dict[str, Tensor]:
        """Rows ``indices`` with the image in its stored dtype (uint16 DN as ``torch.uint16``).

        Args:
            indices: () or (B,) integer indices.
            flips: optional counts ``(n0, n1, n2, n3)`` summing to B
                (:func:`~torchgeo_moemae.transforms.flip_counts`): the first n0 images are kept,
                the next n1 flipped left-right, n2 up-down and n3 both
                (:data:`~torchgeo_moemae.transforms.FLIP_AXES`). The flips are done by the copy
                itself (NumPy reads reversed strides), so they cost no extra pass.

        Returns:
            ``image`` (B, 7, P, P) (or (7, P, P)), ``label``, ``lat``, ``lon``, ``time``.
        """
        image = self.image
        if flips is None:
            pixels = np.array(image[indices])
        else:
            pixels = np.empty((len(indices), *image.shape[1:]), image.dtype)
            start = 0
            for count, axes in zip(flips, FLIP_AXES, strict=True):
                stop = start + count
                pixels[start:stop] = np.flip(image[indices[start:stop]], axis=axes)
                start = stop
        # np.array copies (out of the read-only map) and keeps 0-dim rows 0-dim.
        batch = {k: torch.from_numpy(np.array(v[indices])) for k, v in self.table().items()}
        batch["image"] = torch.from_numpy(pixels)
        return batch
