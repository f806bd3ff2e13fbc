"""Grouped-query self-attention on top of ``F.scaled_dot_product_attention``."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GroupedQueryAttention"]


class GroupedQueryAttention(nn.Module):
    """Multi-head attention whose heads share ``num_kv_groups`` key/value projections.

    Query head ``h`` attends with key/value group ``h // (num_heads // num_kv_groups)`` (the layout
    SDPA's ``enable_gqa`` expects). The authors' code tiles groups (``h % num_kv_groups``); their
    weights are permuted on load (see :mod:`torchgeo_moemae.models.convert`).

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
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, self.head_dim * num_kv_groups)
        self.v = nn.Linear(dim, self.head_dim * num_kv_groups)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, N, C) -> (B, N, C)``."""
        b, n, c = x.shape
        q = self.q(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k(x).view(b, n, self.num_kv_groups, self.head_dim).transpose(1, 2)
        v = self.v(x).view(b, n, self.num_kv_groups, self.head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            q, k, v, enable_gqa=self.num_kv_groups != self.num_heads
        )
        return self.proj(out.transpose(1, 2).reshape(b, n, c))
