"""What timm's generic model tests check for its ViTs, run on the three registered encoders.

Mirrors ``timm/tests/test_models.py`` (default cfg, forward/backward, features, heads, pools,
intermediates and pruning, ``features_only``, grad checkpointing, FX, ``torch.compile``, bf16)
with small batches. ``torch.compile`` runs once, on the XXS model with the ``eager`` backend:
``fullgraph=True`` is a property of graph capture, which that backend exercises without
inductor's code generation (minutes on a shared 2-core CPU).
"""

from __future__ import annotations

import inspect

import pytest
import timm
import torch
from timm.models import VisionTransformer, create_feature_extractor
from timm.models._features_fx import get_notrace_functions, get_notrace_modules
from timm.models._manipulate import group_parameters
from timm.optim import create_optimizer_v2
from torchvision.models import feature_extraction

import torchgeo_moemae  # noqa: F401  (registers the models)
from torchgeo_moemae.models import MoEMAEEncoder, get_model

NAMES = ["moemae_landsat", "moemae_landsat_xs", "moemae_landsat_xxs"]
POOLS = ["token", "avg", "flatten", ""]


def _input(model: torch.nn.Module, batch_size: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch_size, *model.pretrained_cfg["input_size"], generator=gen)


def _metadata(batch_size: int = 2) -> dict[str, torch.Tensor]:
    return dict(
        lat=torch.linspace(40, 60, batch_size),
        lon=torch.linspace(-5, 25, batch_size),
        time=torch.linspace(1.5e9, 1.53e9, batch_size, dtype=torch.float64),
    )


