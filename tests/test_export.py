"""Export of a Lightning pre-training checkpoint to a timm / Hugging Face Hub folder."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import timm
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from torchgeo_moemae.cli import main as moemae_main
from torchgeo_moemae.errors import CheckpointError
from torchgeo_moemae.export import export_encoder
from torchgeo_moemae.models import MoEMAE, MoEMAEEncoder, create_mae
from torchgeo_moemae.models.checkpoint import read_lightning_checkpoint
from torchgeo_moemae.models.registry import MODEL_SIZES
from torchgeo_moemae.trainers import MoEMAEPretrainTask


@pytest.fixture(scope="module")
def checkpoint(
    tmp_path_factory: pytest.TempPathFactory, make_trainer: Callable[..., Trainer]
) -> tuple[Path, MoEMAEPretrainTask]:
    """A Lightning checkpoint of an XXS task after two optimiser steps (weights != init)."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("export")
    images = torch.randn(8, 7, 40, 40)
    data = [{"image": x, "lat": torch.tensor(50.0), "lon": torch.tensor(5.0)} for x in images]
    task = MoEMAEPretrainTask(model="XXS", lr=1e-2, warmup_fraction=0.0, log_figures=False)
    trainer = make_trainer(root, max_steps=2)
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
    # timm >= 1.0.31 (the floor) adapts this 7-band first conv to another in_chans
    assert config["pretrained_cfg"]["first_conv"] == "patch_embed.proj"

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
        export_encoder(MoEMAE(MoEMAEEncoder(**MODEL_SIZES["XXS"])), tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="Lightning checkpoint not found"):
        export_encoder(tmp_path / "missing.ckpt", tmp_path / "d")


def test_export_cli(
    checkpoint: tuple[Path, MoEMAEPretrainTask], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, task = checkpoint
    assert moemae_main(["export", str(path), "--out", str(tmp_path / "out"), "--no-mae"]) == 0
    printed = capsys.readouterr().out
    assert 'timm.create_model("moemae_landsat_xxs"' in printed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    encoder = timm.create_model(f"local-dir:{tmp_path / 'out'}", pretrained=True)
    assert torch.equal(_outputs(encoder), _outputs(task.model.encoder))


# --- verified input, complete output ----------------------------------------


def _flip_byte_in_a_tensor(source: Path, target: Path) -> None:
    """Copy ``source`` with one byte flipped inside the largest tensor record."""
    with zipfile.ZipFile(source) as archive:
        record = max(
            (i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size
        )
        payload = archive.read(record)
    data = bytearray(source.read_bytes())
    start = data.find(payload)
    assert start > 0 and data.find(payload, start + 1) == -1
    data[start + len(payload) // 2] ^= 0x40
    target.write_bytes(bytes(data))


def _export_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = moemae_main(["export", args[0], "--out", *args[1:]])
    return code, capsys.readouterr().err


def test_export_refuses_a_damaged_checkpoint(
    checkpoint: tuple[Path, MoEMAEPretrainTask], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = checkpoint
    damaged = tmp_path / "damaged.ckpt"
    _flip_byte_in_a_tensor(path, damaged)
    # torch.load reads it without complaint: the weights are silently wrong (the bug)
    good = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    bad = torch.load(damaged, map_location="cpu", weights_only=False)["state_dict"]
    assert any(not torch.equal(good[k], bad[k]) for k in good)
    with pytest.raises(CheckpointError, match="fails its CRC-32 check"):
        read_lightning_checkpoint(damaged)
    code, err = _export_cli([str(damaged), str(tmp_path / "out")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "fails its CRC-32 check" in err and str(damaged) in err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_export_refuses_empty_and_foreign_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.ckpt"
    empty.touch()  # used to give a bare EOFError
    code, err = _export_cli([str(empty), str(tmp_path / "a")], capsys)
    assert code == 2 and err.count("\n") == 1 and "empty file (0 bytes)" in err
    # an incomplete file in the authors' training checkpoint layout (their complete ones convert)
    authors = tmp_path / "pretrained_S_best.pth"
    mae_state = {
        "encoder.patch_proj.weight": torch.zeros(1),
        "encoder.layers.0.norm1.weight": torch.ones(1),
    }
    torch.save({"epoch": 3, "model_state": mae_state}, authors)
    code, err = _export_cli([str(authors), str(tmp_path / "b")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"{authors}" in err and "incomplete weights" in err
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(authors.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        read_lightning_checkpoint(truncated)
    other = tmp_path / "other.ckpt"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        read_lightning_checkpoint(other)


def test_export_files_have_ordinary_permissions(
    checkpoint: tuple[Path, MoEMAEPretrainTask], tmp_path: Path
) -> None:
    path, _ = checkpoint
    previous = os.umask(0o022)
    try:
        out = export_encoder(path, tmp_path / "out")
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    # safetensors wrote 0600 files before
    assert modes == dict.fromkeys(["config.json", "model.safetensors", "mae.safetensors"], 0o644)


def test_failed_export_leaves_no_partial_file(
    checkpoint: tuple[Path, MoEMAEPretrainTask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = checkpoint
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"previous export")

    def fail(*args: object, **kwargs: object) -> None:
        Path(str(args[1])).write_bytes(b"half")  # a partial write, then the failure
        raise OSError("disk full")

    monkeypatch.setattr("torchgeo_moemae.export.save_file", fail)
    with pytest.raises(OSError, match="disk full"):
        export_encoder(path, out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["model.safetensors"]
    assert (out / "model.safetensors").read_bytes() == b"previous export"


def test_export_config_describes_what_was_trained(
    checkpoint: tuple[Path, MoEMAEPretrainTask], tmp_path: Path
) -> None:
    """An export of a short run claimed the authors' tag, URL and paper in its config.json."""
    from torchgeo_moemae.export import AUTHORS_FIELDS
    from torchgeo_moemae.utils import file_sha256

    path, _ = checkpoint
    config = json.loads((export_encoder(path, tmp_path / "out") / "config.json").read_text())
    assert not set(AUTHORS_FIELDS) & set(config["pretrained_cfg"])
    trained = config["trained_with"]
    assert trained["weights"] == {
        "description": f"{path}, sha256 {file_sha256(path)}",
        "source": str(path),
        "sha256": file_sha256(path),
        "entry": None,
    }
    assert trained["model"] == "moemae_landsat_xxs" and trained["package_version"]
