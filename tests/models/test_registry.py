"""timm registration: sizes and parameter counts, pretrained loading from files, folders and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

import torchgeo_moemae  # noqa: F401
from torchgeo_moemae.models import create_mae

# Parameter counts of the authors' sizes (as the authors' code counts them).
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


@pytest.mark.usefixtures("offline_empty_hub_cache")
def test_pretrained_offline_without_cache_fails_with_instructions() -> None:
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


def test_overlay_file_may_be_an_export_folder(tmp_path: Path) -> None:
    from torchgeo_moemae.export import export_encoder

    mae = create_mae("XXS")
    out = export_encoder(mae, tmp_path / "export", save_mae=False)
    x = torch.randn(2, 7, 40, 40)
    by_folder = timm.create_model(
        "moemae_landsat_xxs", pretrained=True, pretrained_cfg_overlay=dict(file=str(out))
    ).eval()
    by_file = timm.create_model(
        "moemae_landsat_xxs",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(out / "model.safetensors")),
    ).eval()
    expected = mae.encoder.eval().forward_features(x)
    torch.testing.assert_close(by_folder.forward_features(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(by_file.forward_features(x), expected, rtol=0, atol=0)
