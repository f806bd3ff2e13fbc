"""The window grid: counts, output transform, window centres and their latitude/longitude."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import CRS, Transformer
from rasterio import Affine

from torchgeo_moemae.scene import WindowGrid

UTM30 = CRS.from_epsg(32630)
SCENE = Affine(30, 0, 487005, 0, -30, 5929995)


@pytest.mark.parametrize(
    ("stride", "rows", "cols"), [(40, 6, 10), (20, 12, 20), (13, 18, 31), (1000, 1, 1)]
)
def test_counts(stride: int, rows: int, cols: int) -> None:
    grid = WindowGrid(267, 433, SCENE, UTM30, stride=stride)
    assert (grid.rows, grid.cols) == (rows, cols)
    # The last window ends inside the scene, the next one would not.
    assert (rows - 1) * stride + 40 <= 267 < rows * stride + 40


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
    # Window (3, 7) covers pixels 120..159 x 280..319; its centre is pixel-centre 19.5 from the
    # first, whose centre is the MTL corner 487020 / 5929980 plus 30 m steps.
    x, y = 487020 + (7 * 40 + 19.5) * 30, 5929980 - (3 * 40 + 19.5) * 30
    elon, elat = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True).transform(x, y)
    assert lat[7] == pytest.approx(elat, abs=1e-9) and lon[7] == pytest.approx(elon, abs=1e-9)
    assert 53.3 < lat[7] < 53.5 and -3.3 < lon[7] < -3.0  # the Sefton coast, north of Liverpool


def test_scene_too_small() -> None:
    with pytest.raises(ValueError, match="smaller than one 40x40 window"):
        WindowGrid(39, 433, SCENE, UTM30)
