"""Strip readers: georeferencing (from the TIFFs or the MTL), fill, archives and bad inputs."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import rasterio
from pyproj import CRS
from rasterio import Affine

from torchgeo_moemae.scene import LandsatProduct, open_scene
from torchgeo_moemae.scene.writer import EmbeddingWriter


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_real_crop_georeferenced_from_mtl(crop: Path) -> None:
    with rasterio.open(next(crop.glob("*_SR_B1.TIF"))) as src:
        assert src.crs is None  # the TIFFs carry no georeferencing: the MTL is the only source
    reader = LandsatProduct(crop)
    assert reader.crs.to_epsg() == 32630
    assert (reader.height, reader.width) == (267, 433)
    assert (reader.transform.c, reader.transform.f) == (487005.0, 5929995.0)
    data, fill, cloud = reader.read_rows(100, 40)
    with rasterio.open(next(crop.glob("*_SR_B7.TIF"))) as src:
        np.testing.assert_array_equal(data[6], src.read(1)[100:140])
    assert data.shape == (7, 40, 433) and not fill.any()
    assert cloud is None and not reader.has_qa  # the crop has no QA_PIXEL
    reader.close()


def test_mtl_and_tiff_georeferencing_agree(tmp_path: Path, scene_data: ModuleType) -> None:
    geo = LandsatProduct(scene_data.make_product(tmp_path / "a", georeferenced=True))
    bare = LandsatProduct(scene_data.make_product(tmp_path / "b", georeferenced=False))
    assert geo.transform == bare.transform and geo.crs == bare.crs


def test_fill_from_dn_zero_and_qa_pixel(tmp_path: Path, scene_data: ModuleType) -> None:
    product = scene_data.make_product(tmp_path, fill=None, qa_pixel=True)
    qa_path = next(product.glob("*_QA_PIXEL.TIF"))
    with rasterio.open(qa_path, "r+") as qa:
        values = qa.read(1)
        values[50:60, 10:20] |= 1  # fill bit only: the DN there are valid
        qa.write(values, 1)
    b1 = next(product.glob("*_SR_B1.TIF"))
    with rasterio.open(b1, "r+") as band:
        values = band.read(1)
        values[70, 100] = 0  # one band 0: a fill pixel
        band.write(values, 1)
    _, fill, cloud = LandsatProduct(product).read_rows(40, 40)
    expected = np.zeros((40, scene_data.WIDTH), dtype=bool)
    expected[10:20, 10:20] = True
    expected[30, 100] = True
    np.testing.assert_array_equal(fill, expected)
    assert cloud is not None and not cloud.any()


@pytest.mark.parametrize(
    ("bit", "masked"), [(1, True), (2, False), (3, True), (4, True), (5, True)]
)
def test_cloud_from_qa_pixel_bits(
    tmp_path: Path, scene_data: ModuleType, bit: int, masked: bool
) -> None:
    """Dilated cloud (1), cloud (3), cloud shadow (4) and snow (5) are cloud; cirrus (2) is not."""
    flags = [(slice(45, 50), slice(7, 9), bit)]
    product = scene_data.make_product(tmp_path, fill=None, qa_flags=flags)
    _, fill, cloud = LandsatProduct(product).read_rows(40, 40)
    expected = np.zeros((40, scene_data.WIDTH), dtype=bool)
    expected[5:10, 7:9] = masked
    assert cloud is not None and not fill.any()
    np.testing.assert_array_equal(cloud, expected)


@pytest.mark.parametrize("prefix", ["", "./"])
def test_tar_archive_reads_like_folder(product: Path, tmp_path: Path, prefix: str) -> None:
    """``prefix="./"``: an archive made with ``tar -cf scene.tar -C dir .`` was not found."""
    archive = tmp_path / f"{product.name}.tar"
    with tarfile.open(archive, "w") as tar:
        if prefix:
            tar.add(product, arcname=".", recursive=False)
        for path in sorted(product.iterdir()):
            tar.add(path, arcname=f"{prefix}{path.name}")
    folder, packed = LandsatProduct(product), open_scene(archive)
    assert packed.transform == folder.transform and packed.time == folder.time
    for a, b in zip(folder.read_rows(20, 40), packed.read_rows(20, 40), strict=True):
        np.testing.assert_array_equal(a, b)


def test_missing_band_file(product: Path) -> None:
    next(product.glob("*_SR_B3.TIF")).unlink()
    with pytest.raises(ValueError, match=r"band file SR_B3 is missing: expected .*_SR_B3\.TIF"):
        LandsatProduct(product)


def test_missing_mtl(product: Path) -> None:
    next(product.glob("*_MTL.txt")).unlink()
    with pytest.raises(ValueError, match=r"expected exactly one \*_MTL.txt file, found none"):
        LandsatProduct(product)


def test_unreadable_tiff(product: Path) -> None:
    path = next(product.glob("*_SR_B4.TIF"))
    path.write_bytes(b"this is not a TIFF")
    with pytest.raises(ValueError, match=r"band SR_B4: unreadable TIFF .*_SR_B4\.TIF"):
        LandsatProduct(product)


def _rewrite(path: Path, **changes: object) -> None:
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    profile |= changes
    height, width = profile["height"], profile["width"]
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.resize(data, (1, height, width)))


def test_mismatched_band_shapes(product: Path) -> None:
    _rewrite(next(product.glob("*_SR_B5.TIF")), width=120)
    with pytest.raises(ValueError, match=r"SR_B5 is 100x120 px but SR_B1 is 100x130.*one grid"):
        LandsatProduct(product)


def test_mismatched_band_crs(product: Path) -> None:
    _rewrite(next(product.glob("*_SR_B2.TIF")), crs=CRS.from_epsg(32631))
    with pytest.raises(ValueError, match=r"SR_B2 has CRS EPSG:32631 .* but SR_B1 has EPSG:32630"):
        LandsatProduct(product)


def test_ungeoreferenced_size_must_match_mtl(tmp_path: Path, scene_data: ModuleType) -> None:
    product = scene_data.make_product(tmp_path, georeferenced=False)
    mtl = next(product.glob("*_MTL.txt"))
    mtl.write_text(mtl.read_text().replace("REFLECTIVE_LINES = 100", "REFLECTIVE_LINES = 7801"))
    with pytest.raises(
        ValueError, match=r"has no georeferencing and is 100x130 px.*cannot georeference"
    ):
        LandsatProduct(product)


def test_not_a_product(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"expected a Landsat Collection 2 Level-2 product folder or \.tar"
    ):
        open_scene(tmp_path / "nothing.tif")
    with pytest.raises(TypeError, match="source must be"):
        open_scene(42)


def test_copy_of_real_crop_is_readable(crop: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(crop, tmp_path / "crop"))
    assert LandsatProduct(copy).time == LandsatProduct(crop).time


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_truncated_band_names_file_and_band(product: Path) -> None:
    band = next(product.glob("*_SR_B4.TIF"))
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 2])
    scene = LandsatProduct(product)
    try:
        with pytest.raises(ValueError) as raised:
            for row in range(0, scene.height, 40):
                scene.read_rows(row, min(40, scene.height - row))
    finally:
        scene.close()
    message = str(raised.value)
    assert message.startswith(f"{band}: band SR_B4 unreadable at rows ")
    assert "previous exception" not in message and "download it again" in message


def test_output_folder_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").touch()
    writer = EmbeddingWriter(
        tmp_path / "afile" / "map.tif", 4, 3, 2, CRS.from_epsg(32630), Affine.identity()
    )
    with pytest.raises(NotADirectoryError, match="afile is a file, not a folder"):
        writer.__enter__()
