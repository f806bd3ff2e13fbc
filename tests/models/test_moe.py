"""The fused MoE dispatch equals the per-expert reference loop; gate and balancing-loss details."""

from __future__ import annotations

import math

import pytest
import torch

from torchgeo_moemae.models import MoEMAE, MoEMAEEncoder, NoisyTopKGate, SwiGLUMoE, create_mae
from torchgeo_moemae.models.moe import balancing_loss, cv_squared


def _grads(
    module: torch.nn.Module, x: torch.Tensor, seed: int
) -> tuple[torch.Tensor, dict, torch.Tensor]:
    module.zero_grad()
    x = x.clone().requires_grad_(True)
    torch.manual_seed(seed)
    out, aux = module(x)
    (out.square().sum() + aux.loss).backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    return out.detach(), grads, x.grad


@pytest.mark.parametrize("dispatch", ["fused", "routed"])
@pytest.mark.parametrize("training", [False, True])
def test_fast_dispatch_equals_loop(dispatch: str, training: bool) -> None:
    moe = SwiGLUMoE(dim=24, hidden=12, num_experts=5, top_k=2, dispatch=dispatch).train(training)  # type: ignore[arg-type]
    x = torch.randn(3, 7, 24)
    fused = _grads(moe, x, seed=1)
    moe.dispatch = "loop"
    loop = _grads(moe, x, seed=1)
    torch.testing.assert_close(fused[0], loop[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(fused[2], loop[2], atol=1e-5, rtol=0)
    assert fused[1].keys() == loop[1].keys()
    for name, grad in fused[1].items():
        torch.testing.assert_close(grad, loop[1][name], atol=1e-5, rtol=0, msg=name)


@pytest.mark.parametrize("dispatch", ["fused", "routed"])
def test_fast_dispatch_equals_loop_in_whole_model(dispatch: str) -> None:
    mae = create_mae("XXS").train()
    for module in mae.modules():
        if isinstance(module, SwiGLUMoE):
            module.dispatch = dispatch  # type: ignore[assignment]
    x = torch.randn(2, 7, 40, 40)

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        mae.zero_grad()
        torch.manual_seed(5)
        out = mae(x)
        out.loss().backward()
        return out.pred.detach(), [p.grad.clone() for p in mae.parameters() if p.grad is not None]

    pred, grads = run()
    for module in mae.modules():
        if isinstance(module, SwiGLUMoE):
            module.dispatch = "loop"  # type: ignore[assignment]
    pred_loop, grads_loop = run()
    torch.testing.assert_close(pred, pred_loop, atol=1e-5, rtol=0)
    for a, b in zip(grads, grads_loop, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_gates_are_topk_softmax_in_eval() -> None:
    gate = NoisyTopKGate(dim=8, num_experts=4, top_k=2).eval()
    x = torch.randn(50, 8)
    aux = gate(x)
    assert ((aux.gates > 0).sum(-1) == 2).all()
    torch.testing.assert_close(aux.gates.sum(-1), torch.ones(50))
    logits = gate.w_gate(x)
    top, idx = logits.topk(2, dim=-1)
    torch.testing.assert_close(aux.gates.gather(-1, idx), torch.softmax(top, -1))
    torch.testing.assert_close(aux.load, (aux.gates > 0).float().sum(0))


def test_load_uses_kth_of_other_experts() -> None:
    """load_e = sum_t Phi((clean_e - kth_excluding_e(H)) / std_e), checked against a direct computation."""
    gate = NoisyTopKGate(dim=6, num_experts=4, top_k=2).train()
    x = torch.randn(30, 6)
    torch.manual_seed(0)
    aux = gate(x)
    torch.manual_seed(0)
    clean = gate.w_gate(x)
    std = torch.nn.functional.softplus(gate.w_noise(x)) + gate.noise_eps
    noisy = clean + torch.randn_like(clean) * std
    expected = torch.zeros(4)
    for e in range(4):
        others = torch.cat([noisy[:, :e], noisy[:, e + 1 :]], dim=1)
        kth = others.topk(2, dim=1).values[:, 1]
        expected[e] = (0.5 * (1 + torch.erf((clean[:, e] - kth) / std[:, e] / math.sqrt(2)))).sum()
    torch.testing.assert_close(aux.load, expected)
    torch.testing.assert_close(
        aux.loss, 0.01 * cv_squared(aux.importance) + 0.01 * cv_squared(expected)
    )


def test_cv_squared() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 4.0, 5.0]])
    expected = torch.stack([row.var() / row.mean() ** 2 for row in x])
    torch.testing.assert_close(cv_squared(x), expected)
    torch.testing.assert_close(cv_squared(x[0]), expected[0])


def test_balancing_loss_batches_layers_of_any_expert_count() -> None:
    """One CV per group of layers, the same sum as layer by layer."""
    routing = []
    for experts in (3, 4, 3, 5):
        gate = NoisyTopKGate(dim=6, num_experts=experts, top_k=2).train()
        routing.append(gate(torch.randn(20, 6)))
    per_layer = [0.01 * cv_squared(aux.importance) + 0.01 * cv_squared(aux.load) for aux in routing]
    torch.testing.assert_close(balancing_loss(routing), torch.stack(per_layer).sum())
    for aux, expected in zip(routing, per_layer, strict=True):
        torch.testing.assert_close(aux.loss, expected)


def test_compiles_without_graph_breaks() -> None:
    """No host synchronisation in the hot path: the whole MAE traces as one graph."""
    encoder = MoEMAEEncoder(
        embed_dim=36, depth=1, num_heads=2, num_kv_groups=1, hidden_first=8, hidden_last=8
    )
    mae = MoEMAE(
        encoder,
        decoder_dim=18,
        decoder_depth=1,
        decoder_heads=1,
        decoder_kv_groups=1,
        decoder_hidden=8,
    ).train()
    compiled = torch.compile(mae, backend="aot_eager", fullgraph=True)
    out = compiled(
        torch.randn(2, 7, 40, 40),
        torch.zeros(2),
        torch.zeros(2),
        torch.zeros(2, dtype=torch.float64),
    )
    out.loss().backward()
    assert torch.isfinite(out.loss())


def test_cv_squared_traces_with_fx() -> None:
    """No Python branch on the element count: FX traces it."""

    class CV(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return cv_squared(x)

    graph = torch.fx.symbolic_trace(CV())
    x = torch.tensor([[1.0, 2.0, 3.0], [2.0, 2.0, 7.0]])
    torch.testing.assert_close(graph(x), cv_squared(x))
