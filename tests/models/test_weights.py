"""TorchGeo-style weights API: entries, lookup, the light normalisation transform."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

import torchgeo_moemae  # noqa: F401
from torchgeo_moemae.models import get_model, get_weight, list_models


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


def test_transforms_normalise_tensors_and_sample_dicts() -> None:
    from torchgeo_moemae.bands import BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD

    weight = get_weight("MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS")
    x = torch.rand(2, 7, 40, 40) * 20_000
    mean = torch.tensor(BIGEARTHNET_LS_MEAN).view(7, 1, 1)
    std = torch.tensor(BIGEARTHNET_LS_STD).view(7, 1, 1)
    torch.testing.assert_close(weight.transforms(x), (x - mean) / std)
    image = x[0]
    sample = {"image": image, "lat": torch.tensor(50.0)}
    out = weight.transforms(sample)
    torch.testing.assert_close(out["image"], (image - mean) / std)
    assert out["lat"] is sample["lat"] and sample["image"] is image  # input dict untouched
