"""A scene's windows in blocks of whole grid rows, and the iterable dataset of a run's scenes.

Each item of :class:`SceneWindows` is one model batch (at most ``batch_size`` windows) with a
:class:`Strip` saying where its embeddings go; the first item of a scene carries the scene's
:class:`SceneHeader`, the last one of each block of rows says so, and a scene that cannot be read
yields one item with its error instead (no windows).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from numpy.lib.stride_tricks import sliding_window_view
from torch.utils.data import IterableDataset, get_worker_info

from ..bands import BANDS
from ..errors import root_cause
from .grid import WindowGrid
from .inputs import SceneSource
from .reader import SCENE_ERRORS, SceneReader, open_scene

__all__ = ["Block", "SceneHeader", "SceneWindows", "Strip", "scene_blocks"]

#: GDAL block cache while embedding (bytes): a few tile rows of the seven bands.
GDAL_CACHE_BYTES = 256 * 2**20


@dataclass
class Block:
    """The windows of consecutive grid rows that are embedded (not fill, not cloud).

    Attributes:
        rows: the grid rows.
        images: ``(N, 7, size, size)`` DN.
        lat, lon: ``(N,)`` window centres, degrees.
        index: ``(N,)`` position ``row * cols + col`` within the block.
        fill, cloud: windows of the block left out as fill, and as cloud.
    """

    rows: list[int]
    images: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    index: np.ndarray
    fill: int
    cloud: int


def _window_fraction(mask: np.ndarray, grid: WindowGrid) -> np.ndarray:
    """``(size, width)`` bool -> ``(cols,)`` fraction of each window's pixels that are set."""
    view = sliding_window_view(mask[:, grid.col0 :], grid.size, axis=1)
    return view[:, :: grid.stride][:, : grid.cols].mean(axis=(0, 2))


def scene_blocks(
    reader: SceneReader,
    grid: WindowGrid,
    min_windows: int,
    max_fill_fraction: float = 1.0,
    max_cloud_fraction: float = 1.0,
) -> Iterator[Block]:
    """Read the scene one row strip at a time and yield blocks of at least ``min_windows``
    embedded windows (whole grid rows, so memory is bounded by ``min_windows`` + one row).

    A window is left out (nodata) as fill when it is entirely fill or its fill fraction exceeds
    ``max_fill_fraction``, and as cloud when its fraction of ``QA_PIXEL`` cloud pixels exceeds
    ``max_cloud_fraction``; fill pixels of the other windows keep DN 0, as in the pre-training data.
    """
    parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]] = []
    pending = 0
    for row in range(grid.rows):
        data, fill, cloud = reader.read_rows(grid.top(row), grid.size)
        # (7, size, cols, size) views -> (cols, 7, size, size); no copy until the selection below.
        windows = sliding_window_view(data[:, :, grid.col0 :], grid.size, axis=2)
        windows = windows[:, :, :: grid.stride][:, :, : grid.cols]
        fraction = _window_fraction(fill, grid)
        valid = (fraction < 1.0) & (fraction <= max_fill_fraction)
        keep = valid.copy()
        if cloud is not None:
            keep &= _window_fraction(cloud, grid) <= max_cloud_fraction
        keep_idx = np.flatnonzero(keep)
        lat, lon = grid.latlon(row)
        images = np.ascontiguousarray(windows[:, :, keep_idx].transpose(2, 0, 1, 3))
        n_fill, n_cloud = int((~valid).sum()), int((valid & ~keep).sum())
        parts.append((row, images, lat[keep_idx], lon[keep_idx], keep_idx, n_fill, n_cloud))
        pending += len(keep_idx)
        if pending >= min_windows or row == grid.rows - 1:
            yield Block(
                rows=[p[0] for p in parts],
                images=np.concatenate([p[1] for p in parts]),
                lat=np.concatenate([p[2] for p in parts]),
                lon=np.concatenate([p[3] for p in parts]),
                index=np.concatenate([i * grid.cols + p[4] for i, p in enumerate(parts)]),
                fill=sum(p[5] for p in parts),
                cloud=sum(p[6] for p in parts),
            )
            parts, pending = [], 0


@dataclass(frozen=True)
class SceneHeader:
    """What the writer needs to start a scene's map (sent with the scene's first batch).

    Attributes:
        scene: the scene's source.
        name: the reader's name of the scene (file or item).
        time: acquisition time, POSIX seconds UTC (NaN: unknown).
        crs_wkt: the scene CRS as WKT.
        transform: the map's pixel -> CRS transform (6 numbers).
        height, width: grid rows and columns (map size).
        res: the scene's pixel size (m).
        has_qa: the scene has ``QA_PIXEL`` (clouds are masked).
    """

    scene: SceneSource
    name: str
    time: float
    crs_wkt: str
    transform: tuple[float, ...]
    height: int
    width: int
    res: float
    has_qa: bool


