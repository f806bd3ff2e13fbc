"""Export of a Lightning pre-training checkpoint to a timm / Hugging Face Hub folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from torchgeo_moemae.cli import main as moemae_main
from torchgeo_moemae.export import export_encoder
from torchgeo_moemae.models import create_mae
from torchgeo_moemae.trainers import MoEMAEPretrainTask


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MoEMAEPretrainTask]:
    """A Lightning checkpoint of an XXS task after two optimiser steps (weights != init)."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("export")
    images = torch.randn(8, 7, 40, 40)
    data = [{"image": x, "lat": torch.tensor(50.0), "lon": torch.tensor(5.0)} for x in images]
    task = MoEMAEPretrainTask(model="XXS", lr=1e-2, warmup_fraction=0.0, log_figures=False)
    trainer = Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(task, DataLoader(data, batch_size=4))  # type: ignore[arg-type]
    path = root / "task.ckpt"
    trainer.save_checkpoint(path)
    return path, task


def _outputs(encoder: torch.nn.Module) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 7, 40, 40, generator=gen)
    lat, lon = torch.tensor([45.0, 50.0, float("nan")]), torch.tensor([5.0, -3.0, 10.0])
    encoder.eval()
    with torch.no_grad():
        return encoder.forward_features(x, lat=lat, lon=lon)


def test_export_loads_in_timm_exactly(
    checkpoint: tuple[Path, MoEMAEPretrainTask], tmp_path: Path
) -> None:
    path, task = checkpoint
    out = export_encoder(path, tmp_path / "encoder")
    assert {p.name for p in out.iterdir()} == {
        "model.safetensors",
        "config.json",
        "mae.safetensors",
    }
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "moemae_landsat_xxs"
    assert config["model_args"]["hour_encoding"] == "utc"  # trained here: the true UTC hour
    assert config["pretrained_cfg"]["input_size"] == [7, 40, 40]
    # a set first_conv makes timm <= 1.0.30 drop the 7-band patch embedding (SPEC section 7)
    assert config["pretrained_cfg"].get("first_conv") is None

    expected = _outputs(task.model.encoder)
    init = _outputs(timm.create_model("moemae_landsat_xxs"))
    assert not torch.allclose(expected, init)  # the export carries trained weights
    by_file = timm.create_model(
        "moemae_landsat_xxs",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(out / "model.safetensors")),
    )
    assert torch.equal(_outputs(by_file), expected)
    # the Hub loader's code path (config.json + model.safetensors), from a local folder
    by_folder = timm.create_model(f"local-dir:{out}", pretrained=True)
    assert torch.equal(_outputs(by_folder), expected)

    mae = create_mae("XXS", out / "mae.safetensors")
    for key, value in task.model.state_dict().items():
        assert torch.equal(mae.state_dict()[key], value), key


def test_export_without_mae_and_from_objects(
    checkpoint: tuple[Path, MoEMAEPretrainTask], tmp_path: Path
) -> None:
    _, task = checkpoint
    out = task.export_encoder(tmp_path / "a", save_mae=False)
    assert not (out / "mae.safetensors").exists()
    out = export_encoder(task.model, tmp_path / "b")
    assert json.loads((out / "config.json").read_text())["architecture"] == "moemae_landsat_xxs"
    with pytest.raises(ValueError, match="cannot tell the timm architecture"):
        export_encoder(create_mae("XXS"), tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="Lightning checkpoint not found"):
        export_encoder(tmp_path / "missing.ckpt", tmp_path / "d")


def test_export_cli(
    checkpoint: tuple[Path, MoEMAEPretrainTask], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, task = checkpoint
    assert moemae_main(["export", str(path), str(tmp_path / "out"), "--no-mae"]) == 0
    printed = capsys.readouterr().out
    assert 'timm.create_model("moemae_landsat_xxs"' in printed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    encoder = timm.create_model(f"local-dir:{tmp_path / 'out'}", pretrained=True)
    assert torch.equal(_outputs(encoder), _outputs(task.model.encoder))
