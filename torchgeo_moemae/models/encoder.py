"""The metadata-aware MoE vision-transformer encoder (timm-compatible)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from timm.layers import PatchEmbed, to_2tuple, trunc_normal_
from timm.models import checkpoint
from timm.models._features import feature_take_indices
from torch import Tensor, nn

from .block import MoEBlock
from .checks import cast, eager_checks_enabled, value_checks_enabled
from .metadata import METADATA_FIELDS, HourEncoding, check_hour_encoding, encode_metadata
from .moe import MoEAux, balancing_loss

__all__ = ["EncoderOutput", "MoEMAEEncoder", "expert_schedule", "hidden_schedule"]

# FX records encode_metadata as one call: a traced graph then accepts None or tensors for the
# metadata (the Python branches on None run at call time) and keeps its eager input checks.
torch.fx.wrap("encode_metadata")

GlobalPool = Literal["", "token", "avg", "flatten"]
_GLOBAL_POOLS = ("", "token", "avg", "flatten")


def expert_schedule(depth: int, min_experts: int = 3, stages: int = 3) -> list[int]:
    """Experts per block: ``min_experts`` in the first third of the blocks, +1 per further third."""
    return [min_experts + stages * i // depth for i in range(depth)]


def hidden_schedule(depth: int, first: int, last: int) -> list[int]:
    """Expert width per block, tapering linearly from ``first`` to ``last`` (authors' rounding)."""
    if depth == 1:
        return [first]
    return [int((depth - 1 - i) / (depth - 1) * (first - last)) + last for i in range(depth)]


@dataclass
class EncoderOutput:
    """Encoder tokens and routing.

    Attributes:
        tokens: ``(B, 5 + L, C)`` after the final LayerNorm (4 metadata tokens, CLS, L patch tokens).
        moe_loss: scalar sum of the blocks' balancing losses.
        routing: per block, the routing of its ``B * (5 + L)`` tokens.
    """

    tokens: Tensor
    moe_loss: Tensor
    routing: list[MoEAux] = field(default_factory=list)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def pool_tokens(tokens: Tensor, global_pool: str, cls_index: int) -> Tensor:
    """Pool ``(B, N, C)`` tokens: ``"token"`` -> the CLS token ``(B, C)``, ``"avg"`` -> the mean of
    all ``N`` tokens ``(B, C)``, ``"flatten"`` -> ``(B, N * C)``, ``""`` -> unchanged."""
    if global_pool == "token":
        return tokens[:, cls_index]
    if global_pool == "avg":
        return tokens.mean(dim=1)
    if global_pool == "flatten":
        return tokens.flatten(1)
    return tokens


class MoEMAEEncoder(nn.Module):
    """Metadata-aware mixture-of-experts ViT encoder of MoE-MAE.

    Sequence: ``[week, hour, lat, lon, CLS, patch_1..patch_L]`` with learned absolute positions.
    ``forward_features`` returns ``(B, 5 + L, C)`` tokens after the final LayerNorm; the CLS token is at
    index :attr:`cls_index` (4).

    Args:
        img_size: input size in pixels (40 or (40, 40)).
        patch_size: patch size (4 -> 100 patches).
        in_chans: input bands (7).
        embed_dim: token width C.
        depth: number of blocks.
        num_heads: attention heads.
        num_kv_groups: key/value groups of the grouped-query attention.
        hidden_first: expert width of the first block.
        hidden_last: expert width of the last block.
        min_experts: experts in the first third of the blocks (+1 per further third).
        top_k: experts per token.
        moe_drop: dropout on the MoE outputs.
        num_classes: classifier outputs (0: no head, ``forward`` returns pooled features).
        global_pool: ``"token"`` (CLS), ``"avg"`` (mean of all tokens), ``"flatten"`` (all tokens
            as one vector) or ``""`` (no pooling: the ``(B, 5 + L, C)`` tokens, as timm's ViTs).
        head_drop: dropout before the classifier.
        hour_encoding: how the hour token reads ``time``: ``"utc"`` (the true UTC hour, default)
            or ``"authors"`` (the first digit of the zero-padded UTC hour, as the authors'
            published weights were trained; weights in their layout set it). Not together with
            ``BigEarthNetLS(time_source="authors_filename")``: see ``docs/user_guide/fidelity.rst``.
        allow_nonfinite: let NaN/inf pixels through instead of raising (their tokens become NaN).

    The forward methods take the metadata as keyword arguments only (``lat=``, ``lon=``,
    ``time=``), so timm's positional signatures are unchanged. Inputs are checked in eager mode
    (shape, dtype, finite pixels, metadata ranges; see :func:`~torchgeo_moemae.models.encode_metadata`);
    the checks are skipped under FX tracing and ``torch.compile``. ``torch.jit.script`` is not
    supported (refused with a message): use ``torch.compile`` or FX instead.
    """

    num_prefix_tokens = len(METADATA_FIELDS) + 1
    cls_index = len(METADATA_FIELDS)

    def __init__(
        self,
        img_size: int | tuple[int, int] = 40,
        patch_size: int = 4,
        in_chans: int = 7,
        embed_dim: int = 144,
        depth: int = 15,
        num_heads: int = 8,
        num_kv_groups: int = 4,
        hidden_first: int = 144,
        hidden_last: int = 72,
        min_experts: int = 3,
        top_k: int = 2,
        moe_drop: float = 0.1,
        num_classes: int = 0,
        global_pool: GlobalPool = "token",
        head_drop: float = 0.0,
        hour_encoding: HourEncoding = "utc",
        allow_nonfinite: bool = False,
    ) -> None:
        super().__init__()
        self.hour_encoding = check_hour_encoding(hour_encoding)
        self.allow_nonfinite = allow_nonfinite
        self.grad_checkpointing = False
        self.img_size: tuple[int, int] = to_2tuple(img_size)
        self.in_chans = in_chans
        self.patch_size = patch_size
        self.embed_dim = self.num_features = embed_dim
        self.patch_embed = PatchEmbed(self.img_size, patch_size, in_chans, embed_dim)
        self.num_patches = self.patch_embed.num_patches
        self.grid_size = self.patch_embed.grid_size
        # One Linear(2 -> C) per metadata field, stored stacked so all four run as one einsum.
        self.meta_weight = nn.Parameter(torch.empty(len(METADATA_FIELDS), embed_dim, 2))
        self.meta_bias = nn.Parameter(torch.zeros(len(METADATA_FIELDS), embed_dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.num_prefix_tokens + self.num_patches, embed_dim)
        )
        experts = expert_schedule(depth, min_experts)
        hidden = hidden_schedule(depth, hidden_first, hidden_last)
        self.blocks: nn.ModuleList = nn.ModuleList(
            MoEBlock(embed_dim, num_heads, num_kv_groups, hidden[i], experts[i], top_k, moe_drop)
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-5)
        self.global_pool: GlobalPool = global_pool
        self.head_drop = nn.Dropout(head_drop)
        self.num_classes = num_classes
        self.head: nn.Module = nn.Identity()
        self.feature_info = [
            dict(num_chs=embed_dim, reduction=patch_size, module=f"blocks.{i}")
            for i in range(depth)
        ]
        self.apply(_init_weights)
        self.reset_classifier(num_classes, global_pool)
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        trunc_normal_(self.meta_weight, std=0.02)

    # ----------------------------------------------------------------------------- timm API
    @property
    def head_hidden_size(self) -> int:
        """Width of the pooled features fed to the classifier."""
        if self.global_pool == "flatten":
            return self.embed_dim * (self.num_prefix_tokens + self.num_patches)
        return self.embed_dim

    def __prepare_scriptable__(self) -> MoEMAEEncoder:
        # Called by torch.jit.script before compiling: refuse with a clear message instead of a
        # TorchScript frontend error deep inside the MoE routing or the metadata encoding.
        raise RuntimeError(
            f"{type(self).__name__} does not support torch.jit.script (data-dependent expert "
            "routing and metadata encoding are not TorchScript code); use torch.compile, "
            "torch.fx.symbolic_trace or timm.models.create_feature_extractor instead"
        )

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameters exempt from weight decay (besides norms and biases)."""
        return {"pos_embed", "cls_token", "meta_bias"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups for timm's layer-wise lr decay: stem (embeddings), one per block, norm last."""
        return dict(
            stem=r"^(?:patch_embed|meta_weight|meta_bias|cls_token|pos_embed)",
            blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass instead of storing its activations."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The classifier head."""
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: GlobalPool | None = None) -> None:
        """Replace the head with a fresh ``Linear(head_hidden_size, num_classes)`` (Identity if 0)."""
        if global_pool is not None:
            if global_pool not in _GLOBAL_POOLS:
                raise ValueError(
                    f"global_pool must be '', 'token', 'avg' or 'flatten', got {global_pool!r}"
                )
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = (
            nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()
        )
        if isinstance(self.head, nn.Linear):
            _init_weights(self.head)

    # ----------------------------------------------------------------------------- input checks
    def _check_image(self, x: Tensor) -> None:
        """Shape, dtype and finiteness of the image batch (eager mode only)."""
        h, w = self.img_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_chans, h, w):
            raise ValueError(
                f"expected an image batch of shape (B, {self.in_chans}, {h}, {w}) "
                f"({self.in_chans} Landsat bands at {h}x{w} px), got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(
                f"image x must be a floating-point tensor, got {x.dtype}: convert it to float32 and "
                "normalise it (x.float(), then the weights' transforms; the datamodules do both)"
            )
        dtype = self.patch_embed.proj.weight.dtype
        if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(
                f"image x is {x.dtype} but the model's weights are {dtype}: convert it with "
                f"x.to({dtype}) (float32 normalised reflectance unless you converted the model)"
            )
        if not self.allow_nonfinite and value_checks_enabled():
            bad = ~torch.isfinite(x).flatten(1).all(1)
            if bad.any():  # one host synchronisation per eager forward
                raise ValueError(
                    f"image x has NaN/inf pixels in samples {bad.nonzero().flatten().tolist()} of the "
                    "batch: fill or drop them, or build the encoder with allow_nonfinite=True to let "
                    "them through (their tokens are then NaN)"
                )

    # ----------------------------------------------------------------------------- embedding
    def embed(
        self,
        x: Tensor,
        *,
        lat: Tensor | None = None,
        lon: Tensor | None = None,
        time: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Tokens with positions added, before the blocks.

        Args:
            x: normalised image ``(B, in_chans, img_size, img_size)``.
            lat, lon, time: metadata ``(B,)`` (degrees, degrees, POSIX seconds UTC), NaN/None = missing.

        Returns:
            ``prefix (B, 5, C)`` (metadata + CLS) and ``patches (B, L, C)``.
        """
        if eager_checks_enabled():
            self._check_image(x)
        b = x.shape[0]
        patches = self.patch_embed(x) + self.pos_embed[:, self.num_prefix_tokens :]
        meta = encode_metadata(
            lat,
            lon,
            time,
            b,
            device=x.device,
            dtype=self.meta_weight.dtype,
            hour_encoding=self.hour_encoding,
        )
        meta_tokens = torch.einsum("bmk,mck->bmc", meta, self.meta_weight) + self.meta_bias
        prefix = torch.cat(
            [cast(meta_tokens, patches.dtype), self.cls_token.expand(b, -1, -1)], dim=1
        )
        return prefix + self.pos_embed[:, : self.num_prefix_tokens], patches

    def _run_block(self, block: nn.Module, tokens: Tensor) -> tuple[Tensor, MoEAux]:
        if self.grad_checkpointing and torch.is_grad_enabled():
            # Non-reentrant checkpointing keeps gradients through the routing outputs (the
            # balancing loss) and replays the gate noise from the saved RNG state.
            return checkpoint(block, tokens, use_reentrant=False)
        return block(tokens)

    def forward_tokens(self, tokens: Tensor) -> EncoderOutput:
        """Run the blocks and the final norm on ``(B, N, C)`` embedded tokens."""
        routing = []
        for block in self.blocks:
            tokens, aux = self._run_block(block, tokens)
            routing.append(aux)
        return EncoderOutput(self.norm(tokens), balancing_loss(routing), routing)

    def forward_encoder(
        self,
        x: Tensor,
        *,
        lat: Tensor | None = None,
        lon: Tensor | None = None,
        time: Tensor | None = None,
        ids_keep: Tensor | None = None,
    ) -> EncoderOutput:
        """Encode an image, optionally keeping only the patches ``ids_keep`` ``(B, L)`` (MAE masking)."""
        prefix, patches = self.embed(x, lat=lat, lon=lon, time=time)
        if ids_keep is not None:
            patches = torch.gather(
                patches, 1, ids_keep.unsqueeze(-1).expand(-1, -1, patches.shape[-1])
            )
        return self.forward_tokens(torch.cat([prefix, patches], dim=1))

    def forward_features(
        self,
        x: Tensor,
        *,
        lat: Tensor | None = None,
        lon: Tensor | None = None,
        time: Tensor | None = None,
    ) -> Tensor:
        """``(B, in_chans, H, W) -> (B, 5 + L, C)`` tokens after the final LayerNorm."""
        return self.forward_encoder(x, lat=lat, lon=lon, time=time).tokens

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool ``(B, N, C)`` tokens per :attr:`global_pool` and apply the classifier."""
        x = self.head_drop(pool_tokens(x, self.global_pool, self.cls_index))
        return x if pre_logits else self.head(x)

    def forward(
        self,
        x: Tensor,
        *,
        lat: Tensor | None = None,
        lon: Tensor | None = None,
        time: Tensor | None = None,
    ) -> Tensor:
        """Pooled features (``num_classes=0``) or logits, ``(B, num_classes or head_hidden_size)``.

        With ``global_pool=""`` the result keeps the token axis: ``(B, 5 + L, num_classes or C)``.
        """
        return self.forward_head(self.forward_features(x, lat=lat, lon=lon, time=time))

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | list[int] | None = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
        *,
        lat: Tensor | None = None,
        lon: Tensor | None = None,
        time: Tensor | None = None,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]] | list[tuple[Tensor, Tensor]]:
        """Features of intermediate blocks, timm style.

        The positional arguments are those of timm's ``VisionTransformer.forward_intermediates``;
        metadata is keyword-only.

        Args:
            x: image ``(B, in_chans, H, W)``.
            indices: last n blocks if int, all if None, else the given block indices.
            return_prefix_tokens: also return the 5 prefix tokens ``(B, 5, C)`` of each intermediate.
            norm: apply the final norm to the intermediates.
            stop_early: run no block after the last requested one; the final tokens returned
                are then that block's, normed (as timm's ViT).
            output_fmt: ``"NCHW"`` (patch grid ``(B, C, 10, 10)``) or ``"NLC"`` (``(B, L, C)``).
            intermediates_only: return only the intermediates.
            lat, lon, time: metadata as in :meth:`forward_features`.
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        prefix, patches = self.embed(x, lat=lat, lon=lon, time=time)
        tokens = torch.cat([prefix, patches], dim=1)
        blocks = self.blocks[: max_index + 1] if stop_early else self.blocks
        intermediates = []
        for i, block in enumerate(blocks):
            tokens, _ = self._run_block(block, tokens)
            if i in take_indices:
                intermediates.append(self.norm(tokens) if norm else tokens)
        b = x.shape[0]
        h, w = self.grid_size
        outs: list = []
        for t in intermediates:
            spatial = t[:, self.num_prefix_tokens :]
            if output_fmt == "NCHW":
                spatial = spatial.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()
            outs.append(
                (spatial, t[:, : self.num_prefix_tokens]) if return_prefix_tokens else spatial
            )
        if intermediates_only:
            return outs
        return self.norm(tokens), outs

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop blocks (and optionally norm/head) not needed for the given intermediates."""
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[: max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()  # type: ignore[assignment]
        if prune_head:
            self.reset_classifier(0)
        return take_indices
