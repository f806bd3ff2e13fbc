"""Pre-norm transformer block with grouped-query attention and a SwiGLU mixture of experts."""

from __future__ import annotations

from torch import Tensor, nn

from .attention import GroupedQueryAttention
from .moe import MoEAux, SwiGLUMoE

__all__ = ["MoEBlock"]


class MoEBlock(nn.Module):
    """``x = x + GQA(LN(x)); x = x + MoE(LN(x))``.

    Args:
        dim: token width C.
        num_heads: attention heads.
        num_kv_groups: key/value groups.
        hidden: expert width dh.
        num_experts: experts in this block.
        top_k: experts per token.
        moe_drop: dropout on the MoE output.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_kv_groups: int,
        hidden: int,
        num_experts: int,
        top_k: int = 2,
        moe_drop: float = 0.1,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = GroupedQueryAttention(dim, num_heads, num_kv_groups)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.moe = SwiGLUMoE(dim, hidden, num_experts, top_k, drop=moe_drop)

    def forward(self, x: Tensor) -> tuple[Tensor, MoEAux]:
        """``(B, N, C) -> ((B, N, C), routing)``."""
        x = x + self.attn(self.norm1(x))
        y, aux = self.moe(self.norm2(x))
        return x + y, aux
