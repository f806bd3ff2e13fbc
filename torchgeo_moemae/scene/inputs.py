"""The scenes of a run: product folders or ``.tar``\\ s, globs, text files of paths, and STAC Items
or ItemCollections, resolved into :class:`SceneSource`\\ s (no torch import: the command line checks
its inputs with it before loading a model).

STAC Items name their band assets as the Landsat Collection 2 Level-2 items of USGS's and
Microsoft Planetary Computer's STAC APIs do (:data:`STAC_BAND_ASSETS`); ``SR_B1`` .. ``SR_B7`` and
``QA_PIXEL`` are accepted too. Their hrefs are what rasterio opens: local paths, or URLs GDAL reads
(``https://`` signed URLs; ``s3://`` through GDAL's ``/vsis3/``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..bands import BANDS

__all__ = ["QA_ASSETS", "STAC_BAND_ASSETS", "SceneSource", "resolve_inputs"]

#: Landsat C2 L2 band -> its STAC asset key (USGS and Planetary Computer items)
STAC_BAND_ASSETS: dict[str, str] = {
    "SR_B1": "coastal",
    "SR_B2": "blue",
    "SR_B3": "green",
    "SR_B4": "red",
    "SR_B5": "nir08",
    "SR_B6": "swir16",
    "SR_B7": "swir22",
}
#: asset keys of the ``QA_PIXEL`` band
QA_ASSETS = ("qa_pixel", "QA_PIXEL")
#: suffixes of a text file listing inputs, one per line
LIST_SUFFIXES = (".txt", ".lst", ".list")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class SceneSource:
    """One scene to embed.

    Attributes:
        id: the scene's name; its outputs are ``<id>.tif``, ``<id>.json`` (STAC Item), ``<id>.png``.
        href: where it came from (product path, or ``<STAC file>#<item id>``), for messages and
            provenance.
        kind: ``"product"`` (folder or ``.tar``), ``"stac"`` (band hrefs) or ``"dataset"`` (a
            TorchGeo ``RasterDataset`` given through the Python API).
        bands: ``"stac"``: the hrefs of ``SR_B1`` .. ``SR_B7``.
        qa: ``"stac"``: the href of ``QA_PIXEL``, if the item has one.
        time: the acquisition time, POSIX seconds UTC (``"stac"``: the item's; otherwise an
            override of the product's or dataset's own).
        dataset: ``"dataset"``: the dataset.
    """

    id: str
    href: str
    kind: Literal["product", "stac", "dataset"] = "product"
    bands: tuple[str, ...] = ()
    qa: str | None = None
    time: float | None = None
    dataset: Any = field(default=None, compare=False)


def _product(path: Path) -> SceneSource:
    name = path.name[: -len(".tar")] if path.name.endswith(".tar") else path.name
    return SceneSource(id=name, href=str(path))


def _href(href: str, base: Path) -> str:
    """An asset href as rasterio opens it: URLs as they are, relative paths against ``base``."""
    if "://" in href:
        scheme, rest = href.split("://", 1)
        if scheme == "file":
            return rest
        if scheme == "s3":
            return f"/vsis3/{rest}"
        return href
    return str((base / href).resolve()) if not Path(href).is_absolute() else href


def _stac_item(item: Any, base: Path, where: str) -> SceneSource:
    """A :class:`SceneSource` of a ``pystac.Item`` (relative hrefs resolved against ``base``)."""

    def asset(keys: Sequence[str]) -> str | None:
        for key in keys:
            if key in item.assets:
                return _href(item.assets[key].href, base)
        return None

    bands = []
    for band in BANDS:
        href = asset((STAC_BAND_ASSETS[band], band))
        if href is None:
            raise ValueError(
                f"{where}: STAC item {item.id} has no asset {STAC_BAND_ASSETS[band]!r} ({band}); "
                f"expected the Landsat C2 L2 band assets {', '.join(STAC_BAND_ASSETS.values())}"
            )
        bands.append(href)
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise ValueError(f"{where}: STAC item {item.id} has no datetime")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return SceneSource(
        id=item.id,
        href=f"{where}#{item.id}",
        kind="stac",
        bands=tuple(bands),
        qa=asset(QA_ASSETS),
        time=when.timestamp(),
    )


def _stac_file(path: Path) -> list[SceneSource]:
    """The items of a STAC Item or ItemCollection (FeatureCollection) JSON file."""
    import pystac

    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable STAC JSON file ({err})") from None
    kind = data.get("type") if isinstance(data, dict) else None
    try:
        if kind == "Feature":
            items = [pystac.Item.from_dict(data)]
        elif kind == "FeatureCollection":
            items = list(pystac.ItemCollection.from_dict(data))
        else:
            raise ValueError(f"type {kind!r}")
    except (ValueError, KeyError, TypeError, pystac.STACError) as err:
        raise ValueError(
            f"{path}: expected a STAC Item or ItemCollection (type Feature or FeatureCollection): {err}"
        ) from None
    if not items:
        raise ValueError(f"{path}: the ItemCollection holds no items")
    return [_stac_item(item, path.parent, str(path)) for item in items]


def _list_file(path: Path, seen: set[Path]) -> list[SceneSource]:
    """The inputs named in a text file, one per line (blank lines and ``#`` comments skipped;
    relative paths and globs are relative to the file's folder)."""
    if path in seen:
        raise ValueError(f"{path}: the list of inputs includes itself")
    lines = [line.strip() for line in path.read_text().splitlines()]
    entries = [line for line in lines if line and not line.startswith("#")]
    if not entries:
        raise ValueError(f"{path}: the list of inputs names no input")
    names = [e if Path(e).is_absolute() else str(path.parent / e) for e in entries]
    return _resolve(names, seen | {path})


def _resolve_one(value: str | Path, seen: set[Path]) -> list[SceneSource]:
    path = Path(value)
    if not path.exists():
        if _GLOB_CHARS & set(str(value)):
            matches = sorted(glob.glob(str(value)))
            if not matches:
                raise FileNotFoundError(f"input {value} matches no file or folder")
            return _resolve(matches, seen)
        raise FileNotFoundError(f"input {value} does not exist")
    if path.is_dir():
        return [_product(path)]
    name = path.name.lower()
    if name.endswith(".tar"):
        return [_product(path)]
    if name.endswith(".json"):
        return _stac_file(path)
    if name.endswith("_mtl.txt"):
        raise ValueError(f"input {path} is an MTL file: pass its product folder or .tar")
    if name.endswith(LIST_SUFFIXES):
        return _list_file(path.resolve(), seen)
    raise ValueError(
        f"input {path}: expected a product folder or .tar, a STAC Item/ItemCollection .json, "
        f"a {'/'.join(LIST_SUFFIXES)} list of inputs, or a glob"
    )


def _resolve(inputs: Iterable[Any], seen: set[Path]) -> list[SceneSource]:
    import pystac

    scenes: list[SceneSource] = []
    for value in inputs:
        if isinstance(value, SceneSource):
            scenes.append(value)
        elif isinstance(value, pystac.Item):
            scenes.append(_stac_item(value, Path.cwd(), value.get_self_href() or "STAC item"))
        elif isinstance(value, pystac.ItemCollection):
            scenes += _resolve(list(value), seen)
        elif isinstance(value, str | Path):
            scenes += _resolve_one(value, seen)
        elif hasattr(value, "bounds") and hasattr(value, "res"):  # a torchgeo RasterDataset
            scenes.append(
                SceneSource(
                    id=type(value).__name__, href=repr(value), kind="dataset", dataset=value
                )
            )
        else:
            raise TypeError(
                "inputs are paths, globs, STAC items or torchgeo RasterDatasets, "
                f"got {type(value).__name__}"
            )
    return scenes


def resolve_inputs(
    inputs: str | Path | Any | Sequence[Any], time: float | None = None
) -> list[SceneSource]:
    """The scenes of ``inputs``, in order.

    Args:
        inputs: one or several of: a product folder or ``.tar``; a glob of them (``"archive/*.tar"``);
            a text file (``.txt``/``.lst``/``.list``) naming inputs, one per line; a STAC Item or
            ItemCollection ``.json`` (what ``pystac-client``'s ``item_collection().save_object()``
            writes) or ``pystac`` object; a TorchGeo ``RasterDataset`` (Python API only).
        time: override of the acquisition time (POSIX seconds UTC; NaN: unknown) of every scene.

    Raises:
        FileNotFoundError: an input (or every match of a glob) is missing.
        ValueError: an input is of no known kind, a STAC item lacks a band asset or a datetime,
            or two scenes share an id (their outputs would collide).
    """
    values = (
        list(inputs) if isinstance(inputs, Sequence) and not isinstance(inputs, str) else [inputs]
    )
    scenes = _resolve(values, set())
    if time is not None:
        scenes = [dataclasses.replace(s, time=float(time)) for s in scenes]
    first: dict[str, SceneSource] = {}
    for scene in scenes:
        if scene.id in first:
            raise ValueError(
                f"two inputs are both scene {scene.id} ({first[scene.id].href} and {scene.href}): "
                "outputs are named by scene, pass each scene once"
            )
        first[scene.id] = scene
    if not scenes:
        raise ValueError("no input scene")
    return scenes
