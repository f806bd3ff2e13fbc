"""Acceptance on the 200 real BigEarthNet-L patches of ``../shared`` (skipped when absent)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch

from torchgeo_moemae.datasets import BigEarthNetLS, InvalidSampleError, MissingSampleFileError

#: the patch whose label JSON the real sample set lacks on purpose
REAL_MISSING_ID = "S2A_MSIL2A_20171208T093351_82_79"
#: the one real patch whose image is entirely fill (DN 0 in every band)
REAL_ALL_FILL_ID = "S2A_MSIL2A_20170613T101032_67_54"


def _json_hour(root: Path, pid: str) -> int:
    doc = json.loads(
        (root / "bigearthnet-l" / "labels" / f"{pid}_labels_metadata.json").read_text()
    )
    return datetime.strptime(doc["acquisition_date"], "%Y-%m-%d %H:%M:%S").hour


def test_missing_label_json_raises(real_ben_root: Path) -> None:
    with pytest.raises(MissingSampleFileError, match="label JSON missing") as info:
        BigEarthNetLS(real_ben_root)
    assert f"{REAL_MISSING_ID}_labels_metadata.json" in str(info.value)


def test_all_labelled_patches_load(real_ben_root: Path) -> None:
    ds = BigEarthNetLS(real_ben_root, on_error="skip", allow_all_fill=True)
    assert len(ds) == 199
    assert list(ds.skipped) == [REAL_MISSING_ID]
    hours = set()
    for i, pid in enumerate(ds.ids):
        sample = ds[i]
        assert sample["image"].shape == (7, 40, 40) and sample["image"].dtype == torch.float32
        assert torch.isfinite(sample["image"]).all()
        assert sample["label"].shape == (19,) and sample["label"].dtype == torch.int64
        assert set(sample["label"].unique().tolist()) <= {0, 1}
        assert 35 <= float(sample["lat"]) <= 72 and -11 <= float(sample["lon"]) <= 33
        hour = datetime.fromtimestamp(float(sample["time"]), UTC).hour
        assert hour == _json_hour(real_ben_root, pid), pid
        hours.add(hour)
    assert hours == {9, 10, 11}


def test_all_fill_patch_is_flagged_by_default(real_ben_root: Path) -> None:
    ds = BigEarthNetLS(real_ben_root, on_error="skip")
    assert len(ds) == 198
    assert set(ds.skipped) == {REAL_MISSING_ID, REAL_ALL_FILL_ID}
    assert "entirely fill" in ds.skipped[REAL_ALL_FILL_ID]
    # With on_error="raise" the patch itself fails when read, naming its file.
    ds.ids.append(REAL_ALL_FILL_ID)
    with pytest.raises(InvalidSampleError, match=f"{REAL_ALL_FILL_ID}.tif: image is entirely fill"):
        ds[len(ds) - 1]