@pytest.fixture(scope="module", params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def model(name: str) -> MoEMAEEncoder:
    return timm.create_model(name).eval()


def test_default_cfg(model: MoEMAEEncoder) -> None:
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (7, 40, 40) and cfg["fixed_input_size"]
    assert len(cfg["mean"]) == len(cfg["std"]) == 7
    first_conv = model.get_submodule(cfg["first_conv"])
    assert isinstance(first_conv, torch.nn.Conv2d) and first_conv.in_channels == 7
    assert model.get_submodule(cfg["classifier"]) is model.get_classifier()
    assert cfg["num_classes"] == model.num_classes == 0
    out = model(_input(model))
    assert out.shape == (2, model.num_features) and model.num_features == model.head_hidden_size


def test_forward_backward(model: MoEMAEEncoder) -> None:
    model.train()
    classifier = timm.create_model(model.pretrained_cfg["architecture"], num_classes=5).train()
    out = classifier(_input(classifier))
    assert out.shape == (2, 5)
    # The gate's noise weights learn through the balancing loss only, so it joins the output.
    enc = classifier.forward_encoder(_input(classifier), **_metadata())
    (out.mean() + classifier.forward_head(enc.tokens).mean() + enc.moe_loss).backward()
    missing = [n for n, p in classifier.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in classifier.parameters())


def test_forward_features_and_head(model: MoEMAEEncoder) -> None:
    x = _input(model)
    feats = model.forward_features(x, **_metadata())
    assert feats.shape == (2, model.num_prefix_tokens + model.num_patches, model.embed_dim)
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.shape == (2, model.head_hidden_size)
    torch.testing.assert_close(pre, model(x, **_metadata()))


@pytest.mark.parametrize("pool", POOLS)
def test_reset_classifier(model: MoEMAEEncoder, pool: str) -> None:
    x = _input(model)
    tokens = model.num_prefix_tokens + model.num_patches
    model.reset_classifier(10, pool)
    assert model(x).shape == ((2, tokens, 10) if pool == "" else (2, 10))
    model.reset_classifier(0)
    width = model.embed_dim * tokens if pool == "flatten" else model.embed_dim
    assert model(x).shape == ((2, tokens, width) if pool == "" else (2, width))
    assert model.head_hidden_size == width


def test_create_model_unpooled(name: str) -> None:
    model = timm.create_model(name, global_pool="").eval()
    x = _input(model)
    torch.testing.assert_close(model(x), model.forward_features(x))


def test_forward_intermediates_signature_is_timm_vit() -> None:
    ours = list(inspect.signature(MoEMAEEncoder.forward_intermediates).parameters.values())
    vit = list(inspect.signature(VisionTransformer.forward_intermediates).parameters)
    positional = [p.name for p in ours if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == vit[: len(positional)]
    keyword_only = {p.name for p in ours if p.kind is p.KEYWORD_ONLY}
    assert {"lat", "lon", "time"} <= keyword_only
    for method in (MoEMAEEncoder.forward, MoEMAEEncoder.forward_features):
        params = inspect.signature(method).parameters
        assert all(params[k].kind is inspect.Parameter.KEYWORD_ONLY for k in ("lat", "lon", "time"))


def test_forward_intermediates_and_prune(model: MoEMAEEncoder) -> None:
    x, meta = _input(model), _metadata()
    depth = len(model.blocks)
    final, inter = model.forward_intermediates(x, **meta)
    torch.testing.assert_close(final, model.forward_features(x, **meta))
    assert len(inter) == depth and all(t.shape == (2, model.embed_dim, 10, 10) for t in inter)
    # timm's positional order: x, indices, return_prefix_tokens, norm, stop_early, output_fmt, ...
    only = model.forward_intermediates(x, [1], False, True, True, "NLC", True, **meta)
    assert len(only) == 1 and only[0].shape == (2, model.num_patches, model.embed_dim)
    kept = model.prune_intermediate_layers([1], prune_norm=True)
    assert kept == [1] and len(model.blocks) == 2
    pruned = model.forward_intermediates(x, [1], intermediates_only=True, **meta)
    torch.testing.assert_close(pruned[0], inter[1])


def test_features_only(name: str) -> None:
    features = timm.create_model(name, features_only=True, out_indices=(0, 2)).eval()
    x = _input(features)
    outs = features(x)
    dim = outs[0].shape[1]
    assert [tuple(o.shape) for o in outs] == [(2, dim, 10, 10)] * 2
    assert features.feature_info.channels() == [dim, dim]
    assert features.feature_info.reduction() == [4, 4]
    default = timm.create_model(name, features_only=True)
    assert len(default.feature_info.channels()) == 3  # timm's ViT default: the last 3 blocks
    assert len(get_model(name, features_only=True, out_indices=[1])(x)) == 1


def test_grad_checkpointing_gives_equal_gradients(name: str) -> None:
    def grads(checkpointing: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        torch.manual_seed(0)
        model = timm.create_model(name, num_classes=3).train()  # noise and dropout: RNG replay
        model.set_grad_checkpointing(checkpointing)
        assert model.grad_checkpointing is checkpointing
        torch.manual_seed(1)
        enc = model.forward_encoder(_input(model), **_metadata())
        loss = model.forward_head(enc.tokens).sum() + enc.moe_loss
        loss.backward()
        gates = torch.stack([r.gates.sum(0) for r in enc.routing[:3]])
        return gates, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    gates_ref, ref = grads(False)
    gates_ckpt, ckpt = grads(True)
    torch.testing.assert_close(gates_ckpt, gates_ref)
    assert ckpt.keys() == ref.keys()
    for key in ref:
        torch.testing.assert_close(ckpt[key], ref[key], msg=key)


def test_group_matcher_for_layer_decay(model: MoEMAEEncoder) -> None:
    groups = group_parameters(model, model.group_matcher())
    stem = set(groups[0])
    assert {"patch_embed.proj.weight", "meta_weight", "meta_bias", "cls_token", "pos_embed"} <= stem
    assert not any(n.startswith("blocks.") for n in stem)
    # stem, then one group per block; the final norm joins the last block (timm's ViT rule)
    assert len(groups) == len(model.blocks) + 1
    assert all(n.startswith("blocks.0.") for n in groups[1])
    assert {"norm.weight", "norm.bias"} <= set(groups[len(model.blocks)])
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-3, layer_decay=0.75)
    scales = sorted({g["lr_scale"] for g in optimizer.param_groups})
    assert len(scales) == len(model.blocks) + 1 and scales[-1] == 1.0


def test_fx_trace(model: MoEMAEEncoder) -> None:
    x, meta = _input(model), _metadata()
    graph = torch.fx.symbolic_trace(model)
    torch.testing.assert_close(graph(x), model(x))
    torch.testing.assert_close(graph(x, **meta), model(x, **meta))
    with pytest.raises(ValueError, match="'lat' must be in"):  # the call still checks metadata
        graph(x, lat=torch.tensor([200.0, 0.0]))
    extractor = create_feature_extractor(model, {"blocks.1": "block1", "norm": "final"})
    out = extractor(x, **meta)
    torch.testing.assert_close(out["final"], model.forward_features(x, **meta))


def test_fx_graph_computes_exactly_what_eager_does(model: MoEMAEEncoder) -> None:
    """timm's generic test: its tracer's graph, last node, compared with ``==`` (batch of 1)."""
    tracer_kwargs = dict(
        leaf_modules=get_notrace_modules(),
        autowrap_functions=get_notrace_functions(),
        param_shapes_constant=True,
    )
    train_nodes, eval_nodes = feature_extraction.get_graph_node_names(model, tracer_kwargs)
    extractor = feature_extraction.create_feature_extractor(
        model,
        train_return_nodes=[train_nodes[-1]],
        eval_return_nodes=[eval_nodes[-1]],
        tracer_kwargs=tracer_kwargs,
    )
    x = _input(model, batch_size=1)
    (traced,) = extractor(x).values()
    assert torch.equal(traced, model(x))
    graph, meta = torch.fx.symbolic_trace(model), _metadata(1)
    assert torch.equal(graph(x, **meta), model(x, **meta))


def test_forward_intermediates_stops_early(model: MoEMAEEncoder) -> None:
    """``stop_early``: no block after the last requested one runs, as in timm's ViT."""
    x, meta = _input(model), _metadata()
    calls = [0] * len(model.blocks)
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    final, ((spatial, prefix),) = model.forward_intermediates(
        x, [1], return_prefix_tokens=True, stop_early=True, output_fmt="NLC", **meta
    )
    assert calls == [1, 1] + [0] * (len(model.blocks) - 2)
    torch.testing.assert_close(final, model.norm(torch.cat([prefix, spatial], dim=1)))


def test_torch_compile_fullgraph() -> None:
    model = timm.create_model("moemae_landsat_xxs").eval()
    x, meta = _input(model), _metadata()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, **meta), model(x, **meta), atol=1e-5, rtol=1e-5)


