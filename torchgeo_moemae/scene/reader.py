"""Row-strip readers of 7-band Landsat scenes: a Collection 2 Level-2 product (folder or ``.tar``),
the band assets of a STAC Item, or any TorchGeo :class:`~torchgeo.datasets.RasterDataset` with the
seven bands.

A reader returns whole-width strips of rows for all bands at once: one read per band per strip is
much cheaper than one read per 40x40 window (see ``benchmarks/bench_scene.py``).
"""

from __future__ import annotations

import math
import posixpath
import tarfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import rasterio
from pyproj import CRS
from rasterio import Affine
from rasterio.errors import NotGeoreferencedWarning, RasterioError, RasterioIOError
from rasterio.windows import Window

from ..bands import BANDS
from ..errors import root_cause
from .inputs import SceneSource
from .mtl import LandsatMTL, read_mtl
from .qa import FILL_BIT, cloud_pixels

__all__ = [
    "SCENE_ERRORS",
    "LandsatProduct",
    "RasterDatasetScene",
    "SceneReader",
    "StacScene",
    "open_scene",
]

#: what a damaged or unreadable scene raises (reported for that scene; see ``--on-error``)
SCENE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    OSError,
    tarfile.TarError,
    RasterioError,
)


@runtime_checkable
class SceneReader(Protocol):
    """A north-up 7-band scene read in strips of rows.

    Attributes:
        name: the scene (file or dataset) for messages.
        crs: the scene CRS.
        transform: pixel -> map transform (north-up).
        height, width: scene size in pixels.
        time: acquisition time, POSIX seconds UTC (NaN: unknown, encoded as missing).
    """

    name: str
    crs: CRS
    transform: Affine
    height: int
    width: int
    time: float

    @property
    def has_qa(self) -> bool:
        """The scene has a ``QA_PIXEL`` band (cloud masks)."""
        ...

    def read_rows(self, row: int, nrows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Rows ``row .. row + nrows``: DN ``(7, nrows, width)``, fill mask ``(nrows, width)`` and
        cloud mask ``(nrows, width)`` (None without ``QA_PIXEL``)."""
        ...

    def close(self) -> None:
        """Release open files."""
        ...


def _open_tiff(path: str, what: str) -> Any:
    try:
        with warnings.catch_warnings():
            # Crops without georeferencing are expected: the MTL provides it (checked below).
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as err:
        raise ValueError(f"{what}: unreadable TIFF {path}: {err}") from None


class _BandStack:
    """The seven band TIFFs (and ``QA_PIXEL`` if given) of one scene, read in strips of rows.

    Fill pixels are those where any band is 0 (Collection 2 fill DN), or where bit 0 (fill) of
    ``QA_PIXEL`` is set; cloud pixels those with a :data:`~torchgeo_moemae.scene.qa.CLOUD_BITS` bit.
    """

    name: str
    time: float
    crs: CRS
    transform: Affine
    height: int
    width: int

    def _open(self, bands: Sequence[str], qa: str | None) -> None:
        self._bands: list[Any] = []
        self._qa: Any = None
        try:
            for band, path in zip(BANDS, bands, strict=True):
                self._bands.append(_open_tiff(path, f"band {band}"))
            self._qa = _open_tiff(qa, "QA_PIXEL") if qa else None
            self._check_grid()
        except BaseException:
            self.close()
            raise

    @property
    def has_qa(self) -> bool:
        """Whether the scene has a ``QA_PIXEL`` band."""
        return self._qa is not None

    def _check_grid(self) -> None:
        first = self._bands[0]
        datasets = [*self._bands, *([self._qa] if self._qa is not None else [])]
        names = [*BANDS, "QA_PIXEL"]
        for name, ds in zip(names, datasets, strict=False):
            if ds.count != 1:
                raise ValueError(
                    f"{ds.name}: expected a single-band {name} TIFF, got {ds.count} bands"
                )
            if ds.shape != first.shape:
                raise ValueError(
                    f"{ds.name}: {name} is {ds.shape[0]}x{ds.shape[1]} px but {BANDS[0]} is "
                    f"{first.shape[0]}x{first.shape[1]}: all bands must share one grid"
                )
            if ds.crs != first.crs or (ds.crs is not None and ds.transform != first.transform):
                raise ValueError(
                    f"{ds.name}: {name} has CRS {ds.crs} / transform {tuple(ds.transform)[:6]} but "
                    f"{BANDS[0]} has {first.crs} / {tuple(first.transform)[:6]}: all bands must share one grid"
                )
        self.height, self.width = first.shape
        if first.crs is not None:
            self.crs = CRS.from_user_input(first.crs)
            self.transform = first.transform
            return
        self._georeference(first)

    def _georeference(self, first: Any) -> None:
        raise ValueError(f"{first.name} has no georeferencing (no CRS)")

    def _read(self, ds: Any, what: str, window: Window, out: np.ndarray | None = None) -> Any:
        try:
            return ds.read(1, window=window, out=out)
        except RasterioIOError as err:
            raise ValueError(
                f"{ds.name}: {what} unreadable at rows {window.row_off}..{window.row_off + window.height} "
                f"({root_cause(err)}); the file is truncated or corrupt: download it again"
            ) from err

    def read_rows(self, row: int, nrows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Rows ``row .. row + nrows``: DN ``(7, nrows, width)`` uint16, fill ``(nrows, width)``
        and cloud ``(nrows, width)`` (None without ``QA_PIXEL``)."""
        window = Window(0, row, self.width, nrows)
        data = np.empty((len(self._bands), nrows, self.width), dtype=np.uint16)
        for i, ds in enumerate(self._bands):
            self._read(ds, f"band {BANDS[i]}", window, out=data[i])
        fill = (data == 0).any(axis=0)
        cloud = None
        if self._qa is not None:
            qa = self._read(self._qa, "QA_PIXEL", window)
            fill |= ((qa >> FILL_BIT) & 1).astype(bool)
            cloud = cloud_pixels(qa)
        return data, fill, cloud

    def close(self) -> None:
        """Close the band files."""
        for ds in [*getattr(self, "_bands", []), getattr(self, "_qa", None)]:
            if ds is not None:
                ds.close()


class LandsatProduct(_BandStack):
    """A Landsat 8/9 Collection 2 Level-2 product: ``SR_B1..SR_B7`` GeoTIFFs, the MTL file and,
    when present, ``QA_PIXEL``, in a folder or a ``.tar``.

    TIFFs without georeferencing (e.g. crops) get it from the MTL: EPSG 326<UTM_ZONE>, cell size
    ``GRID_CELL_SIZE_REFLECTIVE`` and the upper-left pixel CENTRE ``CORNER_UL_PROJECTION_X/Y_PRODUCT``.

    Args:
        source: the product folder or ``.tar`` archive.

    Raises:
        ValueError: no/several MTL files, a missing or unreadable band file, bands of different
            shapes, CRS or transforms, or un-georeferenced bands whose size differs from the MTL.
    """

    def __init__(self, source: str | Path) -> None:
        self.source = Path(source)
        self.name = str(self.source)
        members, mtl_text = self._list(self.source)
        mtl_names = [m for m in members if m.upper().endswith("_MTL.TXT")]
        if len(mtl_names) != 1:
            raise ValueError(
                f"{self.source}: expected exactly one *_MTL.txt file, found {len(mtl_names) or 'none'}"
                + (f" ({', '.join(sorted(mtl_names))})" if mtl_names else "")
                + (
                    " (a folder of products? pass them with a glob, 'DIR/*')"
                    if not mtl_names
                    else ""
                )
            )
        mtl_path = members[mtl_names[0]]
        self.mtl: LandsatMTL = read_mtl(mtl_path, mtl_text(mtl_names[0]))
        self.time = self.mtl.time
        bands = []
        for band in BANDS:
            name = self.mtl.band_files[band]
            if name not in members:
                raise ValueError(
                    f"{self.source}: band file {band} is missing: expected {name} "
                    f"(named by the MTL {self.mtl.path})"
                )
            bands.append(members[name])
        qa = self.mtl.qa_pixel_file
        self._open(bands, members[qa] if qa and qa in members else None)

    @staticmethod
    def _list(source: Path) -> tuple[dict[str, str], Any]:
        """File name -> path readable by GDAL, and a function reading a member's text."""
        if source.is_dir():
            files = {p.name: str(p) for p in source.iterdir() if p.is_file()}
            return files, lambda name: Path(files[name]).read_text()
        if source.is_file() and tarfile.is_tarfile(source):
            with tarfile.open(source) as tar:
                names = [m.name for m in tar.getmembers() if m.isfile()]
            # GDAL lists members without a leading "./" (`tar -cf x.tar -C dir .` writes one)
            files = {
                Path(n).name: f"/vsitar/{source.resolve()}/{posixpath.normpath(n)}" for n in names
            }
            full = {Path(n).name: n for n in names}

            def read_member(name: str) -> str:
                with tarfile.open(source) as tar:
                    handle = tar.extractfile(full[name])
                    assert handle is not None
                    return handle.read().decode()

            return files, read_member
        raise ValueError(
            f"{source}: expected a Landsat Collection 2 Level-2 product folder or .tar archive"
        )

    def _georeference(self, first: Any) -> None:
        # No georeferencing in the TIFFs: rebuild it from the MTL, which must describe this raster.
        if (self.mtl.height, self.mtl.width) != (self.height, self.width):
            raise ValueError(
                f"{first.name} has no georeferencing and is {self.height}x{self.width} px, but the MTL "
                f"{self.mtl.path} describes a {self.mtl.height}x{self.mtl.width} px grid "
                "(REFLECTIVE_LINES x REFLECTIVE_SAMPLES): cannot georeference it"
            )
        self.crs = self.mtl.crs
        self.transform = self.mtl.transform


class StacScene(_BandStack):
    """The band assets of a STAC Item (:class:`~torchgeo_moemae.scene.SceneSource` of kind
    ``"stac"``): seven georeferenced GeoTIFFs / COGs (local paths or URLs GDAL reads, e.g. signed
    HTTPS), ``QA_PIXEL`` when the item has it, the acquisition time from the item's ``datetime``."""

    def __init__(self, source: SceneSource) -> None:
        self.name = source.href
        self.time = math.nan if source.time is None else source.time
        self._open(source.bands, source.qa)


class RasterDatasetScene:
    """A TorchGeo :class:`~torchgeo.datasets.RasterDataset` with the seven bands, read in strips
    over its bounds at its resolution (values must be Collection 2 DN; 0 = fill).

    Args:
        dataset: the dataset (``dataset.bands`` in :data:`~torchgeo_moemae.bands.BANDS` order).
        time: acquisition time, POSIX seconds UTC; default: the middle of the dataset's time index
            when it is finite (file names with dates), else unknown.
    """

    def __init__(self, dataset: Any, time: float | None = None) -> None:
        self.dataset = dataset
        self.name = type(dataset).__name__
        x, y, t = dataset.bounds
        xres, yres = dataset.res
        self.crs = CRS.from_user_input(dataset.crs)
        self.transform = Affine(xres, 0.0, x.start, 0.0, -yres, y.stop)
        self.width = round((x.stop - x.start) / xres)
        self.height = round((y.stop - y.start) / yres)
        self._t = t
        if time is None:
            start, stop = pd.Timestamp(t.start), pd.Timestamp(t.stop)
            finite = start > pd.Timestamp.min and stop < pd.Timestamp.max
            time = (start.timestamp() + stop.timestamp()) / 2 if finite else math.nan
        self.time = float(time)
        self.has_qa = False

    def read_rows(self, row: int, nrows: int) -> tuple[np.ndarray, np.ndarray, None]:
        """Rows ``row .. row + nrows``: DN ``(7, nrows, width)`` float32, fill ``(nrows, width)``
        and no cloud mask."""
        x0, yres, top = self.transform.c, -self.transform.e, self.transform.f
        query = (
            slice(x0, x0 + self.width * self.transform.a),
            slice(top - (row + nrows) * yres, top - row * yres),
            self._t,
        )
        image = self.dataset[query]["image"].numpy()
        if image.shape != (len(BANDS), nrows, self.width):
            raise ValueError(
                f"{self.name}: expected a ({len(BANDS)}, {nrows}, {self.width}) image for rows "
                f"{row}..{row + nrows}, got {image.shape} (the dataset must yield the 7 bands {BANDS})"
            )
        return image, (image == 0).any(axis=0), None

    def close(self) -> None:
        """Nothing to release (the dataset manages its files)."""


def open_scene(source: str | Path | SceneSource | Any, time: float | None = None) -> SceneReader:
    """A reader for a product folder or ``.tar``, a :class:`~torchgeo_moemae.scene.SceneSource`
    or a TorchGeo ``RasterDataset``; ``time`` overrides the acquisition time."""
    from torchgeo.datasets import RasterDataset

    if isinstance(source, SceneSource):
        time = source.time if time is None else time
        if source.kind == "stac":
            reader: SceneReader = StacScene(source)
        else:
            reader = open_scene(source.dataset if source.kind == "dataset" else source.href)
    elif isinstance(source, RasterDataset):
        return RasterDatasetScene(source, time=time)
    elif isinstance(source, str | Path):
        reader = LandsatProduct(source)
    else:
        raise TypeError(
            "source must be a Landsat product folder or .tar path, a SceneSource or a torchgeo "
            f"RasterDataset, got {type(source).__name__}"
        )
    if time is not None:
        reader.time = float(time)
    return reader
