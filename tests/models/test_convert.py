"""The head permutation applied to the authors' weights turns their tiled GQA into SDPA's layout."""

from __future__ import annotations

import torch

from torchgeo_moemae.models.attention import GroupedQueryAttention
from torchgeo_moemae.models.convert import _convert_block


def _tiled_gqa(x: torch.Tensor, w: dict, heads: int, groups: int) -> torch.Tensor:
    """The authors' semantics: query head h attends with key/value group h % groups."""
    b, n, c = x.shape
    d = c // heads
    q = (x @ w["q.weight"].T + w["q.bias"]).view(b, n, heads, d).transpose(1, 2)
    k = (x @ w["k.weight"].T + w["k.bias"]).view(b, n, groups, d).transpose(1, 2)
    v = (x @ w["v.weight"].T + w["v.bias"]).view(b, n, groups, d).transpose(1, 2)
    idx = torch.arange(heads) % groups
    att = torch.softmax(q @ k[:, idx].transpose(-1, -2) * d**-0.5, dim=-1)
    out = (att @ v[:, idx]).transpose(1, 2).reshape(b, n, c)
    return out @ w["out.weight"].T + w["out.bias"]


def test_permuted_weights_reproduce_tiled_groups() -> None:
    heads, groups, c = 6, 3, 36
    d = c // heads
    w = {
        "q.weight": torch.randn(c, c), "q.bias": torch.randn(c),
        "k.weight": torch.randn(d * groups, c), "k.bias": torch.randn(d * groups),
        "v.weight": torch.randn(d * groups, c), "v.bias": torch.randn(d * groups),
        "out.weight": torch.randn(c, c), "out.bias": torch.randn(c),
    }  # fmt: skip
    upstream = {f"L.attn.{k.split('.')[0]}_proj.{k.split('.')[1]}": v for k, v in w.items()}
    upstream.update(
        {f"L.{n}.{p}": torch.ones(c) for n in ("norm1", "norm2") for p in ("weight", "bias")}
    )
    for name, shape in (("W", (4, c)), ("V", (4, c)), ("W2", (c, 4))):
        upstream[f"L.moe.experts.0.{name}.weight"] = torch.zeros(shape)
        upstream[f"L.moe.experts.0.{name}.bias"] = torch.zeros(shape[0])
    for name in ("Wg", "Wnoise"):
        upstream[f"L.moe.gate.{name}.weight"] = torch.zeros(2, c)
        upstream[f"L.moe.gate.{name}.bias"] = torch.zeros(2)
    attn = GroupedQueryAttention(c, heads, groups)
    converted = _convert_block(upstream, "L", "B", attn)
    attn.load_state_dict(
        {k.removeprefix("B.attn."): v for k, v in converted.items() if k.startswith("B.attn.")}
    )
    x = torch.randn(2, 9, c)
    torch.testing.assert_close(attn(x), _tiled_gqa(x, w, heads, groups), atol=1e-4, rtol=1e-4)


def test_state_dicts_with_separate_qkv_projections_still_load() -> None:
    """Exports and checkpoints written before q/k/v were one Linear are fused on load."""
    source = GroupedQueryAttention(36, 6, 3)
    q, k, v = (part.clone() for part in source.qkv.weight.detach().split([36, 18, 18]))
    qb, kb, vb = (part.clone() for part in source.qkv.bias.detach().split([36, 18, 18]))
    old = {"q.weight": q, "q.bias": qb, "k.weight": k, "k.bias": kb, "v.weight": v, "v.bias": vb}
    old |= {f"proj.{n}": p.detach().clone() for n, p in source.proj.named_parameters()}
    target = GroupedQueryAttention(36, 6, 3)
    target.load_state_dict(old)  # strict: no missing or unexpected keys
    x = torch.randn(2, 9, 36)
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)
