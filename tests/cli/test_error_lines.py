"""User errors read as one line naming the file and what to do, in the command's own syntax."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader

import torchgeo_moemae  # noqa: F401  (registers the timm models)
from torchgeo_moemae.cli.common import one_line
from torchgeo_moemae.datasets import BigEarthNetLS
from torchgeo_moemae.models import create_mae


def truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def test_corrupt_tiff_in_a_worker_is_one_line(ben_root: Path) -> None:
    dataset = BigEarthNetLS(ben_root, split="train")
    bad = Path(ben_root, "bigearthnet-l", "images", f"{dataset.ids[0]}.tif")
    truncate(bad, 600)  # the header survives: the strips are cut
    loader = DataLoader(dataset, batch_size=2, num_workers=1)
    with pytest.raises(ValueError) as raised:
        next(iter(loader))
    # torch puts the worker's whole traceback (thousands of characters) into the message
    assert "Traceback" in str(raised.value)
    line = one_line(raised.value, argparse.Namespace(on_error="raise"))
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"{bad}: unreadable or truncated GeoTIFF (")
    # GDAL's cause (missing bytes), not rasterio's "See previous exception"
    assert "previous exception" not in line and "bytes" in line
    assert line.endswith("pass --on-error skip to leave such samples out")


def test_python_hints_become_options_only_where_the_command_has_them() -> None:
    err = ValueError("x.tif: bad; pass on_error='skip' to drop it (or overwrite=True)")
    assert one_line(err, argparse.Namespace(on_error="raise", overwrite=False)) == (
        "x.tif: bad; pass --on-error skip to drop it (or --overwrite)"
    )
    assert one_line(err, argparse.Namespace()) == str(err)


@pytest.fixture(scope="module")
def xxs_encoder_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("xxs") / "model.safetensors"
    save_file(timm.create_model("moemae_landsat_xxs").state_dict(), path)
    return path


def test_other_size_through_timm_is_explained(xxs_encoder_file: Path) -> None:
    with pytest.raises(ValueError, match=r"hold a XXS .* encoder, the model is S \(") as raised:
        timm.create_model(
            "moemae_landsat",
            pretrained=True,
            pretrained_cfg_overlay=dict(file=str(xxs_encoder_file)),
        )
    assert "missing keys" not in str(raised.value)


def test_encoder_only_weights_for_a_full_mae_are_explained(xxs_encoder_file: Path) -> None:
    with pytest.raises(ValueError, match="hold an encoder only") as raised:
        create_mae("XXS", xxs_encoder_file)
    assert str(raised.value).startswith(str(xxs_encoder_file))
    assert "missing keys" not in str(raised.value)
