"""The window grid: anchored in the CRS, counts, output transform, centres and lat/lon."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import CRS, Transformer
from rasterio import Affine

from torchgeo_moemae.scene import WindowGrid

UTM30 = CRS.from_epsg(32630)
#: the real crop: pixel edges 15 m off multiples of 30 m (centres on them), as Landsat's grid
SCENE = Affine(30, 0, 487005, 0, -30, 5929995)


@pytest.mark.parametrize("stride", [40, 20, 13, 7])
def test_first_pixel_centres_on_multiples_of_the_stride(stride: int) -> None:
    grid = WindowGrid(267, 433, SCENE, UTM30, stride=stride)
    assert 0 <= grid.row0 < stride and 0 <= grid.col0 < stride
    for i in range(grid.rows):
        for j in (0, grid.cols - 1):
            # the centre of window (i, j)'s upper-left pixel, in map metres
            x, y = SCENE @ (grid.col0 + j * stride + 0.5, grid.top(i) + 0.5)
            assert x % (30 * stride) == 0 and y % (30 * stride) == 0
    # every whole window on that lattice, and no more
    assert grid.row0 + (grid.rows - 1) * stride + 40 <= 267 < grid.row0 + grid.rows * stride + 40
    assert grid.col0 + (grid.cols - 1) * stride + 40 <= 433 < grid.col0 + grid.cols * stride + 40


def test_crop_grid() -> None:
    """The crop's stride-40 grid: the lattice's first window starts 26 rows and 6 columns in."""
    grid = WindowGrid(267, 433, SCENE, UTM30, stride=40)
    assert (grid.row0, grid.col0, grid.rows, grid.cols) == (26, 6, 6, 10)
    assert grid.out_transform == Affine(1200, 0, 487005 + 6 * 30, 0, -1200, 5929995 - 26 * 30)


def test_edges_on_multiples_when_pixel_edges_are() -> None:
    """A raster whose pixel edges sit on multiples of 30 m: window edges on multiples of 1200 m."""
    grid = WindowGrid(300, 300, Affine(30, 0, 300030, 0, -30, 6000090), UTM30, stride=40)
    x, y = grid.out_transform.c, grid.out_transform.f
    assert x % 1200 == 0 and y % 1200 == 0 and x >= 300030 and y <= 6000090


def test_overlapping_scenes_share_the_grid() -> None:
    """Two scenes offset by any whole number of pixels: their maps' pixels coincide."""
    other = SCENE @ Affine.translation(57, 91)  # 57 columns right, 91 rows down
    for stride in (40, 20, 13):
        a = WindowGrid(267, 433, SCENE, UTM30, stride=stride).out_transform
        b = WindowGrid(267, 433, other, UTM30, stride=stride).out_transform
        col, row = ~a @ (b.c, b.f)
        assert (a.a, a.e) == (b.a, b.e)
        assert col == pytest.approx(round(col), abs=1e-9) and row == pytest.approx(
            round(row), abs=1e-9
        )


def test_output_pixels_centred_on_windows() -> None:
    for stride in (40, 20, 13):
        grid = WindowGrid(267, 433, SCENE, UTM30, stride=stride)
        x, y = grid.centres(2)
        # Output pixel (2, j) has its centre at the centre of window (2, j).
        cx, cy = grid.out_transform @ (np.arange(grid.cols) + 0.5, np.full(grid.cols, 2.5))
        np.testing.assert_allclose(x, cx)
        np.testing.assert_allclose(y, cy)
        assert grid.out_transform.a == 30 * stride and grid.out_transform.e == -30 * stride


def test_latlon_matches_pyproj() -> None:
    grid = WindowGrid(267, 433, SCENE, UTM30, stride=40)
    lat, lon = grid.latlon(3)
    # Window (3, 7) covers rows 26 + 120 .. and columns 6 + 280 ..; its centre is pixel-centre
    # 19.5 from the first, whose centre is the MTL corner 487020 / 5929980 plus 30 m steps.
    x, y = 487020 + (6 + 7 * 40 + 19.5) * 30, 5929980 - (26 + 3 * 40 + 19.5) * 30
    elon, elat = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True).transform(x, y)
    assert lat[7] == pytest.approx(elat, abs=1e-9) and lon[7] == pytest.approx(elon, abs=1e-9)
    assert 53.3 < lat[7] < 53.5 and -3.3 < lon[7] < -3.0  # the Sefton coast, north of Liverpool


def test_scene_too_small() -> None:
    with pytest.raises(ValueError, match="smaller than one 40x40 window"):
        WindowGrid(39, 433, SCENE, UTM30)
    with pytest.raises(ValueError, match="holds no whole 40x40 window of the grid"):
        WindowGrid(267, 433, SCENE, UTM30, stride=1000)  # the lattice's first row is 666 px in
