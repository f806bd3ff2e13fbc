"""Grouped-query self-attention on top of ``F.scaled_dot_product_attention``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GroupedQueryAttention"]


class GroupedQueryAttention(nn.Module):
    """Multi-head attention whose heads share ``num_kv_groups`` key/value projections.

    Query head ``h`` attends with key/value group ``h // (num_heads // num_kv_groups)`` (the layout
    SDPA's ``enable_gqa`` expects). The authors' code tiles groups (``h % num_kv_groups``); their
    weights are permuted on load (see :mod:`torchgeo_moemae.models.convert`).

    The query, key and value projections are one ``Linear`` (``qkv``, rows ``[q; k; v]`` of
    ``C + 2 * G * C / H`` outputs), as in timm's ViT: one matmul per block instead of three.
    State dicts with separate ``q``/``k``/``v`` projections (written before they were fused) are
    fused on load.

    Args:
        dim: token width C.
        num_heads: number of query heads H (head width C / H).
        num_kv_groups: number of key/value heads G, dividing H.
    """

    def __init__(self, dim: int, num_heads: int, num_kv_groups: int) -> None:
        super().__init__()
        if dim % num_heads or num_heads % num_kv_groups:
            raise ValueError(
                f"dim ({dim}) must be divisible by num_heads ({num_heads}) and num_heads by "
                f"num_kv_groups ({num_kv_groups})"
            )
        self.num_heads = num_heads
        self.num_kv_groups = num_kv_groups
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, self.head_dim * (num_heads + 2 * num_kv_groups))
        self.proj = nn.Linear(dim, dim)
        self.register_load_state_dict_pre_hook(_fuse_qkv)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, N, C) -> (B, N, C)``."""
        b, n, c = x.shape
        heads = self.num_heads + 2 * self.num_kv_groups
        qkv = self.qkv(x).view(b, n, heads, self.head_dim).transpose(1, 2)  # (B, H + 2G, N, hd)
        q, k, v = qkv.split([self.num_heads, self.num_kv_groups, self.num_kv_groups], dim=1)
        out = F.scaled_dot_product_attention(
            q, k, v, enable_gqa=self.num_kv_groups != self.num_heads
        )
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


def _fuse_qkv(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
) -> None:
    """Load-state-dict pre-hook: ``{q,k,v}.{weight,bias}`` -> ``qkv.{weight,bias}`` in place."""
    for param in ("weight", "bias"):
        old = [f"{prefix}{name}.{param}" for name in ("q", "k", "v")]
        if all(key in state_dict for key in old):
            state_dict[f"{prefix}qkv.{param}"] = torch.cat([state_dict.pop(key) for key in old])
