"""MAE reconstructions: figures (original, full reconstruction, masked input, masked
reconstruction) and the held-out masked reconstruction loss.

The 75 %-masked reconstruction column shows, as in the MAE paper's figures, the model's
prediction for the hidden patches with the *visible* patches pasted from the original image
(the loss is dominated by the hidden patches; the visible ones are given to the encoder).
Pass ``paste_visible=False`` to :func:`reconstruct` / :func:`plot_reconstruction` to show the raw
prediction everywhere.

Every held-out measure masks batch ``i`` the same way
(:func:`~torchgeo_moemae.utils.fixed_masking`): the pre-training task's ``val_loss``/``test_loss``,
:func:`reconstruct` and :func:`masked_reconstruction_loss`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ..bands import RGB_INDICES
from ..models import MoEMAE
from ..models.mae import patchify, unpatchify
from ..utils import batch_metadata, eval_mode, fixed_masking

__all__ = [
    "masked_reconstruction_loss",
    "plot_reconstruction",
    "reconstruct",
    "to_rgb",
]


@torch.no_grad()
def masked_reconstruction_loss(
    model: MoEMAE,
    batches: Iterable[dict[str, Tensor]],
    mask_ratio: float = 0.75,
    seed: int = 0,
    transform: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
) -> float:
    """Mean over all masked patches of the per-patch sum of squared errors (``L_mask``).

    The model runs in eval mode (deterministic routing, no dropout); batch ``i`` is masked by
    :func:`~torchgeo_moemae.utils.fixed_masking` ``(i, seed)``, so two models evaluated on the same batches see exactly
    the same visible patches. The model's train/eval mode is restored afterwards.

    Args:
        model: the MoE-MAE.
        batches: dicts with ``image`` ``(B, 7, H, W)`` and optional ``lat``/``lon``/``time`` ``(B,)``.
        mask_ratio: fraction of hidden patches.
        seed: seed of the masking.
        transform: applied to each batch first (e.g. a datamodule's normalisation ``aug``).
    """
    device = next(model.parameters()).device
    total, count = 0.0, 0.0
    with eval_mode(model):
        for i, batch in enumerate(batches):
            batch = transform(batch) if transform is not None else batch
            x = batch["image"].to(device, torch.float32)
            meta = {k: v.to(device) for k, v in batch_metadata(batch).items()}
            out = model(x, **meta, mask_ratio=mask_ratio, generator=fixed_masking(i, seed))
            masked = out.mask.sum().item()
            total += out.loss_masked.item() * masked
            count += masked
    if count == 0:
        raise ValueError("no batches to evaluate")
    return total / count


@torch.no_grad()
def reconstruct(
    model: MoEMAE,
    images: Tensor,
    lat: Tensor | None = None,
    lon: Tensor | None = None,
    time: Tensor | None = None,
    mask_ratio: float = 0.75,
    seed: int = 0,
    paste_visible: bool = True,
) -> dict[str, Tensor]:
    """Reconstruct normalised images with and without masking, deterministically.

    The model runs in eval mode (deterministic routing, no dropout) without gradients; its
    train/eval mode is restored afterwards. The masking is
    :func:`~torchgeo_moemae.utils.fixed_masking` ``(0, seed)``, so the same call always hides
    the same patches.

    Args:
        model: the MoE-MAE.
        images: normalised images ``(B, bands, H, W)``.
        lat, lon, time: metadata ``(B,)`` (degrees, degrees, POSIX seconds); None = missing.
        mask_ratio: fraction of patches hidden for the masked reconstruction.
        seed: seed of the masking.
        paste_visible: paste the visible patches of the original into the masked reconstruction.

    Returns:
        ``original``, ``full`` (reconstruction with ``mask_ratio=0``), ``masked_input`` (original with
        hidden patches set to NaN), ``masked`` (reconstruction from the visible patches), all
        ``(B, bands, H, W)`` float32 on the CPU, and ``mask`` ``(B, L)`` (1 = hidden).
    """
    with eval_mode(model):
        device = next(model.parameters()).device
        x = images.to(device=device, dtype=torch.float32)
        meta = {
            k: (v.to(device) if isinstance(v, Tensor) else v)
            for k, v in (("lat", lat), ("lon", lon), ("time", time))
        }
        b, size = x.shape[0], x.shape[-1]
        p, n = model.patch_size, model.num_patches
        gen = fixed_masking(0, seed)

        # Full reconstruction: keep every patch, in order.
        ids_keep_full = torch.arange(n, device=device).expand(b, n).contiguous()
        full_out = model(x, **meta, ids_keep=ids_keep_full, ids_restore=ids_keep_full)
        full = unpatchify(full_out.pred.float(), p, size)

        out = model(x, **meta, mask_ratio=mask_ratio, generator=gen)
        mask = out.mask.float()  # (B, L), 1 = hidden
        target = patchify(x.float(), p)
        pred = out.pred.float()
        if paste_visible:
            pred = pred * mask.unsqueeze(-1) + target * (1 - mask.unsqueeze(-1))
        masked = unpatchify(pred, p, size)
        hidden = unpatchify(mask.unsqueeze(-1).expand_as(target).contiguous(), p, size) > 0.5
        masked_input = x.masked_fill(hidden, float("nan"))
        return {
            "original": x.float().cpu(),
            "full": full.cpu(),
            "masked_input": masked_input.float().cpu(),
            "masked": masked.cpu(),
            "mask": mask.cpu(),
        }


def to_rgb(
    image: Tensor | np.ndarray,
    rgb: tuple[int, int, int] = RGB_INDICES,
    lo: float = -2.0,
    hi: float = 2.0,
) -> np.ndarray:
    """A normalised ``(bands, H, W)`` image -> ``(H, W, 3)`` RGB in [0, 1] (NaN -> grey 0.5).

    Normalised values in ``[lo, hi]`` (z-scores) map linearly to [0, 1]; the same fixed stretch is
    used for every panel so originals and reconstructions are comparable.
    """
    arr = image.detach().cpu().numpy() if isinstance(image, Tensor) else np.asarray(image)
    out = np.moveaxis(arr[list(rgb)], 0, -1).astype(np.float32)
    out = (out - lo) / (hi - lo)
    return np.nan_to_num(np.clip(out, 0.0, 1.0), nan=0.5)


def plot_reconstruction(
    model: MoEMAE,
    images: Tensor,
    lat: Tensor | None = None,
    lon: Tensor | None = None,
    time: Tensor | None = None,
    mask_ratio: float = 0.75,
    num_samples: int = 4,
    seed: int = 0,
    paste_visible: bool = True,
    **fig_kwargs: Any,
) -> Figure:
    """Figure with one row per sample and four columns.

    Columns: original RGB (B4, B3, B2), full reconstruction (no masking), masked input (hidden patches
    grey), reconstruction from ``1 - mask_ratio`` of the patches (visible patches pasted from the
    original, as in the MAE paper, unless ``paste_visible=False``).

    Args:
        model: the MoE-MAE (mode restored afterwards).
        images: normalised images ``(B, 7, 40, 40)``; the first ``num_samples`` are shown.
        lat, lon, time: metadata ``(B,)``; None = missing.
        mask_ratio: fraction of hidden patches.
        num_samples: rows.
        seed: seed of the (deterministic) masking.
        paste_visible: see above.
        **fig_kwargs: forwarded to :class:`matplotlib.figure.Figure` (e.g. ``dpi``).

    Returns:
        The figure (Agg-safe: not attached to pyplot); save it with ``fig.savefig(path)``.
    """
    k = min(num_samples, images.shape[0])
    if k < 1:
        raise ValueError("plot_reconstruction needs at least one image")

    def head(v: Tensor | None) -> Tensor | None:
        return v[:k] if isinstance(v, Tensor) else v

    rec = reconstruct(
        model, images[:k], head(lat), head(lon), head(time), mask_ratio, seed, paste_visible
    )
    pct = round(mask_ratio * 100)
    titles = [
        "original (RGB)",
        "reconstruction (no mask)",
        f"masked input ({pct}%)",
        f"reconstruction ({pct}% masked)",
    ]
    keys = ["original", "full", "masked_input", "masked"]
    fig_kwargs.setdefault("figsize", (4 * 2.4, k * 2.4))
    fig = Figure(**fig_kwargs)
    axes = np.atleast_2d(fig.subplots(k, 4, squeeze=False))
    for i in range(k):
        for j, key in enumerate(keys):
            ax = axes[i, j]
            ax.imshow(to_rgb(rec[key][i]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=9)
    fig.tight_layout()
    return fig
