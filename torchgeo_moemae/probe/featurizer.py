"""A frozen encoder's tokens, pooled into one feature vector per image.

The definition of an embedding for ``moemae embed``, ``moemae embed-scene``, the pre-training
task's ``predict_step``, the linear-probe task and the docs. Default (the paper's protocol, as the
authors' code; see ``docs/user_guide/fidelity.rst``): for a :class:`MoEMAEEncoder`, the tokens
BEFORE the final LayerNorm (``prenorm=True``), taken through the encoder's own
``forward_intermediates(..., norm=False)``; ``prenorm=False`` takes ``forward_features`` (after it).
Pools (:data:`~torchgeo_moemae.vocabulary.POOLS`; default ``"cls"``), each the encoder's timm ``global_pool`` of
:data:`GLOBAL_POOL`:

* ``"cls"``: the CLS token (index :attr:`MoEMAEEncoder.cls_index` = 4), ``C`` features;
* ``"avg"``: the mean of all ``5 + L`` tokens (metadata, CLS and patches), ``C`` features;
* ``"all"``: all tokens flattened, ``(5 + L) * C`` features (15,120 for the S model).

Other timm models (e.g. ``resnet18`` or ``vit_small_patch16_224`` with ``in_chans=7``) get their own
``forward_features``; images are resized to the model's input size when it has a fixed one, metadata
is not passed, ``"cls"`` is the model's pre-logits pooling (``forward_head(pre_logits=True)``),
``"avg"`` the mean over tokens / pixels and ``"all"`` the flattened feature map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import MoEMAEEncoder
from ..models.encoder import pool_tokens
from ..utils import batch_metadata
from ..vocabulary import DEFAULT_POOL, POOLS

__all__ = ["GLOBAL_POOL", "Featurizer", "check_pool"]

#: Each pool as the encoder's timm ``global_pool`` (``MoEMAEEncoder(global_pool=...)``).
GLOBAL_POOL: dict[str, str] = {"cls": "token", "avg": "avg", "all": "flatten"}


def check_pool(pool: str) -> str:
    """``pool`` if it is one of :data:`POOLS`, else a ValueError naming them."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    return pool


def fixed_input_size(encoder: nn.Module) -> tuple[int, int] | None:
    """The input size a model requires (None if it accepts any size)."""
    if isinstance(encoder, MoEMAEEncoder):
        return encoder.img_size
    patch_embed = getattr(encoder, "patch_embed", None)
    if patch_embed is not None and getattr(patch_embed, "strict_img_size", True):
        size = getattr(patch_embed, "img_size", None)
        if size is not None and not getattr(patch_embed, "dynamic_img_size", False):
            return (int(size[0]), int(size[1]))
    return None


class Featurizer:
    """Run a frozen encoder on batches and pool its tokens (see the module docstring).

    The caller puts the encoder in eval mode and disables gradients (as
    :func:`~torchgeo_moemae.probe.extract_embeddings` and
    :class:`~torchgeo_moemae.trainers.LinearProbeTask` do).

    Args:
        encoder: a :class:`MoEMAEEncoder` or any timm model.
        prenorm: tokens before the final LayerNorm (the paper's protocol). None (default): True for
            a :class:`MoEMAEEncoder`, the model's own ``forward_features`` for other timm models.

    Raises:
        ValueError: ``prenorm=True`` for a model other than :class:`MoEMAEEncoder`.
    """

    def __init__(self, encoder: nn.Module, prenorm: bool | None = None) -> None:
        self.encoder: Any = encoder
        self.is_moemae = isinstance(encoder, MoEMAEEncoder)
        if prenorm and not self.is_moemae:
            raise ValueError(
                f"prenorm=True needs a MoEMAEEncoder, got {type(encoder).__name__} "
                "(leave prenorm=None for other timm models)"
            )
        self.prenorm = self.is_moemae if prenorm is None else prenorm
        self.size = fixed_input_size(encoder)

    def tokens(self, batch: Mapping[str, Tensor]) -> Tensor:
        """``(B, N, C)`` tokens (a MoE-MAE encoder, other ViTs) or a ``(B, C, h, w)`` feature map (CNNs)."""
        x = batch["image"]
        if self.size is not None and tuple(x.shape[-2:]) != tuple(self.size):
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        if not self.is_moemae:
            return self.encoder.forward_features(x)
        meta = batch_metadata(batch)
        if not self.prenorm:
            return self.encoder.forward_features(x, **meta)
        ((patches, prefix),) = self.encoder.forward_intermediates(
            x,
            indices=[len(self.encoder.blocks) - 1],
            norm=False,
            output_fmt="NLC",
            return_prefix_tokens=True,
            intermediates_only=True,
            **meta,
        )
        return torch.cat([prefix, patches], dim=1)

    def pool(self, tokens: Tensor, pool: str) -> Tensor:
        """``(B, D)`` features of one pool from :meth:`tokens`' output."""
        check_pool(pool)
        if self.is_moemae:
            return pool_tokens(tokens, GLOBAL_POOL[pool], self.encoder.cls_index)
        if pool == "all":
            return tokens.flatten(1)
        if pool == "avg":
            return tokens.mean(dim=1) if tokens.ndim == 3 else tokens.flatten(2).mean(-1)
        return self.encoder.forward_head(tokens, pre_logits=True)

    def __call__(self, batch: Mapping[str, Tensor], pool: str = DEFAULT_POOL) -> Tensor:
        """``(B, D)`` features of a batch."""
        return self.pool(self.tokens(batch), pool)
