"""The output side of scene embedding: a prediction writer that streams each scene's map to a
partial GeoTIFF and, after the scene's last batch, puts its COG, quicklook and STAC Item in place."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pystac
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from pyproj import CRS
from rasterio import Affine
from tqdm.auto import tqdm

from ..outputs import atomic_path, check_output, partial_path, remove_stale_partials
from .quicklook import save_quicklook
from .stac import (
    PREFIX,
    check_existing,
    embedding_settings,
    map_item,
    multihash_sha256,
    write_collection,
    write_json,
)
from .summary import RunSummary, SceneError, SceneResult
from .windows import SceneHeader, Strip
from .writer import EmbeddingWriter

__all__ = ["COLLECTION", "SUMMARY", "SceneWriter"]

#: file names of the run's STAC Collection and summary in an output folder
COLLECTION, SUMMARY = "collection.json", "summary.json"
#: suffixes that make ``out`` one map's file rather than a folder
MAP_SUFFIXES = (".tif", ".tiff")


@dataclass
class _OpenScene:
    """A scene whose map is being written."""

    header: SceneHeader
    writer: EmbeddingWriter
    start: float
    block: np.ndarray | None = None
    rows: list[int] = field(default_factory=list)
    embedded: int = 0
    fill: int = 0
    cloud: int = 0


class SceneWriter(BasePredictionWriter):
    """Write the embedding map, quicklook and STAC Item of every scene, and the run's Collection.

    Outputs of scene ``<id>`` in the folder ``out``: ``<id>.tif`` (Cloud-Optimized GeoTIFF, one
    float32 band per embedding dimension, NaN nodata, provenance in its tags), ``<id>.png`` (PCA-RGB
    quicklook) and ``<id>.json`` (STAC Item, :mod:`~torchgeo_moemae.scene.stac`); for the run,
    ``collection.json`` (STAC Collection of every finished map of the inputs) and ``summary.json``.
    With ``out`` ending in ``.tif`` (one scene): that file, and the quicklook and Item next to it
    (``.png``, ``.json``).

    A map is written to a partial file as its batches arrive; after its last one the COG, the
    quicklook and the Item (with the COG's checksum) are written under partial names and moved in
    place, the Item first. On a rerun, a scene whose Item records the same settings and whose COG
    matches the checksum is skipped; an output made otherwise is kept unless ``overwrite``
    (checked before any window is read). On an error, Ctrl-C or a killed process no partial file
    remains under an output name (leftovers of killed processes are removed by the next run).

    Args:
        out: the output folder, or one map's ``.tif``.
        overwrite: replace existing outputs.
        quicklook: also write the PCA-RGB quicklooks.
        on_error: a scene that cannot be read: ``"raise"`` stops the run (default), ``"skip"``
            reports it in one line and goes on; either way it is listed in the summary. With
            several processes, ``"raise"`` stops the process that met it before its next scene;
            the others finish the scenes they are on, then every process raises (all end
            together, rank 0 writes the summary: no process is left waiting for another).
        progress: show a progress bar (scenes done of this rank's, windows/s).
    """

    def __init__(
        self,
        out: str | Path,
        overwrite: bool = False,
        quicklook: bool = True,
        on_error: Literal["raise", "skip"] = "raise",
        progress: bool = True,
    ) -> None:
        super().__init__("batch")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.out = Path(out)
        self.one_file = self.out.suffix.lower() in MAP_SUFFIXES
        self.folder = self.out.parent if self.one_file else self.out
        self.overwrite = overwrite
        self.quicklook = quicklook
        self.on_error = on_error
        self.progress = progress
        self.summary = RunSummary()
        self._results: dict[str, SceneResult] = {}
        self._open: dict[str, _OpenScene] = {}
        self._bar: Any = None
        self._halted = False
        self._ended = False
        self.scenes: list[str] = []

    def paths(self, scene: str) -> tuple[Path, Path, Path]:
        """The map, STAC Item and quicklook of scene ``scene``."""
        tif = self.out if self.one_file else self.out / f"{scene}.tif"
        return tif, tif.with_suffix(".json"), tif.with_suffix(".png")

    # -- planning ------------------------------------------------------------------------------

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Check the outputs of every scene; mark the finished ones done (skipped)."""
        super().setup(trainer, pl_module, stage)
        from .datamodule import SceneDataModule
        from .task import SceneEmbeddingTask

        data = getattr(trainer, "datamodule", None)
        if not isinstance(data, SceneDataModule) or not isinstance(pl_module, SceneEmbeddingTask):
            raise TypeError(
                "SceneWriter needs a SceneDataModule and a SceneEmbeddingTask, got "
                f"{type(data).__name__} and {type(pl_module).__name__}"
            )
        if self.one_file and len(data.scenes) != 1:
            raise ValueError(
                f"out {self.out} names one map but the inputs hold {len(data.scenes)} scenes: "
                "give a folder"
            )
        check_output(self.folder, folder=True, overwrite=True, what="out")
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.folder)
        self.pool: str = pl_module.hparams["pool"]
        self.provenance = pl_module.provenance
        self.dim: int = pl_module.encoder.num_features
        self.settings = embedding_settings(
            self.provenance,
            self.pool,
            data.window_size,
            data.stride,
            data.max_fill_fraction,
            data.max_cloud_fraction,
        )
        self.scenes = [s.id for s in data.scenes]
        self._results = {}
        self._halted = self._ended = False
        for scene in data.scenes:
            tif, item, _ = self.paths(scene.id)
            if check_existing(tif, item, self.settings, self.overwrite):
                self._results[scene.id] = self._skipped(scene.id, tif, item)
        data.done = set(self._results)
        mine = data.rank_scenes()
        self._rank = trainer.global_rank
        many = trainer.world_size > 1
        self._bar = tqdm(
            total=len(mine),
            unit="scene",
            desc=f"scenes (rank {trainer.global_rank})" if many else "scenes",
            disable=not self.progress,
            position=trainer.global_rank if many else None,
        )

    def _skipped(self, scene: str, tif: Path, item_path: Path) -> SceneResult:
        props = pystac.Item.from_file(str(item_path)).properties
        return SceneResult(
            scene,
            "skipped",
            windows=props.get(PREFIX + "windows", 0),
            embedded=props.get(PREFIX + "embedded", 0),
            fill=props.get(PREFIX + "fill_windows", 0),
            cloud=props.get(PREFIX + "cloud_windows", 0),
            path=str(tif),
        )

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the clock."""
        self._start = time.perf_counter()
        self._embedded = 0

    # -- writing -------------------------------------------------------------------------------

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Put a batch's embeddings into its scene's map; finish the scene after its last batch."""
        strip: Strip = batch["strip"]
        if self._halted and strip.scene not in self._open:
            return  # stopped by a failure: no new scene (loader workers may still send some)
        if strip.error is not None:
            self._fail(trainer, strip.scene, strip.error)
            return
        scene = self._open.get(strip.scene)
        if scene is None:
            assert strip.header is not None, f"the first batch of {strip.scene} has no header"
            scene = self._begin(strip.header)
        if scene.block is None:
            scene.rows = strip.rows
            scene.block = np.full(
                (len(strip.rows) * scene.header.width, self.dim), np.nan, dtype=np.float32
            )
        embeddings = prediction.detach().float().cpu().numpy()
        scene.block[batch["index"].cpu().numpy()] = embeddings
        scene.embedded += len(embeddings)
        self._embedded += len(embeddings)
        if strip.last_of_block:
            cols = scene.header.width
            for i, row in enumerate(scene.rows):
                scene.writer.write_row(row, scene.block[i * cols : (i + 1) * cols].T)
            scene.block = None
            scene.fill += strip.fill
            scene.cloud += strip.cloud
        if strip.last_of_scene:
            self._finish(scene)
        elapsed = time.perf_counter() - self._start
        self._bar.set_postfix_str(
            f"{self._embedded / max(elapsed, 1e-9):.1f} windows/s", refresh=False
        )
        self._bar.update(0)

    def _begin(self, header: SceneHeader) -> _OpenScene:
        if not header.has_qa:
            self._print(f"{header.name}: no QA_PIXEL, clouds are not masked")
        tif, _, _ = self.paths(header.scene.id)
        record = self.provenance
        tags = dict(
            source=header.name,
            pool=self.pool,
            features=self.settings["features"],
            stride=self.settings["stride"],
            window_size=self.settings["window_size"],
            time=repr(header.time),
            normalisation=self.settings["normalisation"],
            max_fill_fraction=self.settings["max_fill_fraction"],
            max_cloud_fraction=self.settings["max_cloud_fraction"],
            weights=record["weights"]["description"],
            weights_sha256=record["weights"].get("sha256") or "",
            model=record["model"],
            package_version=f"{record['package']} {record['package_version']}",
        )
        writer = EmbeddingWriter(
            tif,
            header.height,
            header.width,
            self.dim,
            CRS.from_wkt(header.crs_wkt),
            Affine(*header.transform),
            tags,
        ).open()
        scene = _OpenScene(header, writer, time.perf_counter())
        self._open[header.scene.id] = scene
        return scene

    def _finish(self, scene: _OpenScene) -> None:
        """Write the scene's COG, quicklook and Item under partial names; move them in place."""
        header = scene.header
        del self._open[header.scene.id]
        tif, item_path, png = self.paths(header.scene.id)
        windows = header.height * header.width
        counts = {
            PREFIX + "windows": windows,
            PREFIX + "embedded": scene.embedded,
            PREFIX + "fill_windows": scene.fill,
            PREFIX + "cloud_windows": scene.cloud,
            PREFIX + "qa_pixel": header.has_qa,
        }
        cog = scene.writer.finish({k.removeprefix(PREFIX): v for k, v in counts.items()})
        partials = [cog]
        try:
            png_partial = partial_path(png) if self.quicklook else None
            if png_partial is not None:
                partials.append(png_partial)
                save_quicklook(cog, png_partial)
            item = map_item(
                header.scene.id,
                time=header.time,
                crs_wkt=header.crs_wkt,
                transform=header.transform,
                shape=(header.height, header.width),
                res=header.res,
                stride=self.settings["stride"],
                dim=self.dim,
                tif=tif,
                png=png if self.quicklook else None,
                checksum=multihash_sha256(cog),
                size=cog.stat().st_size,
                properties={
                    PREFIX + "settings": self.settings,
                    PREFIX + "source": header.scene.href,
                    PREFIX + "package_version": self.provenance["package_version"],
                    **counts,
                },
                collection=None if self.one_file else self.folder / COLLECTION,
            )
            item_partial = partial_path(item_path)
            partials.append(item_partial)
            write_json(item, item_partial)
            # The Item first: an Item whose map is missing or older is redone on the next run.
            os.replace(item_partial, item_path)
            if png_partial is not None:
                os.replace(png_partial, png)
            os.replace(cog, tif)
        finally:
            for path in partials:
                path.unlink(missing_ok=True)
        self._results[header.scene.id] = SceneResult(
            header.scene.id,
            "done",
            windows=windows,
            embedded=scene.embedded,
            fill=scene.fill,
            cloud=scene.cloud,
            seconds=time.perf_counter() - scene.start,
            path=str(tif),
            rank=self._rank,
        )
        self._bar.update(1)

    def _fail(self, trainer: Trainer, scene_id: str, message: str) -> None:
        scene = self._open.pop(scene_id, None)
        if scene is not None:
            scene.writer.abort()
        self._results[scene_id] = SceneResult(scene_id, "failed", error=message, rank=self._rank)
        self._bar.update(1)
        if self.on_error == "skip":
            self._print(f"scene {scene_id} failed (skipped): {message}")
        elif trainer.world_size == 1:
            raise SceneError(message)
        else:  # stop here, raise once every rank has reached the end (see on_predict_end)
            self._halted = True
            dataset = getattr(trainer.predict_dataloaders, "dataset", None)
            if dataset is not None:
                dataset.halted = True  # an in-process loader starts no other scene

    def _print(self, line: str) -> None:
        self._bar.write(line, file=sys.stderr)

    # -- ending --------------------------------------------------------------------------------

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """Remove the partial maps of the scenes being written; record what was finished."""
        for scene in self._open.values():
            scene.writer.abort()
        self._open.clear()
        if not self._ended:
            self._end(trainer, gather=False)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Gather every rank's results; rank 0 writes the Collection and the summary. With
        ``on_error="raise"``, a failure on any rank then raises on every rank."""
        self._end(trainer, gather=True)
        failed = self.summary.failed
        if self.on_error == "raise" and failed:
            raise SceneError(failed[0].error)

    def _end(self, trainer: Trainer, gather: bool) -> None:
        if self._bar is None:  # stopped before any work (setup refused the outputs)
            return
        self._ended = True
        self._bar.close()
        results = list(self._results.values())
        if gather and torch.distributed.is_available() and torch.distributed.is_initialized():
            every: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(every, results)
            # every rank found the same finished scenes (skipped): keep those once
            skipped = {r.id: r for rank in every for r in rank if r.status == "skipped"}
            results = [
                *skipped.values(),
                *(r for rank in every for r in rank if r.status != "skipped"),
            ]
        order = {scene: i for i, scene in enumerate(self.scenes)}
        results.sort(key=lambda r: order.get(r.id, len(order)))
        start = getattr(self, "_start", time.perf_counter())
        self.summary = RunSummary(results, time.perf_counter() - start, trainer.global_rank)
        if trainer.global_rank != 0 or self.one_file:
            return
        finished = [(self.paths(r.id)[1], r) for r in results if r.status != "failed"]
        items = [(path, pystac.Item.from_file(str(path))) for path, _ in finished if path.exists()]
        if items:
            with atomic_path(self.folder / COLLECTION) as partial:
                write_collection(
                    partial,
                    items,
                    self.folder.name or "embeddings",
                    f"MoE-MAE embedding maps of {len(items)} Landsat scenes "
                    f"({self.settings['model']}, pool {self.pool}, stride {self.settings['stride']})",
                )
        with atomic_path(self.folder / SUMMARY) as partial:
            partial.write_text(json.dumps(self.summary.to_dict(), indent=1) + "\n")
