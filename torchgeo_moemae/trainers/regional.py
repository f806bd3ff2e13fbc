"""Regional compilation: compile each transformer block, not the whole model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models.block import MoEBlock

__all__ = ["compile_blocks"]


def compile_blocks(model: nn.Module, **kwargs: Any) -> int:
    """Compile every :class:`~torchgeo_moemae.models.block.MoEBlock` of ``model`` in place.

    Compiling the repeated block instead of the model keeps each graph small (Inductor's cost grows
    faster than linearly with graph size) and lets blocks of the same configuration share one
    compiled graph: Dynamo caches per code object and guards on input and parameter shapes, so a
    sibling with the same shapes reuses the first one's kernels. ``nn.Module.compile`` compiles in
    place, so the state-dict keys (and checkpoints) do not change. Everything outside the blocks
    (embedding, metadata, losses) stays eager.

    The blocks share Dynamo's cache of one code object (``Module._call_impl``): one entry per
    distinct block and batch shape. Their calls run with a recompile limit high enough for a few
    batch shapes of every distinct block; the process-wide limit (``torch._dynamo.config``) stays
    as it is.

    Args:
        model: a module containing the blocks (an MAE or an encoder).
        kwargs: passed to :func:`torch.compile` (default: static shapes, default mode).

    Returns:
        The number of distinct block configurations, i.e. of graphs to compile.
    """
    blocks = [m for m in model.modules() if isinstance(m, MoEBlock)]
    distinct = {tuple((n, p.shape) for n, p in b.named_parameters()) for b in blocks}
    limit = max(torch._dynamo.config.recompile_limit, 4 * len(distinct))
    kwargs.setdefault("dynamic", False)  # dynamic shapes cost more to compile, and run slower
    for block in blocks:
        block.compile(**kwargs)
        # Dynamo reads the limit when a call misses its cache: patch it around the calls only
        patch = torch._dynamo.config.patch(recompile_limit=limit)
        block._compiled_call_impl = patch(block._compiled_call_impl)
    return len(distinct)
