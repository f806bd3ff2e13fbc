"""Geo-temporal metadata encoding: (lat, lon, time) -> four cyclic (sin, cos) pairs.

Conventions (shared by the datasets, the model and the docs):

* ``lat``, ``lon``: degrees, tensors of shape ``(B,)``.
* ``time``: POSIX seconds, UTC, shape ``(B,)``, float64 or int64 (float32 is refused: its steps
  are 128 s near 1.5e9, which puts ~3% of timestamps in the wrong hour).
* NaN marks a missing value for one sample; ``None`` marks it missing for the whole batch.
  A missing value is encoded as the pair ``(0, 0)``, exactly as the authors' model saw EuroSAT.
* Latitudes outside [-90, 90], longitudes outside [-180, 180] and infinite values are refused
  (checked in eager mode; FX tracing and ``torch.compile`` skip the checks).
* ``hour_encoding``: ``"utc"`` encodes the true UTC hour; ``"authors"`` the hour the authors'
  published weights were trained with (the first digit of the zero-padded hour; docs/user_guide/fidelity.rst).
"""

from __future__ import annotations

import math
from typing import get_args

import torch
from torch import Tensor

from ..vocabulary import HourEncoding
from .checks import cast, eager_checks_enabled, value_checks_enabled

__all__ = ["METADATA_FIELDS", "HourEncoding", "encode_metadata", "iso_week_and_utc_hour"]

#: Order of the metadata tokens in the encoder sequence (token i is field i; CLS follows at 4).
METADATA_FIELDS: tuple[str, ...] = ("week", "hour", "lat", "lon")

_SECONDS_PER_DAY = 86_400


def check_hour_encoding(hour_encoding: str) -> HourEncoding:
    """Return ``hour_encoding`` if it is one of :data:`HourEncoding`, else raise a ValueError."""
    if hour_encoding not in get_args(HourEncoding):
        raise ValueError(
            f"hour_encoding must be 'utc' (true UTC hour) or 'authors' (the hour rule of the "
            f"authors' published weights), got {hour_encoding!r}"
        )
    return hour_encoding  # type: ignore[return-value]