def test_bf16(model: MoEMAEEncoder) -> None:
    x, meta = _input(model), _metadata()
    with torch.no_grad():
        ref = model(x, **meta)
        low = model.to(torch.bfloat16)(x.bfloat16(), **meta)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    assert (low.float() - ref).abs().mean() < 0.05


def test_torchscript_is_refused_clearly(model: MoEMAEEncoder) -> None:
    with pytest.raises(RuntimeError, match=r"does not support torch\.jit\.script.*torch\.compile"):
        torch.jit.script(model)


@pytest.mark.parametrize("in_chans", [1, 3])
def test_pretrained_adapts_first_conv(name: str, in_chans: int, tmp_path: object) -> None:
    from pathlib import Path

    from safetensors.torch import save_file

    source = timm.create_model(name)
    path = Path(str(tmp_path)) / "model.safetensors"
    save_file(source.state_dict(), path)
    model = timm.create_model(
        name, pretrained=True, in_chans=in_chans, pretrained_cfg_overlay=dict(file=str(path))
    )
    weight = source.patch_embed.proj.weight
    expected = weight.sum(1, keepdim=True) if in_chans == 1 else weight[:, :3] * 7 / 3
    torch.testing.assert_close(model.patch_embed.proj.weight, expected)
    torch.testing.assert_close(model.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    assert model(torch.randn(2, in_chans, 40, 40)).shape == (2, model.num_features)
