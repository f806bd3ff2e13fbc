"""embed_scenes over several scenes: cloud masks, aligned grids of overlapping scenes and dates,
STAC Items and Collection read back with pystac, resume, damaged scenes, STAC input."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pystac
import pytest
import rasterio

from torchgeo_moemae.models import MoEMAEEncoder
from torchgeo_moemae.scene import SceneError, embed_scene, embed_scenes
from torchgeo_moemae.scene.stac import multihash_sha256

DAY1 = dt.datetime(2020, 9, 27, 11, 10, 50, tzinfo=dt.UTC)
DAY2 = dt.datetime(2021, 4, 6, 11, 9, 12, tzinfo=dt.UTC)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_cloudy_windows_are_nodata(
    tmp_path: Path, scene_data: ModuleType, encoder_xxs: MoEMAEEncoder
) -> None:
    """Stride 40 on the 100 x 130 px scene: windows at rows 26.., columns 6.. (1 x 3 windows).
    Cloud over all of window (0, 0); 20 snow pixels (1.25%) in window (0, 1); 10 pixels (0.6%) of
    cloud shadow in window (0, 2): the first two are nodata at the default 1%, the third is kept."""
    flags = [
        (slice(26, 66), slice(6, 46), 3),
        (slice(30, 32), slice(50, 60), 5),
        (slice(40, 41), slice(90, 100), 4),
        (slice(70, 80), slice(0, 130), 3),  # below the grid's last row: no window sees it
    ]
    product = scene_data.make_product(tmp_path / "in", fill=None, qa_flags=flags)
    out = embed_scene(product, tmp_path / "emb.tif", encoder_xxs, progress=False)
    nodata = np.isnan(_read(out)).all(axis=0)
    np.testing.assert_array_equal(nodata, [[True, True, False]])
    props = pystac.Item.from_file(str(out.with_suffix(".json"))).properties
    assert (props["moemae:cloud_windows"], props["moemae:embedded"]) == (2, 1)
    assert (
        props["moemae:qa_pixel"] is True and props["moemae:settings"]["max_cloud_fraction"] == 0.01
    )
    with rasterio.open(out) as src:
        assert src.tags()["cloud_windows"] == "2"
    # no cloud mask: every window embedded
    free = embed_scene(
        product, tmp_path / "all.tif", encoder_xxs, max_cloud_fraction=1.0, progress=False
    )
    assert not np.isnan(_read(free)).any()


def test_scene_without_qa_pixel_is_embedded_with_a_notice(
    crop: Path, tmp_path: Path, encoder_xxs: MoEMAEEncoder, capsys: pytest.CaptureFixture[str]
) -> None:
    out = embed_scene(crop, tmp_path / "emb.tif", encoder_xxs, progress=False, quicklook=False)
    assert capsys.readouterr().err == f"{crop}: no QA_PIXEL, clouds are not masked\n"
    assert not np.isnan(_read(out)).any()


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # the quicklook
def test_overlapping_scenes_of_two_dates_share_the_grid(
    tmp_path: Path, scene_data: ModuleType, encoder_xxs: MoEMAEEncoder
) -> None:
    """Scene B starts 57 columns right and 91 rows below scene A, a year later: the maps' pixels
    coincide, the overlap holds the same windows, and the run's Collection loads with pystac."""
    a = scene_data.make_product(tmp_path / "in", height=200, width=220, fill=None, time=DAY1)
    ul_b = (487020.0 + 57 * 30, 5929980.0 - 91 * 30)
    b_args = dict(height=180, width=200, fill=None, ul_centre=ul_b, path_row="204024")
    b = scene_data.make_product(tmp_path / "in", time=DAY2, **b_args)
    out = tmp_path / "maps"
    summary = embed_scenes([a, b], out, encoder_xxs, stride=20, progress=False)
    assert [(s.id, s.status) for s in summary.scenes] == [(a.name, "done"), (b.name, "done")]

    collection = pystac.Collection.from_file(str(out / "collection.json"))
    items = {item.id: item for item in collection.get_items()}
    assert set(items) == {a.name, b.name}
    assert [i.datetime for i in items.values()] == [DAY1, DAY2]
    assert collection.extent.temporal.intervals == [[DAY1, DAY2]]
    for item in items.values():
        assert item.collection_id == collection.id
        assert item.properties["proj:code"] == "EPSG:32630"
        for asset in item.assets.values():
            with rasterio.open(asset.get_absolute_href()) as src:
                assert src.width > 0
        tif = Path(item.assets["embedding"].get_absolute_href())
        assert item.assets["embedding"].extra_fields["file:checksum"] == multihash_sha256(tif)
        assert item.assets["embedding"].extra_fields["raster:bands"][0]["nodata"] == "nan"
    with rasterio.open(out / f"{a.name}.tif") as sa, rasterio.open(out / f"{b.name}.tif") as sb:
        ta, tb = sa.transform, sb.transform
        assert (ta.a, ta.e) == (tb.a, tb.e) == (600, -600)
        col, row = ~ta @ (tb.c, tb.f)  # B's first pixel in A's pixels: whole numbers
        assert (col, row) == (round(col), round(row)) and (col, row) != (0, 0)
        col, row = round(col), round(row)
        map_a, map_b = sa.read(), sb.read()
    overlap_a = map_a[:, row:, col:]
    overlap_b = map_b[:, : overlap_a.shape[1], : overlap_a.shape[2]]
    assert overlap_b.shape[1:] == (map_a.shape[1] - row, map_a.shape[2] - col)
    assert not np.allclose(overlap_a, overlap_b, atol=1e-3)  # a year apart: other embeddings
    # the same windows: B embedded at A's acquisition time gives A's embeddings on the overlap
    same_time = embed_scenes(
        [b], tmp_path / "b_at_day1", encoder_xxs, stride=20, time=DAY1.timestamp(), progress=False
    )
    assert same_time.count("done") == 1
    at_day1 = _read(tmp_path / "b_at_day1" / f"{b.name}.tif")[
        :, : overlap_a.shape[1], : overlap_a.shape[2]
    ]
    assert np.abs(at_day1 - overlap_a).max() <= 1e-6


