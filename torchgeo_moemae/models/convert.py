"""Conversion of the authors' checkpoints (``MOEMAE.state_dict()`` layout) to this package's layout.

Upstream layout (692 keys for size S): ``encoder.patch_proj``, ``encoder.{week,hour,lat,lon}_proj``,
``encoder.layers.<i>.{norm1,attn.{q,k,v,out}_proj,norm2,moe.{experts.<e>.{W,V,W2},gate.{Wg,Wnoise}}}``,
``encoder.norm``, ``decoder_*`` likewise, plus ``patch_embed.*`` (an alias of ``encoder.patch_proj``).
``V`` and ``W2`` are shared by the experts of a layer and repeated under every expert key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import Tensor, nn

from .attention import GroupedQueryAttention
from .block import MoEBlock
from .encoder import MoEMAEEncoder
from .mae import MoEMAE

__all__ = [
    "checkpoint_filter_fn",
    "convert_upstream_state_dict",
    "is_upstream_state_dict",
    "unwrap_checkpoint",
]

_META = ("week", "hour", "lat", "lon")
_UPSTREAM_BLOCK = re.compile(r"^(encoder\.layers|decoder_layers)\.(\d+)\.(.+)$")


def unwrap_checkpoint(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """Return the state dict inside a training checkpoint (``model_state``/``state_dict``/``model``)."""
    for key in ("model_state", "state_dict", "model"):
        inner = checkpoint.get(key)
        if isinstance(inner, Mapping):
            return dict(inner)
    return {k: v for k, v in checkpoint.items() if isinstance(v, Tensor)}


def is_upstream_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """True for the authors' layout (it has ``encoder.layers.*`` or ``encoder.patch_proj.*``)."""
    return any(k.startswith(("encoder.layers.", "encoder.patch_proj.")) for k in state_dict)


