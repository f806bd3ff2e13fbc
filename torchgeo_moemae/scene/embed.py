"""Embed whole scenes: Lightning's predict loop over :class:`SceneDataModule` windows, the
featurizer in :class:`SceneEmbeddingTask`, the maps written by :class:`SceneWriter`."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch

from ..lightning_noise import RANK_ZERO_LOGGER
from ..models import MoEMAEEncoder
from ..utils import default_device
from ..vocabulary import DEFAULT_MAX_CLOUD_FRACTION, DEFAULT_POOL
from .callback import SceneWriter
from .datamodule import SceneDataModule
from .summary import RunSummary, SceneError
from .task import SceneEmbeddingTask

__all__ = ["embed_scene", "embed_scenes"]


def _accelerator(device: str | torch.device | None) -> tuple[str, Any]:
    """``device`` -> Lightning ``(accelerator, devices)`` (None: CUDA when present, else CPU)."""
    device = default_device(device)
    if device.type == "cuda":
        return "gpu", [device.index] if device.index is not None else None
    return device.type, None


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """No Lightning banners ("GPU available: ...") and not its warning that does not apply here:
    the loader's workers are a choice (each reads whole scenes). (Its noise about itself is
    filtered for every run: :mod:`torchgeo_moemae.lightning_noise`.)"""
    log = logging.getLogger(RANK_ZERO_LOGGER)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            yield
    finally:
        log.setLevel(level)


def embed_scenes(
    inputs: str | Path | Sequence[Any],
    out: str | Path,
    encoder: MoEMAEEncoder | None = None,
    *,
    model: str | None = None,
    weights: Any = None,
    random_init: bool = False,
    stride: int = 40,
    pool: str = DEFAULT_POOL,
    batch_size: int = 256,
    num_workers: int = 0,
    max_fill_fraction: float = 1.0,
    max_cloud_fraction: float = DEFAULT_MAX_CLOUD_FRACTION,
    time: float | None = None,
    device: str | torch.device | None = None,
    devices: int | None = None,
    num_nodes: int = 1,
    precision: str = "auto",
    quicklook: bool = True,
    progress: bool = True,
    overwrite: bool = False,
    on_error: Literal["raise", "skip"] = "raise",
) -> RunSummary:
    """Embed every window of every scene of ``inputs``: one embedding map (COG), quicklook and
    STAC Item per scene, and a STAC Collection of the run (see :class:`SceneWriter`).

    Runs ``Trainer.predict``: :class:`SceneDataModule` reads the scenes in row strips (whole
    scenes per rank), :class:`SceneEmbeddingTask` embeds each window as ``moemae embed`` embeds a
    sample (the :class:`~torchgeo_moemae.probe.Featurizer`), :class:`SceneWriter` writes. With
    several devices or nodes, Lightning's DDP launches one process per device: call this from the
    command line (``moemae embed-scene``) or a script guarded by ``if __name__ == "__main__"``.

    Args:
        inputs: see :class:`SceneDataModule`.
        out: the output folder (or, for one scene, the map's ``.tif``).
        encoder: the encoder (None: load ``model``/``weights``, see :class:`SceneEmbeddingTask`).
        weights: with ``encoder``: where its weights came from (recorded); without: what to load.
        random_init: without ``encoder`` and ``weights``: a random initialisation, on purpose.
        stride, batch_size, num_workers, max_fill_fraction, max_cloud_fraction, time: see
            :class:`SceneDataModule`.
        pool, precision: see :class:`SceneEmbeddingTask`.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` (None: CUDA when present, else CPU).
        devices: devices per node (None: one, or the one ``device`` names).
        num_nodes: nodes (DDP across machines, launched as Lightning does).
        quicklook, progress, overwrite, on_error: see :class:`SceneWriter`.

    Returns:
        the run summary (done / skipped / failed scenes, windows, seconds).

    Raises:
        SceneError: a scene could not be read and ``on_error="raise"`` (the scenes finished
            before it are kept).
        FileExistsError: an output made otherwise exists and not ``overwrite`` (before any work).
    """
    from lightning.pytorch import Trainer

    datamodule = SceneDataModule(
        inputs,
        batch_size=batch_size,
        num_workers=num_workers,
        stride=stride,
        max_fill_fraction=max_fill_fraction,
        max_cloud_fraction=max_cloud_fraction,
        time=time,
    )
    task = SceneEmbeddingTask(
        model,
        None if encoder is not None else weights,
        random_init,
        pool=pool,
        precision=precision,
        encoder=encoder,
        provenance=weights if encoder is not None else None,
    )
    writer = SceneWriter(
        out, overwrite=overwrite, quicklook=quicklook, on_error=on_error, progress=progress
    )
    accelerator, listed = _accelerator(device)
    with _quiet_lightning():
        trainer = Trainer(
            accelerator=accelerator,
            devices=devices if devices is not None else (listed or 1),
            num_nodes=num_nodes,
            strategy="auto",
            precision="32-true",  # the task autocasts to bf16 itself (on CUDA by default)
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=False,
            callbacks=[writer],
        )
        try:
            trainer.predict(task, datamodule=datamodule, return_predictions=False)
        except SceneError as err:
            err.summary = writer.summary
            raise
        except SystemExit:
            # Lightning answers Ctrl-C with its own shutdown and sys.exit(1): report it as the
            # interruption it is, as every command does
            if trainer.interrupted:
                raise KeyboardInterrupt from None
            raise
    return writer.summary


def embed_scene(
    source: str | Path | Any,
    out_path: str | Path,
    encoder: MoEMAEEncoder,
    *,
    stride: int = 40,
    pool: str = DEFAULT_POOL,
    batch_size: int = 256,
    max_fill_fraction: float = 1.0,
    max_cloud_fraction: float = DEFAULT_MAX_CLOUD_FRACTION,
    time: float | None = None,
    device: str | torch.device | None = None,
    quicklook: bool = True,
    progress: bool = True,
    overwrite: bool = False,
    weights: Any = None,
) -> Path:
    """Embed every window of one scene and write the embedding map as a Cloud-Optimized GeoTIFF.

    :func:`embed_scenes` for one scene into one file: windows of the encoder's input size
    (40x40 px) every ``stride`` px on a grid fixed in the scene's CRS
    (:class:`~torchgeo_moemae.scene.WindowGrid`); each is z-scored with the BigEarthNet-L
    statistics (raw Collection 2 DN, as in pre-training) and embedded with its metadata (latitude
    and longitude of the window centre, reprojected from the scene CRS, and the acquisition time)
    as every command embeds (:class:`~torchgeo_moemae.probe.Featurizer`: the tokens before the
    final LayerNorm, the paper's protocol). The output has one float32 band per embedding
    dimension, the scene CRS, a ``stride * resolution`` pixel centred on each window, and NaN
    nodata where a window is fill or cloud. The STAC Item goes next to it (``.json``).

    Args:
        source: a Landsat 8/9 Collection 2 Level-2 product folder or ``.tar`` (``SR_B1..SR_B7`` +
            MTL, and ``QA_PIXEL`` for the cloud mask), a STAC Item, or a TorchGeo
            ``RasterDataset`` yielding the seven bands in DN.
        out_path: the output ``.tif``; the quicklook goes next to it as ``.png``.
        encoder: a MoE-MAE encoder.
        stride: window step in pixels (40: adjacent windows, smaller: overlapping).
        pool: ``"cls"`` (the CLS token) or ``"avg"`` (the mean of all tokens).
        batch_size: windows per forward pass.
        max_fill_fraction: windows whose fill fraction exceeds it are nodata (entirely-fill
            windows always are).
        max_cloud_fraction: windows whose ``QA_PIXEL`` cloud fraction exceeds it are nodata.
        time: acquisition time override, POSIX seconds UTC (default: the MTL's, or the
            dataset's time index; NaN: missing).
        device: where the encoder runs (default: where its parameters are).
        quicklook: also write the PCA-RGB quicklook ``out_path.with_suffix(".png")``.
        progress: show a progress bar.
        overwrite: replace an existing map made otherwise; a finished map of the same settings
            is kept as it is (resume), any other existing output raises ``FileExistsError``
            before any window is read.
        weights: where the encoder's weights came from (the
            :class:`~torchgeo_moemae.models.Provenance`
            :func:`~torchgeo_moemae.models.factory.load_model` returns),
            recorded in the tags and the Item; None: "not recorded".

    Returns:
        ``out_path``.

    Raises:
        SceneError: the scene could not be read.
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"out_path must be a .tif file, got {out_path}")
    summary = embed_scenes(
        [source],
        out_path,
        encoder,
        weights=weights,
        stride=stride,
        pool=pool,
        batch_size=batch_size,
        max_fill_fraction=max_fill_fraction,
        max_cloud_fraction=max_cloud_fraction,
        time=time,
        device=device if device is not None else next(encoder.parameters()).device,
        quicklook=quicklook,
        progress=progress,
        overwrite=overwrite,
    )
    if summary.failed:
        raise SceneError(summary.failed[0].error)
    return out_path