class Strip:
    """Where a batch's embeddings go: the batch's ``index`` entries are positions within grid
    rows ``rows`` of scene ``scene``. Not a dataclass on purpose: Lightning moves batches to the
    device by recursing into dataclasses, and a strip stays on the host as it is.

    Attributes:
        scene: the scene id.
        rows: the grid rows of the block this batch is part of.
        last_of_block: the block's last batch (its rows can be written).
        last_of_scene: the scene's last batch.
        header: the scene's header, with its first batch.
        fill, cloud: windows of the block left out as fill / cloud (with the block's last batch).
        error: the scene failed: why (no windows; the scene's last item).
    """

    __slots__ = (
        "cloud",
        "error",
        "fill",
        "header",
        "last_of_block",
        "last_of_scene",
        "rows",
        "scene",
    )

    def __init__(
        self,
        scene: str,
        rows: Sequence[int] = (),
        *,
        last_of_block: bool = False,
        last_of_scene: bool = False,
        header: SceneHeader | None = None,
        fill: int = 0,
        cloud: int = 0,
        error: str | None = None,
    ) -> None:
        self.scene = scene
        self.rows = list(rows)
        self.last_of_block = last_of_block
        self.last_of_scene = last_of_scene
        self.header = header
        self.fill = fill
        self.cloud = cloud
        self.error = error

    def __repr__(self) -> str:
        return f"Strip({self.scene!r}, rows={self.rows[:1]}..{self.rows[-1:]})"


def _batch(strip: Strip, block: Block | None, idx: np.ndarray, time: float, size: int) -> dict:
    if block is None:
        images = np.zeros((0, len(BANDS), size, size), dtype=np.uint16)
        lat = lon = np.zeros(0)
        index = np.zeros(0, dtype=np.int64)
    else:
        images, lat, lon, index = (
            block.images[idx],
            block.lat[idx],
            block.lon[idx],
            block.index[idx],
        )
    return {
        "image": images,
        "lat": lat,
        "lon": lon,
        "time": np.full(len(index), time, dtype=np.float64),
        "index": index,
        "strip": strip,
    }


class SceneWindows(IterableDataset):
    """The windows of ``scenes``, scene after scene, as model batches (see the module docstring).

    Data-loader workers take whole scenes (worker ``w`` of ``W``: ``scenes[w::W]``), so a scene's
    batches arrive in order.

    Args:
        scenes: the scenes (of this rank).
        size: window size in pixels (the encoder's input size).
        stride: window step in pixels.
        batch_size: at most this many windows per batch (a block of rows is split into equal
            batches).
        max_fill_fraction, max_cloud_fraction: see :func:`scene_blocks`.
    """

    def __init__(
        self,
        scenes: Sequence[SceneSource],
        size: int = 40,
        stride: int = 40,
        batch_size: int = 256,
        max_fill_fraction: float = 1.0,
        max_cloud_fraction: float = 1.0,
    ) -> None:
        self.scenes = list(scenes)
        self.size = size
        self.stride = stride
        self.batch_size = batch_size
        self.max_fill_fraction = max_fill_fraction
        self.max_cloud_fraction = max_cloud_fraction
        #: set (by the writer, after a failure) to start no further scene; reaches the loader
        #: only when it reads in this process (no workers)
        self.halted = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = get_worker_info()
        scenes = self.scenes if worker is None else self.scenes[worker.id :: worker.num_workers]
        # GDAL's block cache defaults to 5% of RAM; each tile row is read once, so a small cache
        # suffices and memory stays flat however large the scene.
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            for scene in scenes:
                if self.halted:
                    return
                yield from self._scene(scene)

    def _scene(self, scene: SceneSource) -> Iterator[dict[str, Any]]:
        reader = None
        try:
            reader = open_scene(scene)
            grid = WindowGrid(
                reader.height,
                reader.width,
                reader.transform,
                reader.crs,
                size=self.size,
                stride=self.stride,
            )
            header: SceneHeader | None = SceneHeader(
                scene=scene,
                name=reader.name,
                time=reader.time,
                crs_wkt=grid.crs.to_wkt(),
                transform=tuple(grid.out_transform)[:6],
                height=grid.rows,
                width=grid.cols,
                res=abs(reader.transform.a),
                has_qa=reader.has_qa,
            )
            blocks = scene_blocks(
                reader, grid, self.batch_size, self.max_fill_fraction, self.max_cloud_fraction
            )
            for block in blocks:
                last_row = block.rows[-1] == grid.rows - 1
                # Equal chunks of at most batch_size windows (no tiny remainder batch).
                chunks = max(1, math.ceil(len(block.index) / self.batch_size))
                parts = np.array_split(np.arange(len(block.index)), chunks)
                for k, idx in enumerate(parts):
                    last = k == len(parts) - 1
                    strip = Strip(
                        scene.id,
                        block.rows,
                        last_of_block=last,
                        last_of_scene=last and last_row,
                        header=header,
                        fill=block.fill if last else 0,
                        cloud=block.cloud if last else 0,
                    )
                    header = None
                    yield _batch(strip, block, idx, reader.time, self.size)
        except SCENE_ERRORS as err:
            error = str(err) if isinstance(err, ValueError) else f"{scene.href}: {root_cause(err)}"
            yield _batch(Strip(scene.id, error=error), None, np.zeros(0, int), math.nan, self.size)
        finally:
            if reader is not None:
                reader.close()
