"""BigEarthNetLS on the fake Landsat-Bench files: loading, metadata, downloads, bad input."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import matplotlib.pyplot as plt
import numpy as np
import pytest
import rasterio
import torch
from matplotlib.figure import Figure
from pyproj import Transformer
from torchgeo.datasets import DatasetNotFoundError

from torchgeo_moemae.datasets import (
    BigEarthNetLS,
    InvalidSampleError,
    MissingSampleFileError,
    arrange_bigearthnet_sample,
)
from torchgeo_moemae.datasets.metadata import authors_filename_time, to_wgs84


def expected_lat_lon(epsg: int, ulx: float, uly: float) -> tuple[float, float]:
    lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(ulx + 600, uly - 600)
    return lat, lon


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_getitem(ben_root: Path, ben_data: ModuleType, split: str) -> None:
    ds = BigEarthNetLS(ben_root, split=split)
    assert len(ds) == len(ben_data.RECORDS)
    for i, (_, epsg, x, y, date) in enumerate(ben_data.RECORDS):
        sample = ds[i]
        assert set(sample) == {"image", "label", "lat", "lon", "time"}
        assert sample["image"].shape == (7, 40, 40) and sample["image"].dtype == torch.float32
        assert sample["label"].shape == (19,) and sample["label"].dtype == torch.int64
        assert sample["lat"].dtype == torch.float32 and sample["lat"].ndim == 0
        assert sample["time"].dtype == torch.float64 and sample["time"].ndim == 0
        lat, lon = expected_lat_lon(epsg, x, y)
        assert float(sample["lat"]) == pytest.approx(lat, abs=1e-4)
        assert float(sample["lon"]) == pytest.approx(lon, abs=1e-4)
        when = datetime.strptime(date, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        assert float(sample["time"]) == when.timestamp()  # exact: float64 keeps the seconds
        assert datetime.fromtimestamp(float(sample["time"]), UTC).hour == when.hour


def test_labels_19_and_43(ben_root: Path) -> None:
    # Record 1: "Non-irrigated arable land" + "Airports"; airports have no 19-class label.
    ds19 = BigEarthNetLS(ben_root, num_classes=19)
    ds43 = BigEarthNetLS(ben_root, num_classes=43)
    assert [ds19.classes[i] for i in ds19[1]["label"].nonzero().flatten()] == ["Arable land"]
    assert sorted(ds43.classes[i] for i in ds43[1]["label"].nonzero().flatten()) == [
        "Airports",
        "Non-irrigated arable land",
    ]
    assert ds43[2]["label"].sum() == 3 and ds43[2]["label"].shape == (43,)


def test_patch_size(ben_root: Path) -> None:
    native = BigEarthNetLS(ben_root, patch_size=None)
    assert [tuple(native[i]["image"].shape[1:]) for i in range(3)] == [(41, 41), (43, 45), (38, 39)]
    cropped = BigEarthNetLS(ben_root, patch_size=40)
    # 43x45 -> the central 40x40 window (top 1, left 2), untouched values.
    assert torch.equal(cropped[1]["image"], native[1]["image"][:, 1:41, 2:42])
    # 38x39 is smaller than 40: resized up, documented.
    assert cropped[2]["image"].shape == (7, 40, 40)
    assert torch.isfinite(cropped[2]["image"]).all()


def test_transforms_and_header(ben_root: Path, ben_data: ModuleType, tmp_path: Path) -> None:
    ds = BigEarthNetLS(ben_root, transforms=lambda s: {**s, "image": s["image"] * 0})
    assert ds[0]["image"].abs().sum() == 0
    root = tmp_path / "with_header"
    ben_data.make_bigearthnet_ls(root, archive=False, header=True)
    assert len(BigEarthNetLS(root)) == 3  # the header row is not taken for an id


def test_transformer_is_cached(ben_root: Path) -> None:
    to_wgs84.cache_clear()
    ds = BigEarthNetLS(ben_root)
    for _ in range(3):
        for i in range(len(ds)):
            ds[i]
    info = to_wgs84.cache_info()
    assert info.misses == 3 and info.hits == 6  # one transformer per CRS, not per sample


def test_plot(ben_root: Path) -> None:
    ds = BigEarthNetLS(ben_root)
    sample = ds[0]
    fig = ds.plot(sample, suptitle="test")
    assert isinstance(fig, Figure)
    plt.close(fig)
    fig = ds.plot({**sample, "prediction": sample["label"]}, show_titles=False)
    plt.close(fig)


def test_invalid_arguments(ben_root: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        BigEarthNetLS(ben_root, split="foo")
    with pytest.raises(ValueError, match="num_classes"):
        BigEarthNetLS(ben_root, num_classes=10)
    with pytest.raises(ValueError, match="on_error"):
        BigEarthNetLS(ben_root, on_error="ignore")  # type: ignore[arg-type]


def test_not_found(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="Dataset not found"):
        BigEarthNetLS(tmp_path)


def test_extract_existing_archive(tmp_path: Path, ben_data: ModuleType) -> None:
    ben_data.make_bigearthnet_ls(tmp_path)
    shutil.rmtree(tmp_path / "bigearthnet-l")
    assert len(BigEarthNetLS(tmp_path)) == 3


@pytest.fixture
def ben_hub(
    tmp_path: Path, ben_data: ModuleType, monkeypatch: pytest.MonkeyPatch, patch_download: None
) -> dict[str, str]:
    """Serve a fake archive and split CSVs from a local "hub" directory; returns their MD5s."""
    source = tmp_path / "hub"
    md5s: dict[str, str] = ben_data.make_bigearthnet_ls(source)
    monkeypatch.setattr(BigEarthNetLS, "url", str(source) + "/")
    return md5s


def test_download_and_checksum(
    tmp_path: Path, ben_hub: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BigEarthNetLS, "md5s", ben_hub)
    root = tmp_path / "root"
    for split in ("train", "val", "test"):
        assert len(BigEarthNetLS(root, split=split, download=True, checksum=True)) == 3
    assert (root / "bigearthnet-l.tar.gz").is_file()
    # Second time: everything is there, nothing to fetch.
    assert len(BigEarthNetLS(root, checksum=True)) == 3


def test_checksum_mismatch(
    tmp_path: Path, ben_hub: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BigEarthNetLS, "md5s", {**ben_hub, "bigearthnet-l.tar.gz": "0" * 32})
    with pytest.raises(RuntimeError, match=r"bigearthnet-l\.tar\.gz: MD5 mismatch"):
        BigEarthNetLS(tmp_path / "root", download=True, checksum=True)


@pytest.mark.usefixtures("ben_hub")
def test_unknown_checksum_warns(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="no MD5 is known"):
        BigEarthNetLS(tmp_path / "root", download=True, checksum=True)


# ---------------------------------------------------------------------------------------------
# Bad input: every problem is an error naming the file, or a counted skip.


def _image(root: Path, pid: str) -> Path:
    return root / "bigearthnet-l" / "images" / f"{pid}.tif"


def _label(root: Path, pid: str) -> Path:
    return root / "bigearthnet-l" / "labels" / f"{pid}_labels_metadata.json"


def _edit_label(path: Path, **changes: object) -> None:
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _six_bands(path: Path) -> None:
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    profile["count"] = 6
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[:6])


def _all_fill(path: Path) -> None:
    with rasterio.open(path, "r+") as dst:
        dst.write(np.zeros((dst.count, dst.height, dst.width), dtype=np.uint16))


#: (name, corrupt(root, id), the file the error must name, message pattern)
GETITEM_PROBLEMS = {
    "truncated tiff": (lambda r, p: _truncate(_image(r, p)), _image, "truncated"),
    "six bands": (lambda r, p: _six_bands(_image(r, p)), _image, "expected 7 bands, found 6"),
    "bad date": (
        lambda r, p: _edit_label(_label(r, p), acquisition_date="13/06/2017 10h"),
        _label,
        "unparseable acquisition_date",
    ),
    "date without time": (
        lambda r, p: _edit_label(_label(r, p), acquisition_date="2017-06-13"),
        _label,
        "no time of day",
    ),
    "lat out of range": (
        lambda r, p: _edit_label(
            _label(r, p), coordinates={"ulx": 0, "uly": 2e7, "lrx": 0, "lry": 2e7}
        ),
        _label,
        "out of range",
    ),
    "bad projection": (
        lambda r, p: _edit_label(_label(r, p), projection="nonsense"),
        _label,
        "projection",
    ),
    "unknown label": (
        lambda r, p: _edit_label(_label(r, p), labels=["Lava"]),
        _label,
        "unknown labels",
    ),
    "empty labels": (lambda r, p: _edit_label(_label(r, p), labels=[]), _label, "'labels' missing"),
    "broken json": (lambda r, p: _label(r, p).write_text("{"), _label, "unreadable label JSON"),
}


@pytest.mark.parametrize("problem", GETITEM_PROBLEMS)
def test_bad_sample_raises_at_getitem(ben_root: Path, ben_data: ModuleType, problem: str) -> None:
    corrupt, named, pattern = GETITEM_PROBLEMS[problem]
    pid = ben_data.patch_id("train", 1)
    corrupt(ben_root, pid)
    ds = BigEarthNetLS(ben_root)
    ds[0], ds[2]  # the others are fine
    with pytest.raises(InvalidSampleError, match=pattern) as info:
        ds[1]
    assert str(named(ben_root, pid)) in str(info.value)


@pytest.mark.parametrize("problem", GETITEM_PROBLEMS)
def test_bad_sample_skipped(
    ben_root: Path, ben_data: ModuleType, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    corrupt, _, pattern = GETITEM_PROBLEMS[problem]
    pid = ben_data.patch_id("train", 1)
    corrupt(ben_root, pid)
    ds = BigEarthNetLS(ben_root, on_error="skip")
    assert len(ds) == 2 and pid not in ds.ids
    assert list(ds.skipped) == [pid]
    assert pattern in ds.skipped[pid]
    assert "skipped 1 sample" in caplog.text


def _fill_rows(path: Path, rows: int) -> None:
    """Set the first ``rows`` rows of every band to fill (DN 0)."""
    with rasterio.open(path, "r+") as dst:
        data = dst.read()
        data[:, :rows] = 0
        dst.write(data)


def test_all_fill_loads_by_default(ben_root: Path, ben_data: ModuleType) -> None:
    # An all-fill patch used to raise "entirely fill" mid-epoch unless allow_all_fill.
    _all_fill(_image(ben_root, ben_data.patch_id("train", 0)))
    ds = BigEarthNetLS(ben_root)
    assert len(ds) == 3 and ds.skipped == {}
    assert ds[0]["image"].abs().sum() == 0
    with pytest.raises(TypeError, match="allow_all_fill"):
        BigEarthNetLS(ben_root, allow_all_fill=True)  # type: ignore[call-arg]


def test_max_fill_fraction_drops_and_reports(
    ben_root: Path, ben_data: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    full, half = ben_data.patch_id("train", 0), ben_data.patch_id("train", 2)
    _all_fill(_image(ben_root, full))
    with rasterio.open(_image(ben_root, half)) as src:
        height = src.height
    _fill_rows(_image(ben_root, half), height // 2)  # about half the (cropped) pixels are fill
    ds = BigEarthNetLS(ben_root, max_fill_fraction=0.9)
    assert ds.ids == [ben_data.patch_id("train", 1), half]
    assert list(ds.skipped) == [full]
    assert "100.0% of the pixels are fill" in ds.skipped[full]
    assert "skipped 1 sample" in caplog.text
    strict = BigEarthNetLS(ben_root, max_fill_fraction=0.1)
    assert strict.ids == [ben_data.patch_id("train", 1)]
    assert set(strict.skipped) == {full, half}
    # 0 keeps only patches without a single fill pixel; 1 keeps everything.
    assert len(BigEarthNetLS(ben_root, max_fill_fraction=1)) == 3


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), "0.5", True])
def test_max_fill_fraction_is_validated(ben_root: Path, value: object) -> None:
    with pytest.raises(ValueError, match=r"max_fill_fraction must be None .* in \[0, 1\]"):
        BigEarthNetLS(ben_root, max_fill_fraction=value)  # type: ignore[arg-type]


def test_max_fill_fraction_with_raise_still_reports_bad_samples(
    ben_root: Path, ben_data: ModuleType
) -> None:
    pid = ben_data.patch_id("train", 1)
    _truncate(_image(ben_root, pid))
    with pytest.raises(InvalidSampleError, match="truncated"):
        BigEarthNetLS(ben_root, max_fill_fraction=0.5)
    ds = BigEarthNetLS(ben_root, max_fill_fraction=0.5, on_error="skip")
    assert list(ds.skipped) == [pid]


@pytest.mark.parametrize("content", ["", "0\n", "\n\n"])
def test_empty_split_csv_names_the_csv(ben_root: Path, content: str) -> None:
    csv = ben_root / BigEarthNetLS.split_filenames["val"]
    csv.write_text(content)
    with pytest.raises(ValueError, match="lists no sample") as info:
        BigEarthNetLS(ben_root, split="val")
    assert str(csv) in str(info.value)


@pytest.mark.parametrize(
    ("patch_id", "expected"),
    [
        ("S2A_MSIL2A_20170613T101031_11_66", datetime(2017, 6, 13, 1, tzinfo=UTC)),
        ("S2B_MSIL2A_20180525T094029_40_12", datetime(2018, 5, 25, 0, tzinfo=UTC)),
        ("S2A_MSIL2A_20171208T93351_82_79", datetime(2017, 12, 8, 9, tzinfo=UTC)),
    ],
)
def test_authors_filename_time(patch_id: str, expected: datetime) -> None:
    # The authors' parse: the date and the first digit of the hour (docs/user_guide/fidelity.rst), T9xxxx keeps 9.
    assert authors_filename_time(patch_id) == expected.timestamp()


def test_time_source(ben_root: Path, ben_data: ModuleType) -> None:
    pid = ben_data.patch_id("train", 0)
    json_hour = datetime.fromtimestamp(float(BigEarthNetLS(ben_root)[0]["time"]), UTC).hour
    compat = BigEarthNetLS(ben_root, time_source="authors_filename")[0]["time"]
    assert compat.dtype == torch.float64
    assert float(compat) == authors_filename_time(pid)
    assert datetime.fromtimestamp(float(compat), UTC).hour == json_hour // 10
    with pytest.raises(ValueError, match="time_source must be"):
        BigEarthNetLS(ben_root, time_source="name")  # type: ignore[arg-type]
    with pytest.raises(InvalidSampleError, match="no date in the authors' format"):
        authors_filename_time("patch_7")


@pytest.mark.parametrize(
    ("remove", "pattern"), [(_label, "label JSON missing"), (_image, "image missing")]
)
def test_missing_file_raises_at_init(
    ben_root: Path, ben_data: ModuleType, remove: object, pattern: str
) -> None:
    pid = ben_data.patch_id("val", 2)
    path = remove(ben_root, pid)  # type: ignore[operator]
    path.unlink()
    assert len(BigEarthNetLS(ben_root, split="train")) == 3  # other splits are unaffected
    with pytest.raises(MissingSampleFileError, match=pattern) as info:
        BigEarthNetLS(ben_root, split="val")
    assert str(path) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    ds = BigEarthNetLS(ben_root, split="val", on_error="skip")
    assert len(ds) == 2 and pattern in ds.skipped[pid]


def test_arrange_flat_sample(ben_root: Path, tmp_path: Path) -> None:
    # The flat layout of the authors' sample: images/, labels/, samples.csv with header "0".
    flat = tmp_path / "flat"
    shutil.copytree(ben_root / "bigearthnet-l", flat)
    ids = [line.split(",")[0] for line in (ben_root / "bigearthnet-val.csv").read_text().split()]
    (flat / "samples.csv").write_text("0\n" + "\n".join(ids) + "\n")
    with pytest.raises(ValueError, match=r"flat BigEarthNet-L sample .*arrange_bigearthnet_sample"):
        BigEarthNetLS(flat)  # used to be "dataset not found"
    assert len(ids) == 3
    root = arrange_bigearthnet_sample(flat, tmp_path / "arranged", fractions=(0.4, 0.3, 0.3))
    splits = {s: BigEarthNetLS(root, split=s).ids for s in ("train", "val", "test")}
    # every id in exactly one split (all of them in every split, before: probes scored 1.000)
    assert sorted(i for split in splits.values() for i in split) == sorted(ids)
    assert [len(v) for v in splits.values()] == [1, 1, 1]
    assert (root / "bigearthnet-l" / "images").is_symlink()
    whole = arrange_bigearthnet_sample(flat, tmp_path / "whole", fractions=None)
    assert BigEarthNetLS(whole, split="test").ids == ids
    with pytest.raises(FileNotFoundError, match="not a BigEarthNet-L sample"):
        arrange_bigearthnet_sample(ben_root, tmp_path / "nope")


def test_arranged_splits_leave_out_ids_without_labels(
    ben_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An id whose label JSON is missing (as in the real sample) used to land in a split, where the
    default on_error="raise" then stopped every reader; and the CSVs had Windows line endings."""
    flat = tmp_path / "flat"
    shutil.copytree(ben_root / "bigearthnet-l", flat)
    ids = [line.split(",")[0] for line in (ben_root / "bigearthnet-val.csv").read_text().split()]
    (flat / "labels" / f"{ids[1]}_labels_metadata.json").unlink()
    (flat / "samples.csv").write_text("0\n" + "\n".join(ids) + "\n")
    with caplog.at_level("INFO", logger="torchgeo_moemae.datasets.layout"):
        root = arrange_bigearthnet_sample(flat, tmp_path / "arranged", fractions=None)
    assert "1 of 3 ids left out of the splits" in caplog.text
    assert BigEarthNetLS(root, split="train").ids == [ids[0], ids[2]]
    assert b"\r\n" not in (root / "bigearthnet-train.csv").read_bytes()