def _day_of_year(days: Tensor) -> Tensor:
    """0-based day of the (proleptic Gregorian) year of a day count since 1970-01-01.

    H. Hinnant's civil_from_days: ``doe`` counts days in the 400-year era that starts on
    0000-03-01, ``yoe`` years in that era, each year starting on March 1st. January 1st is day
    306 of the March year before it: of ``yoe`` for January and February, of ``yoe - 1`` (which
    ends with the civil year's February, 28 or 29 days) for March to December.
    """
    doe = (days + 719_468) % 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    march_year = yoe - 1 + (doe - (365 * yoe + yoe // 4 - yoe // 100) >= 306)
    # days from the era's start to March 1st of march_year (// 400 counts year 0 of the era,
    # a leap year, for march_year = -1)
    start = 365 * march_year + march_year // 4 - march_year // 100 + march_year // 400
    return doe - start - 306


def iso_week_and_utc_hour(time: Tensor) -> tuple[Tensor, Tensor]:
    """ISO-8601 week number (1..53) and UTC hour (0..23) of POSIX timestamps.

    The calendar arithmetic runs once per batch in float64, whose whole numbers are exact far
    beyond any timestamp: no integer conversions, and a NaN (missing) time gives NaN.

    Args:
        time: POSIX seconds (UTC), shape ``(B,)``, float64 or an integer type.

    Returns:
        ``(week, hour)``, float64 whole numbers of shape ``(B,)``, NaN where ``time`` is NaN.
    """
    t = cast(time, torch.float64)
    days = t // _SECONDS_PER_DAY
    hour = ((t - days * _SECONDS_PER_DAY) // 3600).clamp(0, 23)
    # The ISO year is the year of the week's Thursday; 1970-01-01 was a Thursday.
    from_monday = days + 3
    thursday = from_monday - from_monday % 7
    return _day_of_year(thursday) // 7 + 1, hour


#: Largest absolute value of each angular field, in degrees.
_DEGREE_LIMITS = {"lat": 90.0, "lon": 180.0}


def _check_field(name: str, value: Tensor | None, batch_size: int) -> None:
    if value is None:
        return
    if not isinstance(value, Tensor):
        raise TypeError(
            f"metadata {name!r} must be a torch.Tensor of shape ({batch_size},), got {type(value).__name__}"
        )
    if value.shape != (batch_size,):
        raise ValueError(
            f"metadata {name!r} must have shape ({batch_size},) to match the image batch, got {tuple(value.shape)}"
        )
    if name == "time" and value.is_floating_point() and value.dtype != torch.float64:
        raise TypeError(
            f"metadata 'time' is {value.dtype}: pass POSIX seconds as float64 or int64 "
            "(float32 steps are 128 s near 1.5e9, so the hour of ~3% of timestamps would be wrong)"
        )
    if not value_checks_enabled():
        return
    # NaN means "missing"; anything else must be a real coordinate / timestamp.
    v = value.double()
    limit = _DEGREE_LIMITS.get(name, math.inf)
    bad = torch.isinf(v) | (v.abs() > limit)  # NaN compares False: stays "missing"
    if bad.any():  # one host synchronisation per field
        idx = bad.nonzero().flatten().tolist()
        what = f"in [-{limit:g}, {limit:g}] degrees" if name in _DEGREE_LIMITS else "finite"
        raise ValueError(
            f"metadata {name!r} must be {what} or NaN (missing), got {v[idx].tolist()} in samples "
            f"{idx}: fix the values, or pass NaN where they are unknown"
        )


def encode_metadata(
    lat: Tensor | None,
    lon: Tensor | None,
    time: Tensor | None,
    batch_size: int,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    hour_encoding: HourEncoding = "utc",
) -> Tensor:
    """Encode metadata as the four (sin, cos) pairs the encoder consumes.

    week -> ``2*pi*w/52`` (ISO week), hour -> ``2*pi*h/24``, lat/lon -> their angle in radians.
    ``h`` is the UTC hour (``"utc"``) or, with ``"authors"``, the first digit of the zero-padded
    two-digit UTC hour (09 -> 0, 10 and 11 -> 1): the authors' loader parsed the file name's
    ``T093351`` with ``strptime("%Y%m%dT%H")`` on ``"T0"``, and their published weights were
    trained with those hours.

    Args:
        lat: latitude in degrees ``(B,)`` or None.
        lon: longitude in degrees ``(B,)`` or None.
        time: POSIX seconds UTC ``(B,)`` or None.
        batch_size: B, used to validate shapes and to build all-missing encodings.
        device: device of the result (defaults to that of the first given field).
        dtype: dtype of the result.
        hour_encoding: ``"utc"`` or ``"authors"`` (see above).

    Returns:
        ``(B, 4, 2)`` in the order of :data:`METADATA_FIELDS`; missing entries are ``(0, 0)``.

    Raises:
        ValueError: (eager mode) a wrong shape, a latitude outside [-90, 90] or a longitude
            outside [-180, 180] degrees, or an infinite value (use NaN for "missing").
        TypeError: (eager mode) a non-tensor field or a ``time`` that is neither float64 nor an
            integer type.
    """
    check_hour_encoding(hour_encoding)
    if eager_checks_enabled():
        for name, value in (("lat", lat), ("lon", lon), ("time", time)):
            _check_field(name, value, batch_size)
    if device is None:
        device = next((v.device for v in (lat, lon, time) if v is not None), torch.device("cpu"))

    def field(value: Tensor | None) -> Tensor:
        """``(B,)`` float64 on ``device``; NaN where missing."""
        if value is None:
            return torch.full((batch_size,), math.nan, device=device, dtype=torch.float64)
        return cast(value, torch.float64, device)

    # NaN (missing) and, unchecked, infinite values propagate through the arithmetic to NaN pairs,
    # which become (0, 0): no per-field masks.
    week, hour = iso_week_and_utc_hour(field(time))
    if hour_encoding == "authors":
        hour = hour // 10
    radians = math.pi / 180
    angles = torch.stack(
        [
            2 * math.pi * week / 52,
            2 * math.pi * hour / 24,
            field(lat) * radians,
            field(lon) * radians,
        ],
        dim=1,
    )  # (B, 4)
    pairs = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1)
    return torch.nan_to_num(pairs, nan=0.0).to(dtype)
