"""MTL parsing: acquisition time, UTM grid, band files, and clear errors on bad files."""

from __future__ import annotations

import datetime as dt
import filecmp
from pathlib import Path

import pytest
from rasterio import Affine

from torchgeo_moemae.scene import parse_mtl, read_mtl


def test_read_mtl_real_crop(crop_mtl: Path) -> None:
    mtl = read_mtl(crop_mtl)
    expected = dt.datetime(2020, 9, 27, 11, 10, 50, 314003, tzinfo=dt.UTC).timestamp()
    assert mtl.time == pytest.approx(expected, abs=1e-6)
    assert mtl.crs.to_epsg() == 32630
    assert (mtl.height, mtl.width) == (267, 433)
    # The MTL corners are pixel centres: the raster's outer corner is half a pixel (15 m) beyond.
    assert mtl.transform == Affine(30, 0, 487020 - 15, 0, -30, 5929980 + 15)
    assert mtl.band_files["SR_B4"].endswith("_SR_B4.TIF")
    assert mtl.qa_pixel_file is not None and "L2SP" in mtl.qa_pixel_file


def test_parse_mtl_keeps_level2_group_values(crop_mtl: Path) -> None:
    # FILE_NAME_BAND_1 also appears in LEVEL1_PROCESSING_RECORD (the L1 file): groups keep them apart.
    groups = parse_mtl(crop_mtl.read_text())
    assert groups["PRODUCT_CONTENTS"]["FILE_NAME_BAND_1"].endswith(
        "L2SP_204023_20200927_20201006_02_T1_SR_B1.TIF"
    )
    assert groups["LEVEL1_PROCESSING_RECORD"]["FILE_NAME_BAND_1"].endswith(
        "L1TP_204023_20200927_20201006_02_T1_B1.TIF"
    )


def test_committed_crop_matches_shared(crop: Path, shared_dir: Path) -> None:
    source = shared_dir / "data" / "landsat8-l2-scene"
    for path in sorted(crop.glob("*_MTL.txt")) + sorted(crop.glob("*.TIF")):
        assert filecmp.cmp(path, source / path.name, shallow=False), path.name


def _edit(mtl: Path, tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / mtl.name
    text = mtl.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    DATE_ACQUIRED = 2020-09-27\n", "", "IMAGE_ATTRIBUTES/DATE_ACQUIRED is missing"),
        (
            "DATE_ACQUIRED = 2020-09-27",
            "DATE_ACQUIRED = 27/09/2020",
            "DATE_ACQUIRED must be YYYY-MM-DD",
        ),
        (
            'SCENE_CENTER_TIME = "11:10:50.3140030Z"',
            'SCENE_CENTER_TIME = "noon"',
            "SCENE_CENTER_TIME must be",
        ),
        ('MAP_PROJECTION = "UTM"', 'MAP_PROJECTION = "PS"', "MAP_PROJECTION must be 'UTM'"),
        ("UTM_ZONE = 30", "UTM_ZONE = 61", "UTM_ZONE must be in 1..60"),
        (
            "CORNER_UL_PROJECTION_X_PRODUCT = 487020.0",
            "CORNER_UL_PROJECTION_X_PRODUCT = east",
            "must be a number",
        ),
    ],
)
def test_bad_mtl_refused(crop_mtl: Path, tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _edit(crop_mtl, tmp_path, old, new)
    with pytest.raises(ValueError, match=message) as err:
        read_mtl(path)
    assert str(path) in str(err.value)


def test_not_an_mtl(tmp_path: Path) -> None:
    path = tmp_path / "x_MTL.txt"
    path.write_text("hello\n")
    with pytest.raises(ValueError, match="not a Landsat MTL file"):
        read_mtl(path)
