"""Reconstruction figure: deterministic, mode-preserving, Agg-safe, written to PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from torchgeo_moemae.analysis import plot_reconstruction, reconstruct
from torchgeo_moemae.models import create_mae


@pytest.fixture(scope="module")
def mae() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_mae("XXS")


def test_reconstruct_deterministic_and_restores_mode(mae: torch.nn.Module) -> None:
    images = torch.randn(3, 7, 40, 40)
    mae.train()
    a = reconstruct(mae, images, mask_ratio=0.75, seed=1)
    assert mae.training  # mode restored
    b = reconstruct(mae, images, mask_ratio=0.75, seed=1)
    for key in ("full", "masked", "masked_input", "mask"):
        assert torch.equal(torch.nan_to_num(a[key]), torch.nan_to_num(b[key])), key
    assert a["full"].shape == images.shape
    assert a["mask"].shape == (3, 100)
    assert int(a["mask"].sum(1)[0]) == 75
    # visible patches pasted from the original; hidden ones are NaN in the masked input
    hidden = torch.isnan(a["masked_input"])
    assert hidden.float().mean().item() == pytest.approx(0.75)
    assert torch.allclose(a["masked"][~hidden], images[~hidden])
    c = reconstruct(mae, images, mask_ratio=0.75, seed=2)
    assert not torch.equal(a["mask"], c["mask"])


def test_plot_reconstruction_png(mae: torch.nn.Module, tmp_path: Path) -> None:
    images = torch.randn(5, 7, 40, 40)
    mae.eval()
    fig = plot_reconstruction(
        mae,
        images,
        lat=torch.full((5,), 45.0),
        lon=torch.full((5,), 5.0),
        time=torch.full((5,), 1.5e9, dtype=torch.float64),
        num_samples=2,
        seed=0,
    )
    assert not mae.training
    assert len(fig.axes) == 8
    out = tmp_path / "rec.png"
    fig.savefig(out)
    assert out.stat().st_size > 1000
    assert np.isfinite(fig.axes[0].images[0].get_array()).all()
