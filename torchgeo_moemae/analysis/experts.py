"""Per-expert contribution and ablation maps (paper, "Analysis of MoE layers").

Both run the encoder in eval mode (deterministic routing, no dropout, no gradients) and return
maps on the patch grid ``(B, E, 10, 10)`` for the S model (row-major, like the patch embedding).

* **Contribution** of expert ``e`` in layer ``l`` at patch ``p``: ``|| g_e(x_p) * f_e(x_p) ||_2`` with
  ``x_p`` the layer's MoE input (after ``norm2``), ``g_e`` the gate weight (0 for unchosen experts)
  and ``f_e = W2(silu(W_e x) * V x)`` the expert output. The gated outputs sum to the layer's MoE output.
* **Ablation** of expert ``e`` in layer ``l``: the term ``g_e * f_e`` is removed from that layer's MoE
  output (a forward hook on ``block.moe``; the other experts' gates are NOT renormalised), the
  tokens propagate through the rest of the encoder, and the map is
  ``|| z_p - z_p^{(-e)} ||_2`` over the final (post-LayerNorm) patch embeddings. In the ablated
  layer only tokens routed to ``e`` change; later attention spreads the change.

Removing ``g_e * f_e`` (rather than zeroing the gate column, which inside the fused ``W2`` would
keep the full ``W2`` bias) matches switching off one expert of the authors' per-expert sum.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..models import MoEMAEEncoder, SwiGLUMoE
from ..utils import eval_mode
from .reconstruction import to_rgb

__all__ = [
    "ablate_expert",
    "expert_ablation_maps",
    "expert_contribution_maps",
    "plot_expert_maps",
    "routing_maps",
]


def _encoder(model: nn.Module) -> MoEMAEEncoder:
    enc = getattr(model, "encoder", model)
    if not isinstance(enc, MoEMAEEncoder):
        raise TypeError(f"expected a MoEMAEEncoder or MoEMAE, got {type(model).__name__}")
    return enc


def _layers(enc: MoEMAEEncoder, layers: int | Sequence[int] | None) -> list[int]:
    if layers is None:
        return list(range(len(enc.blocks)))
    out = [layers] if isinstance(layers, int) else list(layers)
    for i in out:
        if not 0 <= i < len(enc.blocks):
            raise ValueError(f"layer {i} out of range: the encoder has {len(enc.blocks)} blocks")
    return out


def _grid(enc: MoEMAEEncoder, per_token: Tensor, b: int) -> Tensor:
    """``(B * N, E)`` per-token values -> ``(B, E, gh, gw)`` on the patch tokens."""
    n = enc.num_prefix_tokens + enc.num_patches
    gh, gw = enc.grid_size
    x = per_token.reshape(b, n, -1)[:, enc.num_prefix_tokens :]
    return x.reshape(b, gh, gw, -1).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def expert_contribution_maps(
    model: nn.Module,
    images: Tensor,
    lat: Tensor | None = None,
    lon: Tensor | None = None,
    time: Tensor | None = None,
    layers: int | Sequence[int] | None = None,
) -> dict[int, Tensor]:
    """``{layer: (B, E, gh, gw)}`` norms of the gated expert outputs per patch (float32, CPU)."""
    enc = _encoder(model)
    wanted = _layers(enc, layers)
    inputs: dict[int, Tensor] = {}
    handles = [
        cast(SwiGLUMoE, enc.blocks[i].moe).register_forward_pre_hook(
            lambda _m, args, i=i: inputs.__setitem__(i, args[0].detach())
        )
        for i in wanted
    ]
    try:
        with eval_mode(enc):
            out = enc.forward_encoder(images, lat=lat, lon=lon, time=time)
            maps = {}
            for i in wanted:
                moe = cast(SwiGLUMoE, enc.blocks[i].moe)
                x = inputs[i].reshape(-1, inputs[i].shape[-1])
                gates = out.routing[i].gates  # (T, E)
                contrib = (gates.unsqueeze(-1) * moe.expert_outputs(x).float()).norm(dim=-1)
                maps[i] = _grid(enc, contrib, images.shape[0]).float().cpu()
    finally:
        for h in handles:
            h.remove()
    return maps


@torch.no_grad()
def routing_maps(
    model: nn.Module,
    images: Tensor,
    lat: Tensor | None = None,
    lon: Tensor | None = None,
    time: Tensor | None = None,
    layers: int | Sequence[int] | None = None,
) -> dict[int, Tensor]:
    """``{layer: (B, E, gh, gw)}`` gate weights per patch (0 where the expert is not chosen)."""
    enc = _encoder(model)
    wanted = _layers(enc, layers)
    with eval_mode(enc):
        out = enc.forward_encoder(images, lat=lat, lon=lon, time=time)
    return {i: _grid(enc, out.routing[i].gates, images.shape[0]).float().cpu() for i in wanted}


@contextmanager
def ablate_expert(model: nn.Module, layer: int, expert: int) -> Iterator[None]:
    """Within the context, expert ``expert`` of block ``layer`` contributes nothing (see module doc)."""
    enc = _encoder(model)
    moe = cast(SwiGLUMoE, enc.blocks[_layers(enc, layer)[0]].moe)
    if not 0 <= expert < moe.num_experts:
        raise ValueError(f"expert {expert} out of range: layer {layer} has {moe.num_experts}")

    def hook(module: nn.Module, args: tuple[Tensor, ...], output: tuple[Tensor, Any]) -> Any:
        y, aux = output
        x = args[0].reshape(-1, args[0].shape[-1])
        f_e = cast(SwiGLUMoE, module).expert_outputs(x)[:, expert]  # (T, C)
        term = aux.gates[:, expert : expert + 1].to(f_e.dtype) * f_e
        return y - term.reshape(y.shape).to(y.dtype), aux

    handle = moe.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def expert_ablation_maps(
    model: nn.Module,
    images: Tensor,
    lat: Tensor | None = None,
    lon: Tensor | None = None,
    time: Tensor | None = None,
    layers: int | Sequence[int] | None = 0,
    experts: Sequence[int] | None = None,
    progress: bool = False,
) -> dict[int, Tensor]:
    """``{layer: (B, E, gh, gw)}`` norm of the change of the final patch embeddings per patch when
    each expert of the layer is disabled (default: the first layer, as in the paper's Fig. 5).

    One forward pass per (layer, expert); ``progress`` shows them in a progress bar.
    """
    enc = _encoder(model)
    wanted = _layers(enc, layers)
    runs = [
        (i, e)
        for i in wanted
        for e in (
            range(cast(SwiGLUMoE, enc.blocks[i].moe).num_experts) if experts is None else experts
        )
    ]
    p = enc.num_prefix_tokens
    cols: dict[int, list[Tensor]] = {i: [] for i in wanted}
    with eval_mode(enc):
        ref = enc.forward_features(images, lat=lat, lon=lon, time=time)[:, p:].float()
        for i, e in tqdm(runs, desc="expert ablation", unit="pass", disable=not progress):
            with ablate_expert(enc, i, e):
                z = enc.forward_features(images, lat=lat, lon=lon, time=time)[:, p:].float()
            cols[i].append((z - ref).norm(dim=-1))  # (B, L)
    gh, gw = enc.grid_size
    return {
        i: torch.stack(c, 1).reshape(images.shape[0], -1, gh, gw).cpu() for i, c in cols.items()
    }


def plot_expert_maps(
    images: Tensor,
    maps: Tensor,
    title: str = "expert contribution",
    num_samples: int = 5,
    shared_scale: bool = True,
    **fig_kwargs: Any,
) -> Figure:
    """One row per sample: the RGB image then one map per expert (``maps`` ``(B, E, gh, gw)``).

    With ``shared_scale`` all maps of a row share one colour scale, so experts are comparable.
    """
    k = min(num_samples, images.shape[0], maps.shape[0])
    e = maps.shape[1]
    fig_kwargs.setdefault("figsize", ((e + 1) * 2.1, k * 2.1 + 0.4))
    fig = Figure(**fig_kwargs)
    axes = np.atleast_2d(fig.subplots(k, e + 1, squeeze=False))
    m = maps.detach().cpu().float().numpy()
    for r in range(k):
        axes[r, 0].imshow(to_rgb(images[r]), interpolation="nearest")
        vmax = float(m[r].max()) if shared_scale else None
        for j in range(e):
            im = axes[r, j + 1].imshow(
                m[r, j],
                cmap="magma",
                vmin=0.0 if shared_scale else None,
                vmax=vmax,
                interpolation="nearest",
            )
            if r == 0:
                axes[r, j + 1].set_title(f"expert {j}", fontsize=9)
        fig.colorbar(im, ax=axes[r, -1], fraction=0.046, pad=0.04)
        if r == 0:
            axes[r, 0].set_title("RGB", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    return fig
