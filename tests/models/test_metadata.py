"""ISO week / UTC hour from POSIX seconds, and the (sin, cos) metadata encoding."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import torch

from torchgeo_moemae.models.metadata import encode_metadata, iso_week_and_utc_hour


def test_iso_week_and_hour_match_datetime() -> None:
    rng = np.random.default_rng(0)
    # Random instants 1950..2100 plus every day around several new years (ISO week 52/53/1 edge cases).
    stamps = list(rng.uniform(-6e8, 4.1e9, size=3000))
    for year in (2015, 2016, 2020, 2021, 2026, 2027):
        base = dt.datetime(year, 12, 25, tzinfo=dt.UTC).timestamp()
        stamps += [base + d * 86_400 + 3_599 for d in range(14)]
    t = torch.tensor(stamps, dtype=torch.float64)
    week, hour = iso_week_and_utc_hour(t)
    for s, w, h in zip(stamps, week.tolist(), hour.tolist(), strict=True):
        d = dt.datetime.fromtimestamp(s, tz=dt.UTC)
        assert (w, h) == (d.isocalendar().week, d.hour), d


def test_iso_week_across_century_leap_rules() -> None:
    """Days around New Year and February's end in years that are, or are not, leap by the 100/400 rules."""
    stamps = []
    for year in (1600, 1700, 1900, 2000, 2100, 2400):
        for month, day in ((1, 1), (2, 28), (3, 1), (12, 25)):
            base = dt.datetime(year, month, day, tzinfo=dt.UTC).timestamp()
            stamps += [base + d * 86_400 + 7_201 for d in range(-3, 11)]
    week, hour = iso_week_and_utc_hour(torch.tensor(stamps, dtype=torch.float64))
    for s, w, h in zip(stamps, week.tolist(), hour.tolist(), strict=True):
        d = dt.datetime.fromtimestamp(s, tz=dt.UTC)
        assert (w, h) == (d.isocalendar().week, d.hour), d
    week, hour = iso_week_and_utc_hour(torch.tensor([float("nan")], dtype=torch.float64))
    assert week.isnan().all() and hour.isnan().all()  # missing stays missing


def test_encoding_values_and_missing() -> None:
    t = dt.datetime(2017, 6, 13, 10, 10, 31, tzinfo=dt.UTC).timestamp()  # ISO week 24, 10 h UTC
    lat = torch.tensor([52.0, float("nan")])
    lon = torch.tensor([5.0, 7.0])
    time = torch.tensor([t, float("nan")], dtype=torch.float64)
    meta = encode_metadata(lat, lon, time, 2)
    assert meta.shape == (2, 4, 2)
    expected = [2 * math.pi * 24 / 52, 2 * math.pi * 10 / 24, math.radians(52), math.radians(5)]
    for i, angle in enumerate(expected):
        torch.testing.assert_close(meta[0, i], torch.tensor([math.sin(angle), math.cos(angle)]))
    assert meta[1, :3].abs().sum() == 0  # missing time (week, hour) and lat
    torch.testing.assert_close(
        meta[1, 3], torch.tensor([math.sin(math.radians(7)), math.cos(math.radians(7))])
    )
    torch.testing.assert_close(encode_metadata(None, None, None, 3), torch.zeros(3, 4, 2))


def test_authors_hour_encoding_keeps_the_first_digit() -> None:
    # The authors' loader parsed "T093351" with strptime("%Y%m%dT%H") on "T0" (docs/user_guide/fidelity.rst).
    base = dt.datetime(2017, 6, 13, tzinfo=dt.UTC).timestamp()
    time = torch.tensor([base + h * 3600 + 1800 for h in range(24)], dtype=torch.float64)
    nan = torch.full((24,), float("nan"))
    utc = encode_metadata(nan, nan, time, 24)
    authors = encode_metadata(nan, nan, time, 24, hour_encoding="authors")
    for h in range(24):
        angle = 2 * math.pi * (h // 10) / 24  # 09 -> 0, 10/11 -> 1, 20-23 -> 2
        expected = torch.tensor([math.sin(angle), math.cos(angle)])
        torch.testing.assert_close(authors[h, 1], expected)
    torch.testing.assert_close(utc[:, 0], authors[:, 0])  # the week is the same
    assert not torch.allclose(utc[9:12, 1], authors[9:12, 1])


def test_hour_encoding_is_validated() -> None:
    import pytest

    from torchgeo_moemae.models import MoEMAEEncoder

    with pytest.raises(ValueError, match=r"hour_encoding must be 'utc' .* or 'authors'"):
        encode_metadata(None, None, None, 1, hour_encoding="local")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hour_encoding"):
        MoEMAEEncoder(depth=1, hour_encoding="UTC")  # type: ignore[arg-type]
    assert MoEMAEEncoder(depth=1).hour_encoding == "utc"
