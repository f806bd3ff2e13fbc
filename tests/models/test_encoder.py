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
    tokens = xxs.forward_features(x, lat, lon, time)
    assert tokens.shape == (2, 105, 108)
    torch.testing.assert_close(xxs.forward_head(tokens), tokens[:, 4])
    model = timm.create_model("moemae_landsat_xxs", num_classes=5, global_pool="avg").eval()
    assert model(x, lat, lon, time).shape == (2, 5)
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
        a = xxs.forward_features(x, lat, lon, time)
        torch.manual_seed(123)
        b = xxs.forward_features(x, lat, lon, time)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    xxs.train()
    with torch.no_grad():
        g1 = xxs.forward_encoder(x, lat, lon, time).routing[0].gates
        g2 = xxs.forward_encoder(x, lat, lon, time).routing[0].gates
    xxs.eval()
    assert not torch.equal(g1, g2)


def test_metadata_changes_embeddings(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = image_batch()
    xxs.eval()
    with torch.no_grad():
        with_meta = xxs.forward_features(x, lat, lon, time)
        without = xxs.forward_features(x)
        nan = xxs.forward_features(x, lat * float("nan"), lon * float("nan"), time * float("nan"))
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
        xxs.forward_features(x, lat[:1], lon, time)
    with pytest.raises(ValueError, match=r"'time' must have shape \(2,\)"):
        xxs.forward_features(x, lat, lon, time.view(2, 1))


def test_autocast_bf16_close_to_fp32(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = image_batch()
    xxs.eval()
    with torch.no_grad():
        ref = xxs.forward_features(x, lat, lon, time)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = xxs.forward_features(x, lat, lon, time)
    assert torch.isfinite(low).all()
    assert (low.float() - ref).abs().mean() < 0.05
