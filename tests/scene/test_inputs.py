"""resolve_inputs: product folders and .tars, globs, lists of paths, STAC Items and ItemCollections
(as pystac-client saves them, Planetary Computer / USGS asset keys); and reading a STAC scene."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pystac
import pytest

from torchgeo_moemae.scene import LandsatProduct, SceneSource, open_scene, resolve_inputs


@pytest.fixture
def products(tmp_path: Path, scene_data: ModuleType) -> list[Path]:
    """Two georeferenced synthetic products (different path/row) and a .tar of a third."""
    a = scene_data.make_product(tmp_path / "archive", path_row="204023")
    b = scene_data.make_product(tmp_path / "archive", path_row="204024")
    c = scene_data.make_product(tmp_path / "tmp", path_row="205023")
    with tarfile.open(tmp_path / "archive" / f"{c.name}.tar", "w") as tar:
        for path in sorted(c.iterdir()):
            tar.add(path, arcname=path.name)
    return [a, b, tmp_path / "archive" / f"{c.name}.tar"]


def test_folders_tars_globs_and_lists(products: list[Path], tmp_path: Path) -> None:
    a, b, c = products
    ids = [a.name, b.name, c.name.removesuffix(".tar")]
    assert [s.id for s in resolve_inputs([a, b, c])] == ids
    assert [s.kind for s in resolve_inputs(str(a))] == ["product"]
    # a glob, sorted (the .tar sorts after the folders of path/row 204)
    assert [s.id for s in resolve_inputs(str(tmp_path / "archive" / "LC08_*"))] == ids
    listing = tmp_path / "lists" / "scenes.txt"
    listing.parent.mkdir()
    listing.write_text(f"# my scenes\n../archive/{b.name}\n\n{c}\n../archive/*204023*\n")
    assert [s.id for s in resolve_inputs(listing)] == [ids[1], ids[2], ids[0]]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.tar", "input .*missing.tar does not exist"),
        (lambda tmp: str(tmp / "*.nothing"), "matches no file or folder"),
        (lambda tmp: tmp / "archive" / "x_MTL.txt", "is an MTL file: pass its product folder"),
        (lambda tmp: tmp / "archive" / "notes.md", "expected a product folder or .tar"),
        (lambda tmp: tmp / "empty.txt", "names no input"),
    ],
)
def test_bad_inputs(products: list[Path], tmp_path: Path, make: object, message: str) -> None:
    (tmp_path / "archive" / "x_MTL.txt").write_text("")
    (tmp_path / "archive" / "notes.md").write_text("")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        resolve_inputs(make(tmp_path))  # type: ignore[operator]


def test_the_same_scene_twice_is_refused(products: list[Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy" / products[0].name
    copy.parent.mkdir()
    copy.symlink_to(products[0])
    with pytest.raises(ValueError, match=f"two inputs are both scene {products[0].name}"):
        resolve_inputs([products[0], copy])


def test_stac_item_and_item_collection(
    products: list[Path], tmp_path: Path, scene_data: ModuleType
) -> None:
    a, b, _ = products
    item = tmp_path / "item.json"
    item.write_text(json.dumps(scene_data.stac_item(a, relative_to=tmp_path)))  # relative hrefs
    (scene,) = resolve_inputs(item)
    assert (scene.id, scene.kind, scene.href) == (a.name, "stac", f"{item}#{a.name}")
    assert scene.bands[4] == str(next(a.glob("*_SR_B5.TIF")))  # nir08: SR_B5, made absolute
    assert scene.qa == str(next(a.glob("*_QA_PIXEL.TIF")))
    assert scene.time == LandsatProduct(a).time
    # what pystac-client's item_collection().save_object() writes
    search = pystac.ItemCollection([pystac.Item.from_dict(scene_data.stac_item(p)) for p in (a, b)])
    search.save_object(str(tmp_path / "search.json"))
    assert [s.id for s in resolve_inputs(tmp_path / "search.json")] == [a.name, b.name]
    assert [s.id for s in resolve_inputs(search)] == [a.name, b.name]  # pystac objects too


def test_stac_item_without_a_band(
    products: list[Path], tmp_path: Path, scene_data: ModuleType
) -> None:
    data = scene_data.stac_item(products[0])
    del data["assets"]["swir16"]
    (tmp_path / "item.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"has no asset 'swir16' \(SR_B6\)"):
        resolve_inputs(tmp_path / "item.json")
    (tmp_path / "other.json").write_text(json.dumps({"type": "Collection"}))
    with pytest.raises(ValueError, match="expected a STAC Item or ItemCollection"):
        resolve_inputs(tmp_path / "other.json")


def test_stac_scene_reads_like_the_product(products: list[Path], scene_data: ModuleType) -> None:
    a = products[0]
    item = pystac.Item.from_dict(scene_data.stac_item(a))
    (source,) = resolve_inputs(item)
    assert isinstance(source, SceneSource)
    stac, product = open_scene(source), LandsatProduct(a)
    assert stac.has_qa and stac.crs == product.crs and stac.transform == product.transform
    assert stac.name == source.href
    for x, y in zip(stac.read_rows(20, 40), product.read_rows(20, 40), strict=True):
        np.testing.assert_array_equal(x, y)
