"""Acceptance on the 200 real BigEarthNet-L patches of ``../shared`` (skipped when absent)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch

from torchgeo_moemae.datasets import BigEarthNetLS, MissingSampleFileError

#: the patch whose label JSON the real sample set lacks on purpose
REAL_MISSING_ID = "S2A_MSIL2A_20171208T093351_82_79"
#: the one real patch whose image is entirely fill (DN 0 in every band)
REAL_ALL_FILL_ID = "S2A_MSIL2A_20170613T101032_67_54"
#: a real patch with fill in 1598 of its 1600 (cropped) pixels
REAL_NEARLY_FILL_ID = "S2A_MSIL2A_20171002T112111_31_31"


def _json_hour(root: Path, pid: str) -> int:
    doc = json.loads(
        (root / "bigearthnet-l" / "labels" / f"{pid}_labels_metadata.json").read_text()
    )
    return datetime.strptime(doc["acquisition_date"], "%Y-%m-%d %H:%M:%S").hour


def test_missing_label_json_raises(real_ben_root: Path) -> None:
    with pytest.raises(MissingSampleFileError, match="label JSON missing") as info:
        BigEarthNetLS(real_ben_root)
    assert f"{REAL_MISSING_ID}_labels_metadata.json" in str(info.value)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_all_labelled_patches_load_with_default_arguments(
    real_labelled_root: Path, split: str
) -> None:
    # The all-fill patch used to raise mid-epoch unless allow_all_fill=True.
    ds = BigEarthNetLS(real_labelled_root, split=split)
    assert len(ds) == 199 and ds.skipped == {}
    assert REAL_ALL_FILL_ID in ds.ids and REAL_MISSING_ID not in ds.ids
    if split != "train":
        return  # reading the 199 patches once is enough
    hours = set()
    for i, pid in enumerate(ds.ids):
        sample = ds[i]
        assert sample["image"].shape == (7, 40, 40) and sample["image"].dtype == torch.float32
        assert torch.isfinite(sample["image"]).all()
        assert sample["label"].shape == (19,) and sample["label"].dtype == torch.int64
        assert set(sample["label"].unique().tolist()) <= {0, 1}
        assert 35 <= float(sample["lat"]) <= 72 and -11 <= float(sample["lon"]) <= 33
        hour = datetime.fromtimestamp(float(sample["time"]), UTC).hour
        assert hour == _json_hour(real_labelled_root, pid), pid
        hours.add(hour)
    assert hours == {9, 10, 11}
    assert ds[ds.ids.index(REAL_ALL_FILL_ID)]["image"].abs().sum() == 0


def test_fill_patches_dropped_on_request(real_labelled_root: Path) -> None:
    ds = BigEarthNetLS(real_labelled_root, max_fill_fraction=0.999)
    assert len(ds) == 198
    assert list(ds.skipped) == [REAL_ALL_FILL_ID]
    assert "100.0% of the pixels are fill" in ds.skipped[REAL_ALL_FILL_ID]
    # a second real patch has fill in all but 2 of its 1600 pixels
    ds = BigEarthNetLS(real_labelled_root, max_fill_fraction=0.99)
    assert set(ds.skipped) == {REAL_ALL_FILL_ID, REAL_NEARLY_FILL_ID}
    assert "99.9% of the pixels are fill" in ds.skipped[REAL_NEARLY_FILL_ID]
