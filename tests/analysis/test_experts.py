"""Contribution and ablation maps: patch-grid shape, determinism, locality of an ablation, figures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchgeo_moemae.analysis import (
    ablate_expert,
    expert_ablation_maps,
    expert_contribution_maps,
    plot_expert_maps,
    routing_maps,
)
from torchgeo_moemae.models import MoEMAEEncoder
from torchgeo_moemae.models.registry import MODEL_SIZES


@pytest.fixture(scope="module")
def encoder() -> MoEMAEEncoder:
    torch.manual_seed(0)
    return MoEMAEEncoder(**MODEL_SIZES["XXS"])


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 7, 40, 40, generator=torch.Generator().manual_seed(1))


def test_contribution_maps(encoder: MoEMAEEncoder, images: torch.Tensor) -> None:
    encoder.train()
    a = expert_contribution_maps(encoder, images, layers=[0, 8])
    assert encoder.training
    b = expert_contribution_maps(encoder, images, layers=[0, 8])
    for layer in (0, 8):
        e = encoder.blocks[layer].moe.num_experts
        assert a[layer].shape == (2, e, 10, 10)
        assert torch.equal(a[layer], b[layer])
        gates = routing_maps(encoder, images, layers=layer)[layer]
        # exactly top-k experts contribute at every patch
        assert torch.equal((a[layer] > 0).sum(1), torch.full((2, 10, 10), 2))
        assert torch.equal(a[layer] > 0, gates > 0)


def test_ablation_maps_deterministic(encoder: MoEMAEEncoder, images: torch.Tensor) -> None:
    a = expert_ablation_maps(encoder, images, layers=0)
    b = expert_ablation_maps(encoder, images, layers=0)
    assert a[0].shape == (2, encoder.blocks[0].moe.num_experts, 10, 10)
    assert torch.equal(a[0], b[0])
    assert (a[0] > 0).any()


@pytest.mark.parametrize(("layer", "expert"), [(0, 1), (4, 2)])
def test_ablation_changes_only_routed_tokens(
    encoder: MoEMAEEncoder, images: torch.Tensor, layer: int, expert: int
) -> None:
    encoder.eval()
    outs: list[torch.Tensor] = []
    # the block output (x + MoE(norm2(x))): differs exactly where the MoE output differs
    hook = encoder.blocks[layer].register_forward_hook(lambda m, a, o: outs.append(o[0]))
    try:
        with torch.no_grad():
            ref = encoder.forward_encoder(images)
            with ablate_expert(encoder, layer, expert):
                encoder.forward_encoder(images)
    finally:
        hook.remove()
    routed = ref.routing[layer].gates[:, expert] > 0  # (B*N,)
    changed = (outs[0] - outs[1]).reshape(-1, outs[0].shape[-1]).abs().amax(-1) > 0
    assert routed.any() and (~routed).any()
    assert torch.equal(changed, routed)
    # removing the expert's gated output is exactly its contribution
    c = expert_contribution_maps(encoder, images, layers=layer)[layer][:, expert]
    delta = (outs[0] - outs[1])[:, encoder.num_prefix_tokens :].norm(dim=-1).reshape(2, 10, 10)
    torch.testing.assert_close(delta, c, atol=1e-5, rtol=1e-4)


def test_plot_expert_maps(encoder: MoEMAEEncoder, images: torch.Tensor, tmp_path: Path) -> None:
    maps = expert_contribution_maps(encoder, images, layers=0)[0]
    fig = plot_expert_maps(images, maps, num_samples=2)
    fig.savefig(tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 1000
