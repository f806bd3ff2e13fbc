"""Landsat Collection 2 Level-2 ``MTL.txt`` metadata: acquisition time, UTM grid, band files."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from pyproj import CRS
from rasterio import Affine

from ..bands import BANDS

__all__ = ["LandsatMTL", "parse_mtl", "read_mtl"]

_LINE = re.compile(r"^\s*(\w+)\s*=\s*(.*?)\s*$")


def parse_mtl(text: str) -> dict[str, dict[str, str]]:
    """The ``GROUP``/``KEY = value`` text of an MTL file -> ``{group: {key: value}}``.

    Values are returned as strings with their quotes removed; a key is stored under its innermost
    group (``PRODUCT_CONTENTS``, ``IMAGE_ATTRIBUTES``, ``PROJECTION_ATTRIBUTES``, ...), so that the
    Level-1 records of a Level-2 file do not shadow the Level-2 values.
    """
    groups: dict[str, dict[str, str]] = {}
    stack: list[str] = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        key, value = match.groups()
        if key == "GROUP":
            stack.append(value)
            groups.setdefault(value, {})
        elif key == "END_GROUP":
            if stack:
                stack.pop()
        elif stack:
            groups[stack[-1]].setdefault(key, value.strip('"'))
    return groups


@dataclass(frozen=True)
class LandsatMTL:
    """What the scene embedding needs from a Collection 2 Level-2 MTL file.

    Attributes:
        path: the MTL file (for error messages).
        time: acquisition time, POSIX seconds UTC (``DATE_ACQUIRED`` + ``SCENE_CENTER_TIME``).
        utm_zone: ``UTM_ZONE`` (Landsat grids use the northern zone, negative northings in the south).
        ul_x, ul_y: ``CORNER_UL_PROJECTION_X/Y_PRODUCT``: the CENTRE of the upper-left pixel, metres.
        cell_size: ``GRID_CELL_SIZE_REFLECTIVE`` (30 m).
        height, width: ``REFLECTIVE_LINES``, ``REFLECTIVE_SAMPLES``.
        band_files: ``SR_B1..SR_B7`` -> file name (``FILE_NAME_BAND_1..7``).
        qa_pixel_file: ``FILE_NAME_QUALITY_L1_PIXEL`` or None.
    """

    path: str
    time: float
    utm_zone: int
    ul_x: float
    ul_y: float
    cell_size: float
    height: int
    width: int
    band_files: dict[str, str]
    qa_pixel_file: str | None

    @property
    def crs(self) -> CRS:
        """WGS 84 / UTM zone ``utm_zone`` N (EPSG 326xx)."""
        return CRS.from_epsg(32600 + self.utm_zone)

    @property
    def transform(self) -> Affine:
        """Pixel -> map transform; the MTL corners are pixel centres, so the origin (the upper-left
        pixel's outer corner) is half a pixel up and left of ``(ul_x, ul_y)``."""
        half = self.cell_size / 2
        return Affine(self.cell_size, 0.0, self.ul_x - half, 0.0, -self.cell_size, self.ul_y + half)


def _field(groups: dict[str, dict[str, str]], group: str, key: str, path: str) -> str:
    value = groups.get(group, {}).get(key)
    if value is None or value == "":
        raise ValueError(f"{path}: MTL field {group}/{key} is missing")
    return value


def _number(groups: dict[str, dict[str, str]], group: str, key: str, path: str) -> float:
    value = _field(groups, group, key, path)
    try:
        return float(value)
    except ValueError:
        raise ValueError(
            f"{path}: MTL field {group}/{key} must be a number, got {value!r}"
        ) from None


def _acquisition_time(date: str, clock: str, path: str) -> float:
    """``2020-09-27`` + ``11:10:50.3140030Z`` -> POSIX seconds (float64, sub-second kept)."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2}):(\d{2}(?:\.\d*)?)Z?", clock)
    try:
        day = dt.datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise ValueError(
            f"{path}: MTL field DATE_ACQUIRED must be YYYY-MM-DD, got {date!r}"
        ) from None
    if match is None:
        raise ValueError(
            f"{path}: MTL field SCENE_CENTER_TIME must be HH:MM:SS[.fff]Z, got {clock!r}"
        )
    hours, minutes, seconds = int(match[1]), int(match[2]), float(match[3])
    return day.timestamp() + hours * 3600 + minutes * 60 + seconds


def read_mtl(source: str | Path, text: str | None = None) -> LandsatMTL:
    """Read a Landsat 8/9 Collection 2 Level-2 ``*_MTL.txt``.

    Args:
        source: the MTL path (read unless ``text`` is given; also names the file in errors).
        text: the file's contents, e.g. when read from a ``.tar``.

    Raises:
        ValueError: a required field is missing or malformed, or the grid is not UTM.
    """
    path = str(source)
    groups = parse_mtl(Path(source).read_text() if text is None else text)
    if not groups:
        raise ValueError(f"{path}: not a Landsat MTL file (no 'GROUP = ...' lines)")
    image, proj, files = "IMAGE_ATTRIBUTES", "PROJECTION_ATTRIBUTES", "PRODUCT_CONTENTS"
    time = _acquisition_time(
        _field(groups, image, "DATE_ACQUIRED", path),
        _field(groups, image, "SCENE_CENTER_TIME", path),
        path,
    )
    projection = _field(groups, proj, "MAP_PROJECTION", path)
    if projection != "UTM":
        raise ValueError(
            f"{path}: MAP_PROJECTION must be 'UTM' (polar scenes are not supported), got {projection!r}"
        )
    zone = int(_number(groups, proj, "UTM_ZONE", path))
    if not 1 <= zone <= 60:
        raise ValueError(f"{path}: UTM_ZONE must be in 1..60, got {zone}")
    band_files = {
        band: _field(groups, files, f"FILE_NAME_BAND_{i + 1}", path) for i, band in enumerate(BANDS)
    }
    return LandsatMTL(
        path=path,
        time=time,
        utm_zone=zone,
        ul_x=_number(groups, proj, "CORNER_UL_PROJECTION_X_PRODUCT", path),
        ul_y=_number(groups, proj, "CORNER_UL_PROJECTION_Y_PRODUCT", path),
        cell_size=_number(groups, proj, "GRID_CELL_SIZE_REFLECTIVE", path),
        height=int(_number(groups, proj, "REFLECTIVE_LINES", path)),
        width=int(_number(groups, proj, "REFLECTIVE_SAMPLES", path)),
        band_files=band_files,
        qa_pixel_file=groups.get(files, {}).get("FILE_NAME_QUALITY_L1_PIXEL"),
    )
