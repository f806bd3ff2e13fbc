"""MoEMAE: masking and the losses."""

from __future__ import annotations

import torch

import torchgeo_moemae  # noqa: F401
from tests.models import image_batch
from torchgeo_moemae.models import create_mae


def test_mae_losses_and_full_reconstruction() -> None:
    mae = create_mae("XXS").eval()
    x, lat, lon, time = image_batch()
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
