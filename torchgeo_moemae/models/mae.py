"""The MoE masked autoencoder: encoder + lightweight MoE decoder + reconstruction losses."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import Tensor, nn

from .block import MoEBlock
from .checks import cast
from .encoder import MoEMAEEncoder, _init_weights
from .moe import MoEAux

__all__ = ["MAEOutput", "MoEMAE", "patchify", "random_masking", "unpatchify"]


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """``(B, C, H, W) -> (B, L, C * p * p)`` in ``F.unfold`` order (channel-major within a patch)."""
    return F.unfold(images, kernel_size=patch_size, stride=patch_size).transpose(1, 2)


def unpatchify(patches: Tensor, patch_size: int, image_size: int) -> Tensor:
    """Inverse of :func:`patchify`: ``(B, L, C * p * p) -> (B, C, H, W)``."""
    return F.fold(patches.transpose(1, 2), (image_size, image_size), patch_size, stride=patch_size)


def random_masking(
    batch_size: int,
    num_patches: int,
    mask_ratio: float,
    device: torch.device | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """MAE per-sample random masking.

    A ``generator`` draws the noise on its own device (CPU by default), so a seeded masking is the
    same whatever device the model runs on; the results are then moved to ``device``.

    Returns:
        ``ids_keep (B, K)`` with ``K = int(L * (1 - mask_ratio))``, ``ids_restore (B, L)`` and
        ``mask (B, L)`` (1 = masked) in the original patch order.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    keep = int(num_patches * (1 - mask_ratio))
    noise_device = generator.device if generator is not None else device
    noise = torch.rand(batch_size, num_patches, device=noise_device, generator=generator)
    if device is not None:
        noise = cast(noise, noise.dtype, device)
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    mask = (ids_restore >= keep).float()  # the patches after the first `keep` of the shuffle
    return ids_shuffle[:, :keep], ids_restore, mask


@dataclass
class MAEOutput:
    """Result of a masked forward pass.

    Attributes:
        pred: ``(B, L, C * p * p)`` reconstruction of every patch (normalised pixel units).
        target: ``(B, L, C * p * p)`` the patchified input.
        mask: ``(B, L)`` 1 where the patch was hidden from the encoder.
        loss_masked: mean over masked patches of the per-patch sum of squared errors.
        loss_visible: the same over visible patches.
        moe_loss: encoder balancing loss (summed over blocks).
        routing: encoder routing per block.
    """

    pred: Tensor
    target: Tensor
    mask: Tensor
    loss_masked: Tensor
    loss_visible: Tensor
    moe_loss: Tensor
    routing: list[MoEAux]

    def loss(self, alpha: float = 0.1, beta: float = 0.5) -> Tensor:
        """``L_mask + alpha * L_vis + beta * L_moe``."""
        return self.loss_masked + alpha * self.loss_visible + beta * self.moe_loss


