"""MoEMAEEncoder: timm API, determinism, metadata, input validation, autocast."""

from __future__ import annotations

import pytest
import timm
import torch

import torchgeo_moemae  # noqa: F401
from tests.models import image_batch
from torchgeo_moemae.models import MoEMAEEncoder


@pytest.fixture(scope="module")
def xxs() -> MoEMAEEncoder:
    return timm.create_model("moemae_landsat_xxs")


def test_forward_shapes_and_pools(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = image_batch()
    xxs.eval()
    tokens = xxs.forward_features(x, lat=lat, lon=lon, time=time)
    assert tokens.shape == (2, 105, 108)
    torch.testing.assert_close(xxs.forward_head(tokens), tokens[:, 4])
    model = timm.create_model("moemae_landsat_xxs", num_classes=5, global_pool="avg").eval()
    assert model(x, lat=lat, lon=lon, time=time).shape == (2, 5)
    model.reset_classifier(3, "flatten")
    assert model.head.in_features == 105 * 108
    assert model(x).shape == (2, 3)


def test_forward_intermediates(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = image_batch()
    final, feats = xxs.forward_intermediates(x, indices=2, lat=lat, lon=lon, time=time)
    assert final.shape == (2, 105, 108)
    assert [f.shape for f in feats] == [(2, 108, 10, 10)] * 2
    only = xxs.forward_intermediates(
        x, indices=[0], output_fmt="NLC", intermediates_only=True, stop_early=True
    )
    assert only[0].shape == (2, 100, 108)


def test_eval_is_deterministic_and_training_routes_stochastically(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = image_batch(4)
    xxs.eval()
    with torch.no_grad():
        a = xxs.forward_features(x, lat=lat, lon=lon, time=time)
        torch.manual_seed(123)
        b = xxs.forward_features(x, lat=lat, lon=lon, time=time)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    xxs.train()
    with torch.no_grad():
        g1 = xxs.forward_encoder(x, lat=lat, lon=lon, time=time).routing[0].gates
        g2 = xxs.forward_encoder(x, lat=lat, lon=lon, time=time).routing[0].gates
    xxs.eval()
    assert not torch.equal(g1, g2)


def test_metadata_changes_embeddings(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = image_batch()
    xxs.eval()
    with torch.no_grad():
        with_meta = xxs.forward_features(x, lat=lat, lon=lon, time=time)
        without = xxs.forward_features(x)
        nan = xxs.forward_features(
            x, lat=lat * float("nan"), lon=lon * float("nan"), time=time * float("nan")
        )
    torch.testing.assert_close(without, nan)
    assert not torch.allclose(with_meta, without)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((2, 6, 40, 40), r"\(B, 7, 40, 40\)"),
        ((2, 7, 44, 44), r"40x40"),
        ((7, 40, 40), r"got \(7, 40, 40\)"),
    ],
)
def test_bad_image_raises(xxs: MoEMAEEncoder, shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        xxs.forward_features(torch.zeros(shape))


def test_bad_metadata_raises(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = image_batch()
    with pytest.raises(ValueError, match=r"'lat' must have shape \(2,\)"):
        xxs.forward_features(x, lat=lat[:1], lon=lon, time=time)
    with pytest.raises(ValueError, match=r"'time' must have shape \(2,\)"):
        xxs.forward_features(x, lat=lat, lon=lon, time=time.view(2, 1))


def test_nonfinite_pixels_are_refused_naming_the_samples(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = image_batch(4)
    x[1, 2, 3, 4] = float("nan")
    x[3, 0, 0, 0] = float("inf")
    with pytest.raises(
        ValueError, match=r"NaN/inf pixels in samples \[1, 3\].*allow_nonfinite=True"
    ):
        xxs.forward_features(x, lat=lat, lon=lon, time=time)
    allowing = timm.create_model("moemae_landsat_xxs", allow_nonfinite=True).eval()
    with torch.no_grad():
        tokens = allowing.forward_features(x, lat=lat, lon=lon, time=time)
    assert torch.isfinite(tokens[0]).all() and not torch.isfinite(tokens[1]).all()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("lat", 200.0, r"'lat' must be in \[-90, 90\] degrees or NaN.*\[200.0\] in samples \[1\]"),
        ("lat", -90.5, r"'lat' must be in \[-90, 90\]"),
        ("lon", -181.0, r"'lon' must be in \[-180, 180\]"),
        ("lat", float("inf"), r"'lat' must be in \[-90, 90\] degrees or NaN \(missing\)"),
        ("lon", float("-inf"), r"'lon' must be in"),
        ("time", float("inf"), r"'time' must be finite or NaN"),
    ],
)
def test_out_of_range_or_infinite_metadata_is_refused(
    xxs: MoEMAEEncoder, field: str, value: float, match: str
) -> None:
    x, lat, lon, time = image_batch()
    meta = {"lat": lat, "lon": lon, "time": time}
    meta[field] = meta[field].clone()
    meta[field][1] = value
    with pytest.raises(ValueError, match=match):
        xxs.forward_features(x, **meta)


def test_metadata_limits_and_nan_are_accepted(xxs: MoEMAEEncoder) -> None:
    x, _, _, time = image_batch()
    lat = torch.tensor([-90.0, float("nan")])
    lon = torch.tensor([180.0, -180.0])
    tokens = xxs.eval().forward_features(x, lat=lat, lon=lon, time=time)
    assert torch.isfinite(tokens).all()


def test_float32_time_is_refused(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = image_batch()
    with pytest.raises(TypeError, match=r"'time' is torch.float32.*float64 or int64"):
        xxs.forward_features(x, lat=lat, lon=lon, time=time.float())
    as_int = xxs.eval().forward_features(x, lat=lat, lon=lon, time=time.long())
    torch.testing.assert_close(as_int, xxs.forward_features(x, lat=lat, lon=lon, time=time))


@pytest.mark.parametrize(
    ("dtype", "match"),
    [
        (
            torch.uint8,
            r"floating-point tensor, got torch.uint8: convert it to float32 and normalise",
        ),
        (torch.int16, r"got torch.int16: convert it to float32 and normalise"),
        (torch.float64, r"x is torch.float64 but the model's weights are torch.float32.*x.to"),
    ],
)
def test_wrong_image_dtype_is_refused(xxs: MoEMAEEncoder, dtype: torch.dtype, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        xxs.forward_features(torch.zeros(2, 7, 40, 40).to(dtype))


def test_autocast_bf16_close_to_fp32(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = image_batch()
    xxs.eval()
    with torch.no_grad():
        ref = xxs.forward_features(x, lat=lat, lon=lon, time=time)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = xxs.forward_features(x, lat=lat, lon=lon, time=time)
    assert torch.isfinite(low).all()
    assert (low.float() - ref).abs().mean() < 0.05
