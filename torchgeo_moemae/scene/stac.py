"""STAC records of embedding maps: one Item per scene (``proj``, ``raster`` and ``file``
extensions), one Collection per run, and the check that makes a rerun skip finished maps.

An Item has the map as asset ``embedding`` (a COG, with its size and SHA-256 ``file:checksum``),
the quicklook as asset ``quicklook``, the acquisition ``datetime``, the map's footprint in lon/lat
as ``geometry``, and under ``moemae:*`` what made it (:func:`embedding_settings`: model, weights,
pool, grid, masks; the package version) and what it holds (windows embedded, left out as fill or
cloud, whether ``QA_PIXEL`` was read).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from pyproj import CRS, Transformer
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, NoDataStrings, RasterBand, RasterExtension

from ..outputs import OVERWRITE_HINT
from ..utils import file_sha256

__all__ = [
    "PREFIX",
    "check_existing",
    "embedding_settings",
    "map_item",
    "multihash_sha256",
    "write_collection",
    "write_json",
]

#: prefix of this package's STAC fields
PREFIX = "moemae:"
#: asset keys of the map and its quicklook
EMBEDDING, QUICKLOOK = "embedding", "quicklook"


def embedding_settings(
    provenance: dict[str, Any],
    pool: str,
    window_size: int,
    stride: int,
    max_fill_fraction: float,
    max_cloud_fraction: float,
) -> dict[str, Any]:
    """What decides a map's values (two maps with equal settings of one scene are the same map).

    Args:
        provenance: :func:`~torchgeo_moemae.outputs.provenance_record` of the encoder.
    """
    return {
        "model": provenance["model"],
        "weights": provenance["weights"].get("description"),
        "weights_sha256": provenance["weights"].get("sha256"),
        "pool": pool,
        "features": "tokens before the final LayerNorm",
        "normalisation": "BigEarthNet-L z-score of Collection 2 DN",
        "window_size": window_size,
        "stride": stride,
        "max_fill_fraction": max_fill_fraction,
        "max_cloud_fraction": max_cloud_fraction,
    }


def multihash_sha256(path: str | Path) -> str:
    """``file:checksum`` of a file: the SHA-256 multihash (``1220`` + hex digest)."""
    return "1220" + file_sha256(path)


@functools.lru_cache(maxsize=16)
def _to_lonlat(crs_wkt: str) -> Transformer:
    """CRS -> lon/lat (built once per CRS: a run's scenes share a few UTM zones)."""
    return Transformer.from_crs(CRS.from_wkt(crs_wkt), CRS.from_epsg(4326), always_xy=True)


@functools.lru_cache(maxsize=16)
def _epsg(crs_wkt: str) -> int | None:
    """The EPSG code of a CRS, if it has one (a database lookup: once per CRS)."""
    return CRS.from_wkt(crs_wkt).to_epsg()


def _footprint(crs_wkt: str, transform: Sequence[float], shape: tuple[int, int]) -> dict[str, Any]:
    """The map's outline in lon/lat (a polygon, 8 points per side to follow the projection)."""
    a, b, c, d, e, f = transform[:6]
    rows, cols = shape
    t = np.linspace(0, 1, 9)[:-1]
    ring_px = [
        *((u * cols, 0.0) for u in t),
        *((cols, u * rows) for u in t),
        *(((1 - u) * cols, rows) for u in t),
        *((0.0, (1 - u) * rows) for u in t),
    ]
    x = [a * px + b * py + c for px, py in ring_px]
    y = [d * px + e * py + f for px, py in ring_px]
    lon, lat = _to_lonlat(crs_wkt).transform(x, y)
    ring = [[float(o), float(a_)] for o, a_ in zip(lon, lat, strict=True)]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def map_item(
    scene_id: str,
    *,
    time: float,
    crs_wkt: str,
    transform: Sequence[float],
    shape: tuple[int, int],
    res: float,
    stride: int,
    dim: int,
    tif: Path,
    png: Path | None,
    checksum: str,
    size: int,
    properties: dict[str, Any],
    collection: Path | None = None,
) -> pystac.Item:
    """The STAC Item of one embedding map (asset hrefs relative to the Item's folder).

    Args:
        time: acquisition time, POSIX seconds UTC; NaN (unknown): the Item gets the interval
            1970-01-01 .. now instead of a datetime.
        transform, shape: the map's pixel -> CRS transform and ``(rows, cols)``.
        res, stride: the scene's pixel size and the window step (the map's pixel is ``res * stride``).
        tif, png: the map and its quicklook (None: none); ``checksum``/``size``: the map file's.
        properties: more properties (``moemae:*``).
        collection: the run's Collection file, in the Item's folder (None: no Collection).
    """
    geometry = _footprint(crs_wkt, transform, shape)
    ring = np.asarray(geometry["coordinates"][0])
    bbox = [*ring.min(axis=0).tolist(), *ring.max(axis=0).tolist()]
    when = None if math.isnan(time) else dt.datetime.fromtimestamp(time, dt.UTC)
    props = dict(properties)
    if when is None:
        now = pystac.utils.datetime_to_str(dt.datetime.now(dt.UTC))
        props |= {"start_datetime": "1970-01-01T00:00:00Z", "end_datetime": now}
    item = pystac.Item(
        id=scene_id,
        geometry=geometry,
        bbox=bbox,
        datetime=when,
        properties=props,
    )
    if collection is not None:
        item.collection_id = collection.parent.name
        item.add_link(
            pystac.Link(
                pystac.RelType.COLLECTION, f"./{collection.name}", media_type=pystac.MediaType.JSON
            )
        )
    a, b, c, d, e, f = transform[:6]
    rows, cols = shape
    xs, ys = [c, c + a * cols], [f, f + e * rows]
    epsg = _epsg(crs_wkt)
    ProjectionExtension.ext(item, add_if_missing=True).apply(
        code=f"EPSG:{epsg}" if epsg else None,
        wkt2=None if epsg else crs_wkt,
        shape=[rows, cols],
        transform=[a, b, c, d, e, f],
        bbox=[min(xs), min(ys), max(xs), max(ys)],
    )
    asset = pystac.Asset(
        href=f"./{tif.name}",
        media_type=pystac.MediaType.COG,
        roles=["data"],
        title=f"embedding map ({dim} float32 bands, NaN = nodata)",
    )
    item.add_asset(EMBEDDING, asset)
    band = RasterBand.create(
        nodata=NoDataStrings.NAN, data_type=DataType.FLOAT32, spatial_resolution=res * stride
    )
    RasterExtension.ext(asset, add_if_missing=True).apply(bands=[band] * dim)
    FileExtension.ext(asset, add_if_missing=True).apply(checksum=checksum, size=size)
    if png is not None:
        item.add_asset(
            QUICKLOOK,
            pystac.Asset(
                href=f"./{png.name}",
                media_type=pystac.MediaType.PNG,
                roles=["overview"],
                title="PCA-RGB quicklook",
            ),
        )
    return item


def write_json(obj: pystac.STACObject, path: Path) -> None:
    """Write a STAC object's JSON to ``path`` (its links and hrefs as they are; no self link;
    compact, as STAC APIs serve it)."""
    data = obj.to_dict(include_self_link=False, transform_hrefs=False)
    path.write_text(json.dumps(data) + "\n")


def check_existing(tif: Path, item_path: Path, settings: dict[str, Any], overwrite: bool) -> bool:
    """Whether the map ``tif`` with its Item ``item_path`` is finished with ``settings``.

    True: the Item records these settings and the map's checksum verifies (skip the scene).
    False: nothing there, ``overwrite``, or an unfinished map of these settings (the Item is
    written first, so a run stopped before the map was in place left a mismatching checksum).

    Raises:
        FileExistsError: an output made otherwise (other settings, not by this engine, or an
            unreadable Item) is kept unless ``overwrite``.
    """
    if overwrite:
        return False
    if not item_path.exists():
        if tif.exists():
            raise FileExistsError(
                f"{tif} already exists without its STAC item {item_path.name}; {OVERWRITE_HINT}"
            )
        return False
    try:
        item = pystac.Item.from_file(str(item_path))
        recorded = item.properties[PREFIX + "settings"]
        expected = json.loads(json.dumps(settings))
        asset = item.assets[EMBEDDING]
        checksum = asset.extra_fields["file:checksum"]
    except Exception as err:  # any malformed file: pystac raises many kinds
        raise FileExistsError(
            f"{item_path}: not a STAC item of an embedding map ({type(err).__name__}: {err}); "
            f"{OVERWRITE_HINT}"
        ) from None
    if recorded != expected:
        diff = ", ".join(
            f"{k} {recorded.get(k)!r} != {v!r}" for k, v in expected.items() if recorded.get(k) != v
        )
        raise FileExistsError(f"{tif} was made with other settings ({diff}); {OVERWRITE_HINT}")
    return tif.is_file() and multihash_sha256(tif) == checksum


def write_collection(
    path: Path, items: Sequence[tuple[Path, pystac.Item]], collection_id: str, description: str
) -> pystac.Collection:
    """The STAC Collection of a run's maps at ``path`` (``items``: each Item's file and Item;
    their extent, and links relative to ``path``'s folder)."""
    extent = pystac.Extent.from_items([item for _, item in items])
    collection = pystac.Collection(
        id=collection_id,
        description=description,
        extent=extent,
        license="other",
        stac_extensions=[
            ProjectionExtension.get_schema_uri(),
            RasterExtension.get_schema_uri(),
            FileExtension.get_schema_uri(),
        ],
    )
    for file, item in items:
        collection.add_link(
            pystac.Link(
                pystac.RelType.ITEM,
                f"./{file.relative_to(path.parent).as_posix()}",
                media_type=pystac.MediaType.GEOJSON,
                title=item.id,
            )
        )
    write_json(collection, path)
    return collection
