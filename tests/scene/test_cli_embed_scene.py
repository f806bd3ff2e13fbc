"""``moemae embed-scene``: end to end on a synthetic product, weights, and the random-init warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import timm
from safetensors.torch import save_file

from torchgeo_moemae.cli import main
from torchgeo_moemae.scene import embed_scene, load_scene_encoder


def embed_scene_args(product: Path, out: Path) -> list[str]:
    """``moemae embed-scene`` of ``product`` into ``out`` with the XXS model."""
    return ["embed-scene", str(product), "--out", str(out), "--model", "XXS"]


def test_embed_scene_random_init_warns(
    product: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "emb.tif"
    with pytest.warns(UserWarning, match="NO WEIGHTS: 'XXS' is randomly initialised"):
        code = main(
            [
                *embed_scene_args(product, out),
                "--threads",
                "1",
                "--no-progress",
            ]
        )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"{out} (weights: random init)" in printed and str(out.with_suffix(".png")) in printed
    with rasterio.open(out) as src:
        assert src.count == 108 and src.tags()["pool"] == "cls"


def test_embed_scene_with_weights_matches_api(product: Path, tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    save_file(timm.create_model("moemae_landsat_xxs").state_dict(), weights)
    out = tmp_path / "cli.tif"
    args = [
        *embed_scene_args(product, out),
        "--weights",
        str(weights),
    ]
    assert main([*args, "--pool", "avg", "--stride", "30", "--no-progress", "--no-quicklook"]) == 0
    assert not out.with_suffix(".png").exists()
    encoder, source = load_scene_encoder("XXS", weights)
    assert source.source == str(weights) and source.sha256 is not None
    api = embed_scene(product, tmp_path / "api.tif", encoder, pool="avg", stride=30, progress=False)
    with rasterio.open(out) as a, rasterio.open(api) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_load_scene_encoder_refuses_other_models() -> None:
    with pytest.raises(ValueError, match="must be a MoE-MAE encoder"):
        load_scene_encoder("resnet18", None)
