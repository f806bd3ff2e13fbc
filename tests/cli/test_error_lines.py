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


def test_the_overwrite_hint_names_the_option_once(tmp_path: Path) -> None:
    """It read "pass --overwrite (--overwrite) to replace it"."""
    from torchgeo_moemae.outputs import check_output

    (tmp_path / "out.json").write_text("{}")
    with pytest.raises(FileExistsError) as raised:
        check_output(tmp_path / "out.json")
    line = one_line(raised.value, argparse.Namespace(overwrite=False))
    assert "pass --overwrite to replace what exists" in line and "(--overwrite)" not in line
    assert "(overwrite=True)" in str(raised.value)  # the API keeps its keyword


def test_elapsed_time_into_a_log_is_not_a_line_per_second(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Redirected to a file, the probe's elapsed-time display wrote a line per refresh."""
    import time

    from torchgeo_moemae.probe.sklearn_probe import _elapsed

    with _elapsed("sklearn probe", True, every=0.01):
        time.sleep(0.2)
    assert capsys.readouterr().err.count("elapsed") <= 2


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
