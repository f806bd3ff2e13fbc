"""embed_scene: the output raster (bands, CRS, grid, nodata, COG layout), agreement with the
paper's features on the same windows and metadata and with ``moemae embed``, TorchGeo round trips,
atomic writes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import ModuleType

import matplotlib.image
import numpy as np
import pytest
import rasterio
import torch
from pyproj import Transformer
from rasterio import Affine
from torch.utils.data import DataLoader
from torchgeo.datasets import RasterDataset

from torchgeo_moemae.bands import BANDS, BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from torchgeo_moemae.models import MoEMAEEncoder, MoEMAELandsat_Weights
from torchgeo_moemae.probe import extract_embeddings
from torchgeo_moemae.scene import embed_scene, read_mtl

# The real crop's TIFFs carry no georeferencing on purpose (the MTL has it): reading them directly
# here warns.
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def _stack(folder: Path) -> np.ndarray:
    """All seven bands of a product, ``(7, H, W)`` DN, read independently of the scene readers."""
    bands = []
    for band in BANDS:
        with rasterio.open(next(folder.glob(f"*_{band}.TIF"))) as src:
            bands.append(src.read(1))
    return np.stack(bands)


def _reference(
    encoder: MoEMAEEncoder, folder: Path, rows: int, cols: int, stride: int, pool: str
) -> np.ndarray:
    """Embeddings ``(dim, rows, cols)`` computed by hand: windows cut from the full arrays,
    metadata from the MTL corners (pixel centres) with a direct pyproj call."""
    mtl = read_mtl(next(folder.glob("*_MTL.txt")))
    image = _stack(folder).astype(np.float32)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    r, c = r.ravel(), c.ravel()
    windows = np.stack(
        [
            image[:, i * stride : i * stride + 40, j * stride : j * stride + 40]
            for i, j in zip(r, c, strict=True)
        ]
    )
    # The window centre sits 19.5 pixels (pixel-centre coordinates) from its first pixel's centre.
    x = mtl.ul_x + (c * stride + 19.5) * 30.0
    y = mtl.ul_y - (r * stride + 19.5) * 30.0
    lon, lat = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True).transform(x, y)
    when = dt.datetime(2020, 9, 27, 11, 10, 50, 314003, tzinfo=dt.UTC).timestamp()
    mean = torch.tensor(BIGEARTHNET_LS_MEAN).view(1, 7, 1, 1)
    std = torch.tensor(BIGEARTHNET_LS_STD).view(1, 7, 1, 1)
    with torch.no_grad():
        # the paper's features: the tokens before the final LayerNorm
        ((patches, prefix),) = encoder.forward_intermediates(
            (torch.from_numpy(windows) - mean) / std,
            indices=[len(encoder.blocks) - 1],
            return_prefix_tokens=True,
            output_fmt="NLC",
            intermediates_only=True,
            lat=torch.tensor(lat, dtype=torch.float64),
            lon=torch.tensor(lon, dtype=torch.float64),
            time=torch.full((len(r),), when, dtype=torch.float64),
        )
        tokens = torch.cat([prefix, patches], dim=1)
    emb = tokens[:, 4] if pool == "cls" else tokens.mean(dim=1)
    return emb.numpy().T.reshape(-1, rows, cols)


@pytest.fixture(scope="module")
def crop_embedding(
    encoder_s: MoEMAEEncoder, crop: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("emb") / "liverpool.tif"
    torch.set_num_threads(1)
    return embed_scene(crop, out, encoder_s, progress=False)


def test_real_crop_output_raster(crop_embedding: Path) -> None:
    with rasterio.open(crop_embedding) as src:
        assert src.count == 144 and src.dtypes[0] == "float32"
        assert src.crs.to_epsg() == 32630
        # 267 x 433 px at stride 40: 6 x 10 windows; pixel = 40 * 30 m, same upper-left corner.
        assert (src.height, src.width) == (6, 10)
        assert src.transform == Affine(1200, 0, 487005, 0, -1200, 5929995)
        assert np.isnan(src.nodata)
        assert src.profile["tiled"] and src.profile["compress"] == "deflate"
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        data = src.read()
    # The crop has no fill pixel (no DN 0 in any band), so no window is nodata.
    assert not np.isnan(data).any()
    png = matplotlib.image.imread(crop_embedding.with_suffix(".png"))
    # one 52 x 52 px block per window (a 10 x 6 px picture was not viewable): longer side >= 512
    assert png.shape == (6 * 52, 10 * 52, 4) and (png[..., 3] == 1).all()
    np.testing.assert_array_equal(png[::52, ::52], png[51::52, 51::52])


def test_real_crop_windows_match_the_paper_features(
    crop_embedding: Path, encoder_s: MoEMAEEncoder, crop: Path
) -> None:
    with rasterio.open(crop_embedding) as src:
        got = src.read()
    expected = _reference(encoder_s, crop, 6, 10, 40, "cls")
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pool", ["cls", "avg"])
def test_embed_and_embed_scene_give_the_same_vector(
    crop: Path, tmp_path: Path, encoder_xxs: MoEMAEEncoder, pool: str
) -> None:
    """One window of the committed crop, embedded by ``moemae embed``'s extractor (a dataset
    sample normalised by the weights entry's transforms) and by ``embed_scene``: one vector."""
    out = embed_scene(crop, tmp_path / "emb.tif", encoder_xxs, pool=pool, progress=False)
    with rasterio.open(out) as src:
        scene_vector = src.read()[:, 2, 3]
    mtl = read_mtl(next(crop.glob("*_MTL.txt")))
    x, y = mtl.ul_x + (3 * 40 + 19.5) * 30.0, mtl.ul_y - (2 * 40 + 19.5) * 30.0
    lon, lat = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True).transform(x, y)
    window = _stack(crop)[:, 80:120, 120:160].astype(np.float32)
    sample = {
        "image": torch.from_numpy(window),
        "lat": torch.tensor(lat, dtype=torch.float64),
        "lon": torch.tensor(lon, dtype=torch.float64),
        "time": torch.tensor(mtl.time, dtype=torch.float64),
        "label": torch.tensor(0),
    }
    transforms = MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS.transforms
    embedded = extract_embeddings(
        encoder_xxs,
        DataLoader([sample], batch_size=1),
        pools=pool,
        device="cpu",
        transform=transforms,
        progress=False,
    )[pool]
    np.testing.assert_allclose(embedded.features[0], scene_vector, atol=1e-5, rtol=0)


