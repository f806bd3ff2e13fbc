"""embed_scene: the output raster (bands, CRS, grid, nodata, COG layout), agreement with the
single-scene loop it replaced, with the paper's features on the same windows and metadata and with
``moemae embed``, TorchGeo round trips, atomic writes."""

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
from torchgeo_moemae.scene import SceneError, embed_scene, read_mtl

#: the stored embeddings of the single-scene loop (see tests/data/landsat_scene/make_golden.py)
GOLDEN = Path(__file__).resolve().parents[1] / "data" / "landsat_scene" / "embed_scene_before.npz"
#: the crop's grid (window upper-left pixel centres on multiples of stride x 30 m): first window
#: at row 26, column 6 for stride 40 (see test_grid.py)
ROW0, COL0 = 26, 6

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
    encoder: MoEMAEEncoder,
    folder: Path,
    rows: int,
    cols: int,
    stride: int,
    pool: str,
    offset: tuple[int, int],
) -> np.ndarray:
    """Embeddings ``(dim, rows, cols)`` computed by hand: windows cut from the full arrays from
    pixel ``offset`` on, metadata from the MTL corners (pixel centres) with a direct pyproj call."""
    mtl = read_mtl(next(folder.glob("*_MTL.txt")))
    image = _stack(folder).astype(np.float32)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    r, c = r.ravel() * stride + offset[0], c.ravel() * stride + offset[1]
    windows = np.stack([image[:, i : i + 40, j : j + 40] for i, j in zip(r, c, strict=True)])
    # The window centre sits 19.5 pixels (pixel-centre coordinates) from its first pixel's centre.
    x = mtl.ul_x + (c + 19.5) * 30.0
    y = mtl.ul_y - (r + 19.5) * 30.0
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
        # 267 x 433 px at stride 40: 6 x 10 windows from row 26, column 6; pixel = 40 * 30 m.
        assert (src.height, src.width) == (6, 10)
        assert src.transform == Affine(1200, 0, 487005 + COL0 * 30, 0, -1200, 5929995 - ROW0 * 30)
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
    expected = _reference(encoder_s, crop, 6, 10, 40, "cls", (ROW0, COL0))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("stride", [40, 20])
def test_windows_equal_the_single_scene_loop(
    crop: Path, tmp_path: Path, scene_data: ModuleType, stride: int
) -> None:
    """Every window of the map equals the embedding the single-scene loop (before Lightning's
    predict loop) computed for the same window of the crop, within 1e-6."""
    golden = np.load(GOLDEN)
    encoder = scene_data.seeded_encoder("moemae_landsat_xxs", seed=0)
    out = embed_scene(crop, tmp_path / "emb.tif", encoder, stride=stride, progress=False)
    with rasterio.open(out) as src:
        got = src.read().transpose(1, 2, 0)  # (rows, cols, dim)
        x, y = src.transform.c, src.transform.f
    # map pixel (0, 0) is centred on the first window, (40 - stride) / 2 px inside it; the golden
    # windows start every 20 px from pixel 6
    first_row = round((5929995 - y) / 30 - (40 - stride) / 2)
    first_col = round((x - 487005) / 30 - (40 - stride) / 2)
    rows = (first_row + np.arange(got.shape[0]) * stride - 6) // 20
    cols = (first_col + np.arange(got.shape[1]) * stride - 6) // 20
    assert (first_row, first_col) == ((ROW0, COL0) if stride == 40 else (6, 6))
    expected = golden["cls"][rows[:, None], cols[None, :]]
    assert np.abs(got - expected).max() <= 1e-6


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
    top, left = ROW0 + 2 * 40, COL0 + 3 * 40  # window (2, 3)
    x, y = mtl.ul_x + (left + 19.5) * 30.0, mtl.ul_y - (top + 19.5) * 30.0
    lon, lat = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True).transform(x, y)
    window = _stack(crop)[:, top : top + 40, left : left + 40].astype(np.float32)
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
    np.testing.assert_allclose(embedded.features[0], scene_vector, atol=1e-6, rtol=0)


def test_real_crop_fill_is_nodata(crop: Path, tmp_path: Path, encoder_xxs: MoEMAEEncoder) -> None:
    copy = tmp_path / "crop"
    copy.mkdir()
    for path in crop.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    with rasterio.open(next(copy.glob("*_SR_B6.TIF")), "r+") as band:
        values = band.read(1)
        values[ROW0 : ROW0 + 40, COL0 : COL0 + 80] = 0  # windows (0, 0), (0, 1) in one band
        values[ROW0 + 40 : ROW0 + 80, COL0 + 80 : COL0 + 100] = 0  # half of window (1, 2): kept
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
    # the grid starts at row 6, column 6 (first pixel centres on multiples of 600 m)
    rows, cols = (scene_data.HEIGHT - 6 - 40) // 20 + 1, (scene_data.WIDTH - 6 - 40) // 20 + 1
    with rasterio.open(out) as src:
        got = src.read()
        # stride 20: a 20-px output pixel centred on its 40-px window (shifted 10 px in).
        shift = (6 + 10) * 30
        assert src.transform == Affine(600, 0, 487005 + shift, 0, -600, 5929995 - shift)
    assert got.shape == (encoder_xxs.num_features, rows, cols)
    expected = _reference(encoder_xxs, product, rows, cols, 20, pool, (6, 6))
    fill = np.isnan(got).all(axis=0)
    # Fill block rows 0..46, cols 0..66: windows entirely inside it are nodata, the others kept.
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
        (dict(stride=0), "stride must be positive"),
        (dict(batch_size=0), "batch_size must be positive"),
        (dict(max_fill_fraction=1.5), r"max_fill_fraction must be in \[0, 1\]"),
        (dict(max_cloud_fraction=-0.1), r"max_cloud_fraction must be in \[0, 1\]"),
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
        SceneError, match=r"the scene \(30x100 px\) is smaller than one 40x40 window"
    ):
        embed_scene(product, tmp_path / "emb.tif", encoder_xxs, progress=False)
