"""Geo-temporal metadata of a patch: UTM bounds -> (lat, lon) and acquisition date -> POSIX time."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from torch import Tensor

from .utils import InvalidSampleError


@lru_cache(maxsize=64)
def to_wgs84(crs: str) -> Transformer:
    """One cached transformer per source CRS (WKT or ``EPSG:n``), x/y = easting/northing -> lon/lat.

    Building a transformer costs milliseconds, more than reading a patch; a BigEarthNet split
    spans a dozen UTM zones, so a small cache keyed on the CRS text serves every sample.
    """
    return Transformer.from_crs(CRS.from_user_input(crs), CRS.from_epsg(4326), always_xy=True)


def bounds_center_lonlat(label: dict[str, Any], path: str | Path) -> tuple[float, float]:
    """Centre of a label JSON's UTM bounds (``coordinates`` + ``projection``) in WGS84 degrees.

    Returns:
        (lat, lon).

    Raises:
        InvalidSampleError: naming ``path`` if the fields are missing, the CRS is unknown or the
            result is not a valid position.
    """
    try:
        coords = label["coordinates"]
        x = (float(coords["ulx"]) + float(coords["lrx"])) / 2
        y = (float(coords["uly"]) + float(coords["lry"])) / 2
        transformer = to_wgs84(str(label["projection"]))
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidSampleError(
            f"{path}: bad or missing coordinates/projection ({err!r})"
        ) from err
    except CRSError as err:
        raise InvalidSampleError(f"{path}: unknown projection ({err})") from err
    lon, lat = transformer.transform(x, y)
    # Projections wrap silently (a northing of 2e7 m still yields a "valid" point), so also
    # require the point to map back onto itself: that fails outside the projection's domain.
    x_back, y_back = transformer.transform(lon, lat, direction="INVERSE")
    valid = math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180
    if not valid or not math.hypot(x_back - x, y_back - y) <= 1.0:
        raise InvalidSampleError(
            f"{path}: bounds centre ({x}, {y}) maps to lat={lat:.4f}, lon={lon:.4f}: out of range"
        )
    return lat, lon


def parse_acquisition_date(value: object, path: str | Path) -> float:
    """``"YYYY-MM-DD HH:MM:SS"`` (UTC; ISO 8601 with an offset is converted) -> POSIX seconds.

    The hour comes from the full timestamp, never from the file name: the reference loader took
    the first digit of the file name's hour, turning 9/10/11 into 0/1/9 (docs/user_guide/fidelity.rst).

    Raises:
        InvalidSampleError: naming ``path`` if the value is missing or unparseable.
    """
    if not isinstance(value, str):
        raise InvalidSampleError(f"{path}: acquisition_date missing or not a string ({value!r})")
    text = value.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError as err:
        raise InvalidSampleError(f"{path}: unparseable acquisition_date {value!r}") from err
    if len(text) <= len("YYYY-MM-DD"):
        # A bare date would silently become midnight: a wrong hour is worse than an error.
        raise InvalidSampleError(f"{path}: acquisition_date {value!r} has no time of day")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def authors_filename_time(patch_id: str) -> float:
    """The time the authors' loader derived from a BigEarthNet patch id, as POSIX seconds (UTC).

    ``strptime(patch_id.split("_")[2][0:10], "%Y%m%dT%H")``: the date and the FIRST digit of the
    hour (``S2A_MSIL2A_20170613T101031_..`` -> 01:00, ``..T093351..`` -> 00:00, and ``..T93351..``,
    written without the leading zero, -> 09:00). Only to reproduce the published weights' inputs.

    Raises:
        InvalidSampleError: naming the id if it has no parseable date (their loader then failed).
    """
    try:
        when = datetime.strptime(patch_id.split("_")[2][0:10], "%Y%m%dT%H")
    except (IndexError, ValueError) as err:
        raise InvalidSampleError(
            f"{patch_id}: patch id has no date in the authors' format "
            f"(S2A_MSIL2A_YYYYMMDDTHHMMSS_..): {err}"
        ) from err
    return when.replace(tzinfo=UTC).timestamp()


def metadata_tensors(lat: float, lon: float, time: float) -> dict[str, Tensor]:
    """The sample keys: ``lat``/``lon`` float32 degrees, ``time`` float64 POSIX seconds (0-dim).

    float64 for ``time`` because float32 has a 128 s resolution at 1.5e9 s, which loses minutes.
    """
    return {
        "lat": torch.tensor(lat, dtype=torch.float32),
        "lon": torch.tensor(lon, dtype=torch.float32),
        "time": torch.tensor(time, dtype=torch.float64),
    }


def missing_metadata() -> dict[str, Tensor]:
    """NaN metadata, so batches without location/time collate like BigEarthNet's."""
    return metadata_tensors(math.nan, math.nan, math.nan)
