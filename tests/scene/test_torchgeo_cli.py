"""`torchgeo predict --config configs/embed_scenes.yaml`: TorchGeo's own CLI runs the scene engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import torch
import yaml
from torchgeo.main import main as torchgeo_main

from torchgeo_moemae.models.factory import load_model
from torchgeo_moemae.scene import embed_scenes

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "embed_scenes.yaml"


def test_torchgeo_predict_embeds_the_real_crop(
    crop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load(CONFIG.read_text())
    assert config["data"]["init_args"]["inputs"] == ["docs/data/landsat8-l2-scene"]
    args = [
        "predict",
        "--config",
        str(CONFIG),
        f"--data.init_args.inputs=[{crop}]",  # the config's path is relative to the repository
        "--model.init_args.model=XXS",
        "--model.init_args.weights=null",  # offline: no published weights
        "--model.init_args.random_init=true",
    ]
    torchgeo_main(args)
    maps = tmp_path / "runs" / "embed_scenes" / "maps"
    collection = pystac.Collection.from_file(str(maps / "collection.json"))
    (item,) = collection.get_items()
    assert item.id == crop.name and item.properties["moemae:settings"]["stride"] == 40
    with rasterio.open(item.assets["embedding"].get_absolute_href()) as src:
        assert (src.count, src.height, src.width) == (108, 6, 10)
        got = src.read()
    # the same map as the Python API's with the same weights (torchgeo seeds 0 before the model)
    torch.manual_seed(0)
    encoder, weights = load_model("XXS")
    embed_scenes(crop, tmp_path / "api", encoder, weights=weights, progress=False)
    with rasterio.open(tmp_path / "api" / f"{crop.name}.tif") as src:
        np.testing.assert_allclose(src.read(), got, atol=1e-6, rtol=0)