def test_real_crop_fill_is_nodata(crop: Path, tmp_path: Path, encoder_xxs: MoEMAEEncoder) -> None:
    copy = tmp_path / "crop"
    copy.mkdir()
    for path in crop.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    with rasterio.open(next(copy.glob("*_SR_B6.TIF")), "r+") as band:
        values = band.read(1)
        values[:40, :80] = 0  # two whole windows of fill in one band
        values[40:80, 80:100] = 0  # half of window (1, 2): kept by the default rule
        band.write(values, 1)
    out = embed_scene(copy, tmp_path / "emb.tif", encoder_xxs, progress=False)
    with rasterio.open(out) as src:
        nodata = np.isnan(src.read()).all(axis=0)
    expected = np.zeros((6, 10), dtype=bool)
    expected[0, :2] = True
    np.testing.assert_array_equal(nodata, expected)
    out = embed_scene(
        copy, tmp_path / "strict.tif", encoder_xxs, max_fill_fraction=0.25, progress=False
    )
    with rasterio.open(out) as src:
        assert np.isnan(src.read(1))[1, 2]
    png = matplotlib.image.imread(out.with_suffix(".png"))[::52, ::52]  # one pixel per window
    assert (png[0, :2, 3] == 0).all() and (png[2:, :, 3] == 1).all()