def _head_permutation(num_heads: int, num_kv_groups: int) -> Tensor:
    """``perm[h']`` = upstream head that becomes our head ``h'``.

    Upstream head ``h`` uses key/value group ``h % G``; ours ``h'`` uses ``h' // (H / G)``.
    """
    per_group = num_heads // num_kv_groups
    return torch.tensor(
        [(h % per_group) * num_kv_groups + h // per_group for h in range(num_heads)]
    )


def _permute_heads(weight: Tensor, perm: Tensor, dim: int) -> Tensor:
    """Reorder head-sized blocks of ``weight`` along ``dim`` by ``perm``."""
    heads = weight.unflatten(dim, (len(perm), -1))
    return heads.index_select(dim, perm).flatten(dim, dim + 1)


def _shared(
    state_dict: Mapping[str, Tensor], prefix: str, name: str, num_experts: int
) -> dict[str, Tensor]:
    """The shared ``V``/``W2`` of one layer, checking every expert's copy is identical."""
    out = {}
    for param in ("weight", "bias"):
        first = state_dict[f"{prefix}.moe.experts.0.{name}.{param}"]
        for e in range(1, num_experts):
            other = state_dict[f"{prefix}.moe.experts.{e}.{name}.{param}"]
            if not torch.equal(first, other):
                raise ValueError(
                    f"checkpoint key {prefix}.moe.experts.{e}.{name}.{param} differs from expert 0: "
                    f"{name} must be shared by all experts of a layer in an MoE-MAE checkpoint"
                )
        out[param] = first
    return out


def _convert_block(
    state_dict: Mapping[str, Tensor], src: str, dst: str, attn: GroupedQueryAttention
) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for norm in ("norm1", "norm2"):
        for param in ("weight", "bias"):
            out[f"{dst}.{norm}.{param}"] = state_dict[f"{src}.{norm}.{param}"]
    perm = _head_permutation(attn.num_heads, attn.num_kv_groups)
    for param in ("weight", "bias"):
        q = _permute_heads(state_dict[f"{src}.attn.q_proj.{param}"], perm, 0)
        k, v = (state_dict[f"{src}.attn.{name}_proj.{param}"] for name in ("k", "v"))
        out[f"{dst}.attn.qkv.{param}"] = torch.cat([q, k, v])
    out[f"{dst}.attn.proj.weight"] = _permute_heads(
        state_dict[f"{src}.attn.out_proj.weight"], perm, 1
    )
    out[f"{dst}.attn.proj.bias"] = state_dict[f"{src}.attn.out_proj.bias"]
    experts = sorted(
        {
            int(m.group(1))
            for k in state_dict
            if (m := re.match(rf"^{re.escape(src)}\.moe\.experts\.(\d+)\.", k))
        }
    )
    if experts != list(range(len(experts))) or not experts:
        raise ValueError(f"checkpoint has no contiguous experts under {src}.moe.experts")
    out[f"{dst}.moe.w"] = torch.stack(
        [state_dict[f"{src}.moe.experts.{e}.W.weight"] for e in experts]
    )
    out[f"{dst}.moe.w_bias"] = torch.stack(
        [state_dict[f"{src}.moe.experts.{e}.W.bias"] for e in experts]
    )
    for src_name, dst_name in (("V", "v"), ("W2", "w2")):
        for param, value in _shared(state_dict, src, src_name, len(experts)).items():
            out[f"{dst}.moe.{dst_name}.{param}"] = value
    for src_name, dst_name in (("Wg", "w_gate"), ("Wnoise", "w_noise")):
        for param in ("weight", "bias"):
            out[f"{dst}.moe.gate.{dst_name}.{param}"] = state_dict[
                f"{src}.moe.gate.{src_name}.{param}"
            ]
    return out


def convert_upstream_state_dict(
    state_dict: Mapping[str, Tensor], model: nn.Module
) -> dict[str, Tensor]:
    """Convert the authors' MAE state dict to the keys of ``model``.

    Args:
        state_dict: upstream ``MOEMAE.state_dict()`` (or an encoder-only subset).
        model: a :class:`~torchgeo_moemae.models.MoEMAE` (all keys) or a
            :class:`~torchgeo_moemae.models.MoEMAEEncoder` (encoder keys only, ``encoder.`` stripped).

    Returns:
        A state dict for ``model``. Raises ``ValueError`` if shared expert weights differ or the
        ``patch_embed`` alias disagrees with ``encoder.patch_proj``.
    """
    encoder = model if isinstance(model, MoEMAEEncoder) else cast(MoEMAEEncoder, model.encoder)
    sd = dict(state_dict)
    alias = sd.get("patch_embed.weight")
    if alias is not None and not torch.equal(alias, sd["encoder.patch_proj.weight"]):
        raise ValueError(
            "checkpoint keys patch_embed.weight and encoder.patch_proj.weight must be aliases"
        )
    out: dict[str, Tensor] = {
        "encoder.patch_embed.proj.weight": sd["encoder.patch_proj.weight"],
        "encoder.patch_embed.proj.bias": sd["encoder.patch_proj.bias"],
        "encoder.meta_weight": torch.stack([sd[f"encoder.{m}_proj.weight"] for m in _META]),
        "encoder.meta_bias": torch.stack([sd[f"encoder.{m}_proj.bias"] for m in _META]),
        "encoder.cls_token": sd["encoder.cls_token"],
        "encoder.pos_embed": sd["encoder.pos_embed"],
        "encoder.norm.weight": sd["encoder.norm.weight"],
        "encoder.norm.bias": sd["encoder.norm.bias"],
    }
    targets: dict[str, tuple[str, nn.ModuleList]] = {
        "encoder.layers": ("encoder.blocks", encoder.blocks)
    }
    if isinstance(model, MoEMAE):
        targets["decoder_layers"] = ("decoder_blocks", model.decoder_blocks)
    layers = sorted({(m.group(1), int(m.group(2))) for k in sd if (m := _UPSTREAM_BLOCK.match(k))})
    for group, i in layers:
        if group not in targets:
            continue  # decoder layers when loading an encoder
        dst, blocks = targets[group]
        if i >= len(blocks):
            depth = 1 + max(j for g, j in layers if g == group)
            raise ValueError(
                f"the checkpoint has {depth} {group} blocks ({group}.0 to {group}.{depth - 1}), "
                f"the model has {len(blocks)}: wrong model size?"
            )
        block = blocks[i]
        assert isinstance(block, MoEBlock)
        out.update(_convert_block(sd, f"{group}.{i}", f"{dst}.{i}", block.attn))
    if isinstance(model, MoEMAEEncoder):
        return {k.removeprefix("encoder."): v for k, v in out.items()}
    for key in ("mask_token", "decoder_pos_embed"):
        out[key] = sd[key]
    for module in ("decoder_embed", "decoder_norm", "decoder_pred"):
        for param in ("weight", "bias"):
            out[f"{module}.{param}"] = sd[f"{module}.{param}"]
    return out


def checkpoint_filter_fn(state_dict: Mapping[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """timm ``pretrained_filter_fn``: accept every checkpoint layout we know for ``model``.

    * the authors' training dict (``{"epoch", "model_state", ...}``) or bare ``MOEMAE`` state dict;
    * this package's MAE state dict (``encoder.*`` + decoder keys) when loading an encoder;
    * this package's encoder state dict / safetensors (passed through).
    """
    sd = unwrap_checkpoint(state_dict)
    if is_upstream_state_dict(sd):
        if not isinstance(model, MoEMAEEncoder | MoEMAE):
            raise TypeError(f"cannot convert an MoE-MAE checkpoint for {type(model).__name__}")
        return convert_upstream_state_dict(sd, model)
    if isinstance(model, MoEMAEEncoder) and any(k.startswith("encoder.") for k in sd):
        sd = {k.removeprefix("encoder."): v for k, v in sd.items() if k.startswith("encoder.")}
    check_fits(sd, model)
    return sd


def _encoder_shape(sd: Mapping[str, Any], prefix: str) -> tuple[int, int] | None:
    """``(embed_dim, depth)`` of the encoder keys under ``prefix`` in ``sd``, if it has them."""
    norm = sd.get(f"{prefix}norm.weight")
    if norm is None:
        return None
    blocks = {k.removeprefix(prefix).split(".")[1] for k in sd if k.startswith(f"{prefix}blocks.")}
    return int(norm.shape[0]), len(blocks)


def _size_name(shape: tuple[int, int]) -> str:
    """``"XXS (width 108, 9 blocks)"`` for an ``(embed_dim, depth)``."""
    from .registry import MODEL_SIZES, MODEL_VARIANTS  # registry imports this module

    sizes = {(v["embed_dim"], v["depth"]): k for k, v in MODEL_SIZES.items()}
    names = {size: name for name, size in MODEL_VARIANTS.items()}
    size = sizes.get(shape)
    described = f"width {shape[0]}, {shape[1]} blocks"
    return f"{size} ({names[size]}, {described})" if size else described


def check_fits(sd: Mapping[str, Any], model: nn.Module) -> None:
    """Refuse, in words, weights of another encoder size or an encoder without the MAE's decoder.

    Raises:
        ValueError: naming both sizes and what to pass instead (loading would otherwise fail with
            a list of missing keys and shape mismatches).
    """
    if not isinstance(model, MoEMAEEncoder | MoEMAE):
        return
    encoder = model if isinstance(model, MoEMAEEncoder) else model.encoder
    own = (encoder.embed_dim, len(encoder.blocks))
    theirs = _encoder_shape(sd, "" if isinstance(model, MoEMAEEncoder) else "encoder.")
    if theirs is None and isinstance(model, MoEMAE) and _encoder_shape(sd, "") is not None:
        raise ValueError(
            "the weights hold an encoder only, without the decoder a full MoE-MAE needs: pass "
            "full-MAE weights (an export folder holding mae.safetensors, or the authors' .pth)"
        )
    # fewer blocks in the model is fine: timm's features_only prunes the ones it does not use
    if theirs is not None and (theirs[0] != own[0] or theirs[1] < own[1]):
        raise ValueError(
            f"the weights hold a {_size_name(theirs)} encoder, the model is {_size_name(own)}: "
            "create the model of the weights' size"
        )
