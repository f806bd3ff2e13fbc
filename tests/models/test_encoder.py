"""Encoder and MAE: sizes, timm API, determinism, input validation, pretrained loading errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

import torchgeo_moemae  # noqa: F401
from torchgeo_moemae.datasets.stats import BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from torchgeo_moemae.models import MoEMAEEncoder, create_mae, get_model, get_weight, list_models

# Parameter counts of the authors' sizes (SPEC section 2 and the issue's acceptance list).
SIZES = {
    "moemae_landsat": ("S", 2_366_798, 2_537_562),
    "moemae_landsat_xs": ("XS", 1_209_996, 1_379_032),
    "moemae_landsat_xxs": ("XXS", 657_817, 824_693),
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", list(SIZES))
def test_parameter_counts(name: str) -> None:
    size, encoder_params, mae_params = SIZES[name]
    assert _count(timm.create_model(name)) == encoder_params
    assert _count(create_mae(size)) == mae_params


def _batch(b: int = 2) -> tuple[torch.Tensor, ...]:
    x = torch.randn(b, 7, 40, 40)
    lat = torch.linspace(40, 60, b)
    lon = torch.linspace(-5, 25, b)
    time = torch.linspace(1.5e9, 1.53e9, b, dtype=torch.float64)
    return x, lat, lon, time


@pytest.fixture(scope="module")
def xxs() -> MoEMAEEncoder:
    return timm.create_model("moemae_landsat_xxs")


def test_forward_shapes_and_pools(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = _batch()
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
    x, lat, lon, time = _batch()
    final, feats = xxs.forward_intermediates(x, indices=2, lat=lat, lon=lon, time=time)
    assert final.shape == (2, 105, 108)
    assert [f.shape for f in feats] == [(2, 108, 10, 10)] * 2
    only = xxs.forward_intermediates(
        x, indices=[0], output_fmt="NLC", intermediates_only=True, stop_early=True
    )
    assert only[0].shape == (2, 100, 108)


def test_eval_is_deterministic_and_training_routes_stochastically(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = _batch(4)
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
    x, lat, lon, time = _batch()
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
    x, lat, lon, time = _batch()
    with pytest.raises(ValueError, match=r"'lat' must have shape \(2,\)"):
        xxs.forward_features(x, lat=lat[:1], lon=lon, time=time)
    with pytest.raises(ValueError, match=r"'time' must have shape \(2,\)"):
        xxs.forward_features(x, lat=lat, lon=lon, time=time.view(2, 1))


def test_nonfinite_pixels_are_refused_naming_the_samples(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = _batch(4)
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
    x, lat, lon, time = _batch()
    meta = {"lat": lat, "lon": lon, "time": time}
    meta[field] = meta[field].clone()
    meta[field][1] = value
    with pytest.raises(ValueError, match=match):
        xxs.forward_features(x, **meta)


def test_metadata_limits_and_nan_are_accepted(xxs: MoEMAEEncoder) -> None:
    x, _, _, time = _batch()
    lat = torch.tensor([-90.0, float("nan")])
    lon = torch.tensor([180.0, -180.0])
    tokens = xxs.eval().forward_features(x, lat=lat, lon=lon, time=time)
    assert torch.isfinite(tokens).all()


def test_float32_time_is_refused(xxs: MoEMAEEncoder) -> None:
    x, lat, lon, time = _batch()
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
    x, lat, lon, time = _batch()
    xxs.eval()
    with torch.no_grad():
        ref = xxs.forward_features(x, lat=lat, lon=lon, time=time)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = xxs.forward_features(x, lat=lat, lon=lon, time=time)
    assert torch.isfinite(low).all()
    assert (low.float() - ref).abs().mean() < 0.05


def test_mae_losses_and_full_reconstruction() -> None:
    mae = create_mae("XXS").eval()
    x, lat, lon, time = _batch()
    out = mae(x, lat, lon, time)
    assert out.pred.shape == out.target.shape == (2, 100, 112)
    assert out.mask.sum(1).tolist() == [75.0, 75.0]
    manual = ((out.pred - out.target) ** 2).sum(-1)
    torch.testing.assert_close(out.loss_masked, manual[out.mask.bool()].mean())
    torch.testing.assert_close(out.loss_visible, manual[~out.mask.bool()].mean())
    torch.testing.assert_close(
        out.loss(0.1, 0.5), out.loss_masked + 0.1 * out.loss_visible + 0.5 * out.moe_loss
    )
    full = mae(x, lat, lon, time, mask_ratio=0.0)
    assert full.mask.sum() == 0 and full.loss_masked == 0


def test_pretrained_offline_without_cache_fails_with_instructions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"pretrained_cfg_overlay=dict\(file="):
        timm.create_model("moemae_landsat", pretrained=True)


def test_pretrained_without_published_weights_raises() -> None:
    with pytest.raises(RuntimeError, match="No published weights"):
        timm.create_model("moemae_landsat_xs", pretrained=True)


def test_missing_local_file_raises() -> None:
    with pytest.raises(RuntimeError, match="does-not-exist"):
        timm.create_model(
            "moemae_landsat",
            pretrained=True,
            pretrained_cfg_overlay=dict(file="does-not-exist.pth"),
        )


def test_torchgeo_style_api(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    assert list_models() == ["moemae_landsat", "moemae_landsat_xs", "moemae_landsat_xxs"]
    weight = get_weight("MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS")
    assert weight.meta["in_chans"] == 7 and weight.meta["model"] == "moemae_landsat"
    assert weight.url.startswith("https://hf.co/albughdadim/")
    normalised = weight.transforms(torch.full((1, 7, 40, 40), 10_000.0))
    assert normalised.shape == (1, 7, 40, 40)
    source = timm.create_model("moemae_landsat_xxs").eval()
    save_file(source.state_dict(), tmp_path / "model.safetensors")
    loaded = get_model("moemae_landsat_xxs", weights=tmp_path).eval()
    x = torch.randn(1, 7, 40, 40)
    torch.testing.assert_close(loaded(x), source(x))
    with pytest.raises(ValueError, match="not a valid weights name"):
        get_weight("nope")


def test_weights_transforms_take_sample_dicts_like_torchgeo() -> None:
    transforms = get_weight("MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS").transforms
    image = torch.full((7, 40, 40), 10_000.0)
    mean = torch.tensor(BIGEARTHNET_LS_MEAN).view(7, 1, 1)
    std = torch.tensor(BIGEARTHNET_LS_STD).view(7, 1, 1)
    expected = (image - mean) / std
    sample = {"image": image.clone(), "lat": torch.tensor(48.0), "label": torch.tensor([0, 1])}
    out = transforms(sample)
    torch.testing.assert_close(out["image"], expected)  # unbatched stays (7, 40, 40)
    assert torch.equal(out["lat"], sample["lat"]) and torch.equal(out["label"], sample["label"])
    torch.testing.assert_close(transforms(image.clone()), expected)
    torch.testing.assert_close(
        transforms(image.expand(2, -1, -1, -1)), expected.expand(2, -1, -1, -1)
    )


def test_get_model_features_only_loads_weights(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = timm.create_model("moemae_landsat_xxs").eval()
    save_file(source.state_dict(), tmp_path / "model.safetensors")
    features = get_model("moemae_landsat_xxs", tmp_path, features_only=True, out_indices=[1]).eval()
    x = torch.randn(2, 7, 40, 40)
    _, expected = source.forward_intermediates(x, [1])
    torch.testing.assert_close(features(x)[0], expected[0])