def test_resume_skips_finished_scenes(
    tmp_path: Path, scene_data: ModuleType, encoder_xxs: MoEMAEEncoder
) -> None:
    products = [scene_data.make_product(tmp_path / "in", path_row=p) for p in ("001001", "002002")]
    out = tmp_path / "maps"
    first = embed_scenes(products[:1], out, encoder_xxs, progress=False)
    assert first.count("done") == 1
    files = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    second = embed_scenes(products, out, encoder_xxs, progress=False)
    assert [s.status for s in second.scenes] == ["skipped", "done"]
    assert second.scenes[0].embedded == first.scenes[0].embedded  # from its Item
    for name, mtime in files.items():
        if name.startswith(products[0].name):
            assert (out / name).stat().st_mtime_ns == mtime
    collection = pystac.Collection.from_file(str(out / "collection.json"))
    assert {i.id for i in collection.get_items()} == {p.name for p in products}
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done"], summary["skipped"], summary["failed"]) == (1, 1, 0)
    # a map whose bytes no longer match its Item's checksum is embedded again
    tif = out / f"{products[1].name}.tif"
    tif.write_bytes(tif.read_bytes()[:-10])
    third = embed_scenes(products, out, encoder_xxs, progress=False)
    assert [s.status for s in third.scenes] == ["skipped", "done"]


def test_damaged_scene_fails_alone_with_skip(
    tmp_path: Path, scene_data: ModuleType, encoder_xxs: MoEMAEEncoder
) -> None:
    products = [
        scene_data.make_product(tmp_path / "in", height=160, path_row=p)
        for p in ("001001", "002002", "003003")
    ]
    band = next(products[1].glob("*_SR_B4.TIF"))
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 2])  # truncated download
    out = tmp_path / "maps"
    with pytest.raises(SceneError, match="band SR_B4 unreadable") as raised:
        embed_scenes(products, out, encoder_xxs, batch_size=2, progress=False)
    summary = raised.value.summary
    assert summary is not None
    assert [(s.id, s.status) for s in summary.scenes] == [
        (products[0].name, "done"),
        (products[1].name, "failed"),
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            *(f"{products[0].name}{s}" for s in (".tif", ".png", ".json")),
            "collection.json",
            "summary.json",
        ]
    )
    summary = embed_scenes(products, out, encoder_xxs, on_error="skip", progress=False)
    assert [s.status for s in summary.scenes] == ["skipped", "failed", "done"]
    assert "band SR_B4 unreadable" in (summary.failed[0].error or "")
    assert not (out / f"{products[1].name}.tif").exists()
    assert not [p for p in out.iterdir() if "partial" in p.name]
    assert summary.lines()[1].startswith(f"failed: {products[1].name}: ")


def test_stac_items_embed_like_products(
    tmp_path: Path, scene_data: ModuleType, encoder_xxs: MoEMAEEncoder
) -> None:
    product = scene_data.make_product(
        tmp_path / "in", fill=None, qa_flags=[(slice(30, 70), slice(10, 50), 3)]
    )
    search = tmp_path / "search.json"
    pystac.ItemCollection([pystac.Item.from_dict(scene_data.stac_item(product))]).save_object(
        str(search)
    )
    from_stac = embed_scenes(search, tmp_path / "stac", encoder_xxs, progress=False)
    from_product = embed_scenes(product, tmp_path / "product", encoder_xxs, progress=False)
    # the cloud covers 90% of window (0, 0) and 9% of window (0, 1)
    assert from_stac.scenes[0].cloud == from_product.scenes[0].cloud == 2
    a = _read(tmp_path / "stac" / f"{product.name}.tif")
    b = _read(tmp_path / "product" / f"{product.name}.tif")
    np.testing.assert_array_equal(a, b)
    item = pystac.Item.from_file(str(tmp_path / "stac" / f"{product.name}.json"))
    assert item.properties["moemae:source"] == f"{search}#{product.name}"


def test_loader_workers_take_whole_scenes(
    tmp_path: Path, scene_data: ModuleType, encoder_xxs: MoEMAEEncoder
) -> None:
    """Two loader workers read different scenes at once; their batches arrive interleaved and
    every map is the one the main process alone writes."""
    products = [
        scene_data.make_product(tmp_path / "in", height=140, path_row=p)
        for p in ("001001", "002002", "003003")
    ]
    one = embed_scenes(products, tmp_path / "w0", encoder_xxs, batch_size=2, progress=False)
    two = embed_scenes(
        products, tmp_path / "w2", encoder_xxs, batch_size=2, num_workers=2, progress=False
    )
    assert [s.embedded for s in one.scenes] == [s.embedded for s in two.scenes]
    for product in products:
        a = _read(tmp_path / "w0" / f"{product.name}.tif")
        b = _read(tmp_path / "w2" / f"{product.name}.tif")
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0, equal_nan=True)