class MoEMAE(nn.Module):
    """MoE-MAE: metadata-aware MoE encoder and a 2-block MoE decoder predicting pixels of all patches.

    Args:
        encoder: the encoder (default: size S).
        decoder_dim: decoder width.
        decoder_depth: decoder blocks.
        decoder_heads: decoder attention heads.
        decoder_kv_groups: decoder key/value groups.
        decoder_hidden: decoder expert width.
        decoder_experts: experts per decoder block.
        top_k: experts per token in the decoder.
        moe_drop: dropout on the decoder MoE outputs.
        mask_ratio: default fraction of hidden patches.
    """

    def __init__(
        self,
        encoder: MoEMAEEncoder | None = None,
        decoder_dim: int = 108,
        decoder_depth: int = 2,
        decoder_heads: int = 6,
        decoder_kv_groups: int = 3,
        decoder_hidden: int = 54,
        decoder_experts: int = 3,
        top_k: int = 2,
        moe_drop: float = 0.1,
        mask_ratio: float = 0.75,
    ) -> None:
        super().__init__()
        self.encoder: MoEMAEEncoder = encoder if encoder is not None else MoEMAEEncoder()
        self.mask_ratio = mask_ratio
        enc = self.encoder
        self.patch_size = enc.patch_size
        self.num_patches = enc.num_patches
        self.decoder_embed = nn.Linear(enc.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        # Learned positions for the patches only; the prefix tokens get zero (as the authors' model).
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, decoder_dim))
        self.decoder_blocks = nn.ModuleList(
            MoEBlock(
                decoder_dim,
                decoder_heads,
                decoder_kv_groups,
                decoder_hidden,
                decoder_experts,
                top_k,
                moe_drop,
            )
            for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-5)
        self.decoder_pred = nn.Linear(decoder_dim, enc.patch_size**2 * enc.in_chans)
        for module in (
            self.decoder_embed,
            self.decoder_blocks,
            self.decoder_norm,
            self.decoder_pred,
        ):
            module.apply(_init_weights)
        trunc_normal_(self.mask_token, std=0.02)
        trunc_normal_(self.decoder_pos_embed, std=0.02)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameters exempt from weight decay (besides norms and biases)."""
        return {f"encoder.{n}" for n in self.encoder.no_weight_decay()} | {
            "mask_token",
            "decoder_pos_embed",
        }

    def forward_decoder(self, tokens: Tensor, ids_restore: Tensor) -> Tensor:
        """Predict all patches from encoder tokens ``(B, 5 + K, C)``: returns ``(B, L, p*p*bands)``."""
        x = self.decoder_embed(tokens)
        prefix_len = self.encoder.num_prefix_tokens
        b, n, d = x.shape
        fill = cast(self.mask_token, x.dtype).expand(b, self.num_patches - (n - prefix_len), d)
        patches = torch.cat([x[:, prefix_len:], fill], dim=1)
        patches = torch.gather(patches, 1, ids_restore.unsqueeze(-1).expand(-1, -1, d))
        x = torch.cat([x[:, :prefix_len], patches + self.decoder_pos_embed], dim=1)
        for block in self.decoder_blocks:
            x, _ = block(x)  # the decoder's balancing loss is not used (as in the paper)
        return self.decoder_pred(self.decoder_norm(x)[:, prefix_len:])

    def forward(
        self,
        x: Tensor,
        lat: Tensor | None = None,
        lon: Tensor | None = None,
        time: Tensor | None = None,
        mask_ratio: float | None = None,
        ids_keep: Tensor | None = None,
        ids_restore: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> MAEOutput:
        """Masked reconstruction.

        Args:
            x: normalised image ``(B, bands, H, W)``.
            lat, lon, time: metadata ``(B,)``; NaN/None = missing.
            mask_ratio: fraction of patches to hide (default :attr:`mask_ratio`; 0 = full reconstruction).
            ids_keep, ids_restore: a fixed masking ``(B, K)``, ``(B, L)`` instead of a random one.
            generator: seeds the random masking (see :func:`random_masking`).
        """
        b = x.shape[0]
        if (ids_keep is None) != (ids_restore is None):
            raise ValueError("ids_keep and ids_restore must be given together")
        if ids_keep is None or ids_restore is None:
            ratio = self.mask_ratio if mask_ratio is None else mask_ratio
            ids_keep, ids_restore, mask = random_masking(
                b, self.num_patches, ratio, x.device, generator
            )
        else:
            mask = torch.ones(b, self.num_patches, device=x.device)
            mask.scatter_(1, ids_keep, 0.0)
        enc = self.encoder.forward_encoder(x, lat=lat, lon=lon, time=time, ids_keep=ids_keep)
        pred = self.forward_decoder(enc.tokens, ids_restore)
        target = patchify(x, self.patch_size)
        err = (cast(pred, torch.float32) - cast(target, torch.float32)).pow(2).sum(-1)  # (B, L)
        loss_masked = (err * mask).sum() / mask.sum().clamp_min(1)
        loss_visible = (err * (1 - mask)).sum() / (1 - mask).sum().clamp_min(1)
        return MAEOutput(pred, target, mask, loss_masked, loss_visible, enc.moe_loss, enc.routing)
