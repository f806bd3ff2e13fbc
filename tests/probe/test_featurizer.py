"""Featurizer: the paper's pre-norm tokens by default, post-norm on request, timm peers, pools."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import timm
import torch

from torchgeo_moemae.models import MoEMAEEncoder, create_encoder
from torchgeo_moemae.probe import Featurizer
from torchgeo_moemae.probe.featurizer import GLOBAL_POOL
from torchgeo_moemae.vocabulary import DEFAULT_POOL, POOLS


@pytest.fixture(scope="module")
def encoder() -> MoEMAEEncoder:
    model = create_encoder("XXS").eval()
    assert isinstance(model, MoEMAEEncoder)
    return model


def _batch(b: int = 3) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(b, 7, 40, 40, generator=gen),
        "lat": torch.linspace(40, 60, b),
        "lon": torch.linspace(-5, 25, b),
        "time": torch.linspace(1.5e9, 1.53e9, b, dtype=torch.float64),
    }


@torch.no_grad()
def test_default_is_prenorm_and_postnorm_is_forward_features(encoder: MoEMAEEncoder) -> None:
    batch = _batch()
    captured: list[torch.Tensor] = []  # reference: what enters the final LayerNorm
    handle = encoder.norm.register_forward_hook(lambda _m, args, _o: captured.append(args[0]))
    post = encoder.forward_features(batch["image"], lat=batch["lat"], lon=batch["lon"])
    handle.remove()
    batch_no_time = {k: v for k, v in batch.items() if k != "time"}
    pre = Featurizer(encoder).tokens(batch_no_time)
    assert Featurizer(encoder).prenorm
    torch.testing.assert_close(pre, captured[0], rtol=0, atol=0)
    torch.testing.assert_close(Featurizer(encoder, prenorm=False).tokens(batch_no_time), post)
    # metadata is passed: the time changes the features
    assert not torch.allclose(Featurizer(encoder).tokens(batch), pre)


@torch.no_grad()
def test_pools(encoder: MoEMAEEncoder) -> None:
    featurizer = Featurizer(encoder)
    batch = _batch()
    tokens = featurizer.tokens(batch)
    assert tokens.shape == (3, 105, 108)
    torch.testing.assert_close(featurizer(batch), tokens[:, encoder.cls_index])
    torch.testing.assert_close(featurizer(batch, "avg"), tokens.mean(1))
    assert featurizer(batch, "all").shape == (3, 105 * 108)
    with pytest.raises(ValueError, match="pool must be one of"):
        featurizer(batch, "mean")


@torch.no_grad()
def test_timm_peers() -> None:
    resnet = timm.create_model("resnet18", in_chans=7, num_classes=0).eval()
    with pytest.raises(ValueError, match="prenorm=True needs a MoEMAEEncoder"):
        Featurizer(resnet, prenorm=True)
    batch = _batch(2)
    assert Featurizer(resnet)(batch).shape == (2, 512)
    torch.testing.assert_close(Featurizer(resnet)(batch), resnet(batch["image"]))
    # a fixed-size ViT gets the 40x40 patches resized to its input size
    vit = timm.create_model(
        "vit_tiny_patch16_224", in_chans=7, num_classes=0, depth=1, img_size=64
    ).eval()
    assert Featurizer(vit).tokens(batch).shape == (2, 1 + 16, 192)


@torch.no_grad()
def test_prenorm_matches_the_authors_reference(reference: dict[str, Any]) -> None:
    """The default features are the authors' ``encoder_tokens_prenorm`` (the paper's protocol)."""
    # the reference vectors were computed from the true UTC hours
    encoder = create_encoder("S", reference["checkpoint"], hour_encoding="utc").eval()
    batch = {
        "image": torch.from_numpy(reference["images"]),
        "lat": torch.from_numpy(reference["lat_deg"]),
        "lon": torch.from_numpy(reference["lon_deg"]),
        "time": torch.from_numpy(reference["time"]),
    }
    tokens = Featurizer(encoder).tokens(batch)
    np.testing.assert_allclose(tokens.numpy(), reference["encoder_tokens_prenorm"], atol=1e-4)


@pytest.mark.parametrize("pool", POOLS)
def test_pools_are_the_encoders_global_pools(encoder: MoEMAEEncoder, pool: str) -> None:
    """One pool vocabulary: each pool is the encoder's own timm pooling of the same tokens."""
    featurizer = Featurizer(encoder)
    tokens = featurizer.tokens(_batch())
    pooled = timm.create_model("moemae_landsat_xxs", global_pool=GLOBAL_POOL[pool]).eval()
    torch.testing.assert_close(
        featurizer.pool(tokens, pool), pooled.forward_head(tokens), rtol=0, atol=0
    )
    assert DEFAULT_POOL in POOLS
