"""Embed a whole scene: 40x40 windows on a regular grid -> one embedding per window -> GeoTIFF."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from numpy.lib.stride_tricks import sliding_window_view
from tqdm.auto import tqdm

from ..bands import BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from ..models import MoEMAEEncoder
from ..outputs import check_output, provenance_record
from ..probe.featurizer import Featurizer
from ..transforms import normalize_dn
from ..utils import eval_mode
from ..vocabulary import DEFAULT_POOL, MAP_POOLS
from .grid import WindowGrid
from .quicklook import save_quicklook
from .reader import SceneReader, open_scene
from .writer import EmbeddingWriter

__all__ = ["embed_scene", "scene_windows"]

#: GDAL block cache while embedding (bytes): a few tile rows of the seven bands.
GDAL_CACHE_BYTES = 256 * 2**20


@dataclass
class _Rows:
    """The windows of consecutive grid rows that are not fill, with their metadata."""

    rows: list[int]
    images: np.ndarray  # (N, 7, size, size) DN
    lat: np.ndarray  # (N,)
    lon: np.ndarray  # (N,)
    index: np.ndarray  # (N,) position row * cols + col within `rows`' block


def scene_windows(
    reader: SceneReader,
    grid: WindowGrid,
    min_windows: int,
    max_fill_fraction: float = 1.0,
) -> Iterator[_Rows]:
    """Read the scene one row strip at a time and yield blocks of at least ``min_windows`` windows
    (whole grid rows, so memory is bounded by ``min_windows`` + one row of windows).

    A window is nodata (left out) when it is entirely fill, or when its fill fraction exceeds
    ``max_fill_fraction``; fill pixels of the other windows keep DN 0, as in the pre-training data.
    """
    block: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    pending = 0
    for row in range(grid.rows):
        data, fill = reader.read_rows(row * grid.stride, grid.size)
        # (7, size, cols, size) views -> (cols, 7, size, size); no copy until the selection below.
        windows = sliding_window_view(data, grid.size, axis=2)[:, :, :: grid.stride][
            :, :, : grid.cols
        ]
        fraction = sliding_window_view(fill, grid.size, axis=1)[:, :: grid.stride][
            :, : grid.cols
        ].mean(axis=(0, 2))
        keep = np.flatnonzero((fraction < 1.0) & (fraction <= max_fill_fraction))
        lat, lon = grid.latlon(row)
        images = np.ascontiguousarray(windows[:, :, keep].transpose(2, 0, 1, 3))
        block.append((row, images, lat[keep], lon[keep], keep, fraction))
        pending += len(keep)
        if pending >= min_windows or row == grid.rows - 1:
            yield _Rows(
                rows=[b[0] for b in block],
                images=np.concatenate([b[1] for b in block]),
                lat=np.concatenate([b[2] for b in block]),
                lon=np.concatenate([b[3] for b in block]),
                index=np.concatenate([i * grid.cols + b[4] for i, b in enumerate(block)]),
            )
            block, pending = [], 0


def _embed_block(
    featurizer: Featurizer,
    block: _Rows,
    cols: int,
    time: float,
    pool: str,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Embeddings of a block of grid rows, ``(rows, cols, dim)`` float32 with NaN for fill."""
    dim = featurizer.encoder.num_features
    out = np.full((len(block.rows) * cols, dim), np.nan, dtype=np.float32)
    mean, std = torch.tensor(BIGEARTHNET_LS_MEAN), torch.tensor(BIGEARTHNET_LS_STD)
    # Equal chunks of at most batch_size windows (no tiny remainder batch).
    chunks = max(1, -(-len(block.index) // batch_size))
    for idx in np.array_split(np.arange(len(block.index)), chunks):
        if len(idx) == 0:
            continue
        x = normalize_dn(torch.from_numpy(block.images[idx]).to(device), mean, std)
        batch = {
            "image": x,
            "lat": torch.from_numpy(block.lat[idx]).to(device),
            "lon": torch.from_numpy(block.lon[idx]).to(device),
            "time": torch.full((len(idx),), time, dtype=torch.float64, device=device),
        }
        out[block.index[idx]] = featurizer(batch, pool).float().cpu().numpy()
    return out.reshape(len(block.rows), cols, -1)


def embed_scene(
    source: str | Path | Any,
    out_path: str | Path,
    encoder: MoEMAEEncoder,
    *,
    stride: int = 40,
    pool: str = DEFAULT_POOL,
    batch_size: int = 256,
    max_fill_fraction: float = 1.0,
    time: float | None = None,
    device: str | torch.device | None = None,
    quicklook: bool = True,
    progress: bool = True,
    overwrite: bool = False,
    weights: Any = None,
) -> Path:
    """Embed every window of a scene and write the embedding map as a Cloud-Optimized GeoTIFF.

    Windows of the encoder's input size (40x40 px) are taken every ``stride`` px from the scene's
    upper-left corner (:class:`~torchgeo_moemae.scene.WindowGrid`); each is z-scored with the
    BigEarthNet-L statistics (raw Collection 2 DN, as in pre-training) and embedded with its
    metadata (latitude/longitude of the window centre, reprojected from the scene CRS, and the
    acquisition time) as every command embeds
    (:class:`~torchgeo_moemae.probe.Featurizer`: the tokens before the final LayerNorm, the
    paper's protocol). The output has one float32 band per embedding dimension, the scene CRS, a
    ``stride * resolution`` pixel centred on each window, and NaN nodata where a window is fill.
    Windows are streamed in batches (memory does not grow with the scene); the file is written
    atomically.

    Args:
        source: a Landsat 8/9 Collection 2 Level-2 product folder or ``.tar`` (``SR_B1..SR_B7`` +
            MTL), or a TorchGeo ``RasterDataset`` yielding the seven bands in DN.
        out_path: the output ``.tif``; the quicklook goes next to it as ``.png``.
        encoder: a MoE-MAE encoder (``forward_features(x, lat=, lon=, time=) -> (B, 105, C)``).
        stride: window step in pixels (40: adjacent windows, smaller: overlapping).
        pool: ``"cls"`` (the CLS token) or ``"avg"`` (the mean of all tokens), as
            :class:`~torchgeo_moemae.probe.Featurizer` pools (``"all"`` would make
            ``(5 + L) * C`` bands).
        batch_size: windows per forward pass.
        max_fill_fraction: windows whose fill fraction exceeds it are nodata (entirely-fill
            windows always are).
        time: acquisition time override, POSIX seconds UTC (default: the MTL's, or the
            dataset's time index; NaN: missing).
        device: where the encoder runs (default: where its parameters are).
        quicklook: also write the PCA-RGB quicklook ``out_path.with_suffix(".png")``.
        progress: show a progress bar.
        weights: where the encoder's weights came from (the
            :class:`~torchgeo_moemae.models.Provenance` :func:`load_scene_encoder` returns),
            recorded in the tags with the model and package version; None: "not recorded".
        overwrite: replace an existing ``out_path`` (and quicklook); without it they are kept and
            a ``FileExistsError`` is raised before any window is read.

    Returns:
        ``out_path``.
    """
    if pool not in MAP_POOLS:
        raise ValueError(
            f"pool must be one of {MAP_POOLS} for a scene map (one band per embedding dimension), "
            f"got {pool!r}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not 0.0 <= max_fill_fraction <= 1.0:
        raise ValueError(f"max_fill_fraction must be in [0, 1], got {max_fill_fraction}")
    out_path = check_output(out_path, overwrite=overwrite)
    if quicklook:
        check_output(out_path.with_suffix(".png"), overwrite=overwrite)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    size = encoder.img_size[0]
    dim = encoder.num_features
    reader = open_scene(source, time=time)
    try:
        grid = WindowGrid(
            reader.height, reader.width, reader.transform, reader.crs, size=size, stride=stride
        )
        tags = dict(
            source=reader.name,
            pool=pool,
            features="tokens before the final LayerNorm",
            stride=stride,
            window_size=size,
            time=repr(reader.time),
            normalisation="BigEarthNet-L z-score of Collection 2 DN",
        )
        record = provenance_record(
            weights if weights is not None else {"description": "not recorded"},
            (getattr(encoder, "pretrained_cfg", None) or {}).get("architecture"),
        )
        tags.update(
            weights=record["weights"]["description"],
            weights_sha256=record["weights"].get("sha256") or "",
            model=record["model"],
            package_version=f"{record['package']} {record['package_version']}",
        )
        encoder = encoder.to(device)
        featurizer = Featurizer(encoder)
        bar = tqdm(total=grid.rows * grid.cols, unit="win", disable=not progress, desc="embed")
        with (
            # GDAL's block cache defaults to 5% of RAM; each tile row is read once, so a small
            # cache suffices and memory stays flat however large the scene.
            rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES),
            EmbeddingWriter(
                out_path, grid.rows, grid.cols, dim, grid.crs, grid.out_transform, tags
            ) as writer,
            eval_mode(encoder),
            torch.inference_mode(),
        ):
            for block in scene_windows(reader, grid, batch_size, max_fill_fraction):
                out = _embed_block(
                    featurizer, block, grid.cols, reader.time, pool, batch_size, device
                )
                for i, row in enumerate(block.rows):
                    writer.write_row(row, out[i].T)
                bar.update(len(block.rows) * grid.cols)
        bar.close()
    finally:
        reader.close()
    if quicklook:
        save_quicklook(out_path, out_path.with_suffix(".png"))
    return out_path