@pytest.mark.parametrize("pool", ["cls", "avg"])
def test_overlapping_windows_match_the_paper_features(
    product: Path, tmp_path: Path, encoder_xxs: MoEMAEEncoder, pool: str, scene_data: ModuleType
) -> None:
    out = embed_scene(
        product,
        tmp_path / "emb.tif",
        encoder_xxs,
        stride=20,
        pool=pool,
        batch_size=7,
        progress=False,
    )
    rows, cols = (scene_data.HEIGHT - 40) // 20 + 1, (scene_data.WIDTH - 40) // 20 + 1
    with rasterio.open(out) as src:
        got = src.read()
        # stride 20: a 20-px output pixel centred on its 40-px window (shifted 10 px in).
        assert src.transform == Affine(600, 0, 487005 + 300, 0, -600, 5929995 - 300)
    assert got.shape == (encoder_xxs.num_features, rows, cols)
    expected = _reference(encoder_xxs, product, rows, cols, 20, pool)
    fill = np.isnan(got).all(axis=0)
    # Fill block rows 0..40, cols 0..60: windows entirely inside it are nodata, the others kept.
    assert fill.sum() == 2 and fill[0, :2].all()
    np.testing.assert_allclose(got[:, ~fill], expected[:, ~fill], atol=1e-5, rtol=0)


def test_output_opens_as_rasterdataset(crop_embedding: Path) -> None:
    dataset = RasterDataset(paths=crop_embedding)
    assert dataset.crs.to_epsg() == 32630 and dataset.res == (1200.0, 1200.0)
    sample = dataset[dataset.bounds]
    assert sample["image"].shape == (144, 6, 10)
    with rasterio.open(crop_embedding) as src:
        np.testing.assert_allclose(sample["image"].numpy(), src.read())


class LandsatSR(RasterDataset):
    """A TorchGeo dataset of the synthetic product's bands (one file per band)."""

    filename_glob = "LC08_*_SR_B1.TIF"
    filename_regex = r"^LC08_L2SP_\d{6}_(?P<date>\d{8})_\d{8}_\d{2}_T1_(?P<band>SR_B\d)\.TIF$"
    separate_files = True
    all_bands = BANDS


def test_rasterdataset_source_matches_product(
    tmp_path: Path, scene_data: ModuleType, encoder_xxs: MoEMAEEncoder
) -> None:
    product = scene_data.make_product(tmp_path / "in", georeferenced=True)
    folder = embed_scene(product, tmp_path / "a.tif", encoder_xxs, progress=False, quicklook=False)
    time = read_mtl(next(product.glob("*_MTL.txt"))).time
    dataset = embed_scene(
        LandsatSR(paths=product),
        tmp_path / "b.tif",
        encoder_xxs,
        time=time,
        progress=False,
        quicklook=False,
    )
    with rasterio.open(folder) as a, rasterio.open(dataset) as b:
        assert a.transform == b.transform and a.crs == b.crs
        np.testing.assert_allclose(a.read(), b.read(), atol=1e-5, rtol=0)


def test_failure_leaves_nothing(
    product: Path, tmp_path: Path, encoder_xxs: MoEMAEEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "emb.tif").write_bytes(b"previous result")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("model failed")

    monkeypatch.setattr(encoder_xxs, "forward_intermediates", broken)
    with pytest.raises(RuntimeError, match="model failed"):
        embed_scene(product, out_dir / "emb.tif", encoder_xxs, progress=False, overwrite=True)
    # The previous file is untouched and no temporary file is left behind.
    assert [p.name for p in out_dir.iterdir()] == ["emb.tif"]
    assert (out_dir / "emb.tif").read_bytes() == b"previous result"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(pool="max"), "pool must be one of"),
        (dict(pool="all"), "one band per embedding dimension"),
        (dict(stride=0), "size and stride must be positive"),
        (dict(batch_size=0), "batch_size must be positive"),
        (dict(max_fill_fraction=1.5), r"max_fill_fraction must be in \[0, 1\]"),
    ],
)
def test_bad_arguments(
    product: Path, tmp_path: Path, encoder_xxs: MoEMAEEncoder, kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        embed_scene(product, tmp_path / "emb.tif", encoder_xxs, progress=False, **kwargs)
    assert not list(tmp_path.glob("*.tif"))


def test_scene_smaller_than_window(
    tmp_path: Path, scene_data: ModuleType, encoder_xxs: MoEMAEEncoder
) -> None:
    product = scene_data.make_product(tmp_path, height=30, width=100, fill=None)
    with pytest.raises(
        ValueError, match=r"the scene \(30x100 px\) is smaller than one 40x40 window"
    ):
        embed_scene(product, tmp_path / "emb.tif", encoder_xxs, progress=False)
