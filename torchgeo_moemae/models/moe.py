"""Sparse SwiGLU mixture-of-experts feed-forward with a noisy top-k gate (Shazeer et al., 2017)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import cast, eager_checks_enabled

__all__ = [
    "ExpertWeights",
    "MoEAux",
    "NoisyTopKGate",
    "SwiGLUMoE",
    "balancing_loss",
    "cv_squared",
    "mix_experts",
]


def cv_squared(x: Tensor, eps: float = 1e-10) -> Tensor:
    """Squared coefficient of variation ``var(x) / mean(x)^2`` along the last axis: ``(..., E) -> (...)``.

    Unbiased variance (as Shazeer's code), so ``E`` must be at least 2 (a gate has ``E > top_k >= 1``).
    """
    var, mean = torch.var_mean(x, dim=-1)
    return var / (mean.square() + eps)


@dataclass
class MoEAux:
    """Routing results of one MoE layer.

    Attributes:
        gates: ``(T, E)`` gate weights, non-zero for the top-k experts of each token (sum 1).
        importance: ``(E,)`` sum of gates over tokens.
        load: ``(E,)`` smooth expected token count per expert (training with noise) or the hard count.
        num_experts: E.
        w_importance: weight of ``CV(importance)^2`` in :attr:`loss`.
        w_load: weight of ``CV(load)^2`` in :attr:`loss`.
    """

    gates: Tensor
    importance: Tensor
    load: Tensor
    num_experts: int
    w_importance: float
    w_load: float

    @property
    def loss(self) -> Tensor:
        """Scalar balancing loss ``w_importance * CV(importance)^2 + w_load * CV(load)^2``."""
        return balancing_loss([self])


def balancing_loss(routing: Sequence[MoEAux]) -> Tensor:
    """Sum of the layers' balancing losses (:attr:`MoEAux.loss`).

    Computed when asked for (a decoder's routing costs nothing), and for all layers with the same
    expert count and weights at once: one CV per group of layers, not per layer.
    """
    groups: dict[tuple[int, float, float], list[MoEAux]] = {}
    for aux in routing:
        groups.setdefault((aux.num_experts, aux.w_importance, aux.w_load), []).append(aux)
    losses = []
    for (_, w_importance, w_load), group in groups.items():
        stats = torch.stack([aux.importance for aux in group] + [aux.load for aux in group])
        cv_importance, cv_load = cv_squared(stats).view(2, -1).sum(1).unbind()
        losses.append(w_importance * cv_importance + w_load * cv_load)
    return losses[0] if len(losses) == 1 else torch.stack(losses).sum()


class NoisyTopKGate(nn.Module):
    """Noisy top-k gating with Shazeer's importance and load balancing losses.

    In training ``H = Wg x + eps * (softplus(Wn x) + noise_eps)`` with ``eps ~ N(0, 1)``; in eval mode
    ``H = Wg x`` so routing is deterministic (the authors' code adds noise at inference too). The
    load loss uses the paper's thresholds and ``CV^2`` (the authors' code swaps the thresholds and
    uses ``CV``). See ``docs/user_guide/fidelity.rst``.

    Args:
        dim: token width C.
        num_experts: E.
        top_k: experts per token k (< E).
        noise_eps: floor of the noise std; keeps the load estimate's division finite (as in Shazeer's code).
        w_importance: weight of CV(importance)^2.
        w_load: weight of CV(load)^2.
    """

    def __init__(
        self,
        dim: int,
        num_experts: int,
        top_k: int = 2,
        noise_eps: float = 1e-2,
        w_importance: float = 0.01,
        w_load: float = 0.01,
    ) -> None:
        super().__init__()
        if not 0 < top_k < num_experts:
            raise ValueError(
                f"top_k must be in [1, num_experts - 1], got {top_k} with {num_experts} experts"
            )
        self.num_experts = num_experts
        self.top_k = top_k
        self.noise_eps = noise_eps
        self.w_importance = w_importance
        self.w_load = w_load
        self.w_gate = nn.Linear(dim, num_experts)
        self.w_noise = nn.Linear(dim, num_experts)

    def forward(self, x: Tensor) -> MoEAux:
        """Route tokens ``x`` of shape ``(T, C)``."""
        k = self.top_k
        # Routing decisions are made in float32 even under autocast: bf16 ties flip top-k choices.
        clean = cast(self.w_gate(x), torch.float32)
        noisy = self.training
        if noisy:
            noise_std = F.softplus(cast(self.w_noise(x), torch.float32)) + self.noise_eps
            logits = torch.addcmul(clean, torch.randn_like(clean), noise_std)
        else:
            logits = clean
        # k+1 largest: the (k+1)-th is the threshold an expert inside the top-k must stay above.
        top_vals, top_idx = logits.topk(k + 1, dim=-1)
        vals, threshold_in = top_vals.split([k, 1], dim=-1)
        gates = torch.zeros_like(logits).scatter(-1, top_idx[:, :k], torch.softmax(vals, dim=-1))
        importance = gates.sum(0)
        if noisy:
            # P(expert e is in the top-k when only its own noise is resampled): compare its clean logit
            # with the k-th largest of the OTHER experts' noisy logits: the (k+1)-th if e is in the
            # top-k, the k-th if it is outside.
            threshold = torch.where(logits > threshold_in, threshold_in, vals[:, k - 1 :])
            load = torch.special.ndtr((clean - threshold) / noise_std).sum(0)
        else:
            load = (gates > 0).sum(0, dtype=torch.float32)
        return MoEAux(gates, importance, load, self.num_experts, self.w_importance, self.w_load)


class SwiGLUMoE(nn.Module):
    """Mixture of SwiGLU experts ``W2(silu(W_e x) * V x)`` that share ``V`` and ``W2``.

    Because the top-k gates sum to one and ``W2`` is affine and shared,
    ``sum_e g_e W2(h_e) = W2(sum_e g_e silu(W_e x) * V x)``: ``V`` and ``W2`` run once per token,
    not once per chosen expert. Three exact dispatches (multiply-adds per token, in C*dh units):

    * ``"routed"``: each ``W_e`` on its routed tokens only, ``V``/``W2`` once: 4, against 6 for the
      per-expert loop of the reference code. Index selection has data-dependent shapes (a host sync
      on CUDA): the default for eager CPU tensors.
    * ``"fused"``: all ``W_e`` as one matmul on every token, non-routed gates zero, ``V``/``W2``
      once: E + 2, static shapes, no gather/scatter, no host synchronisation: the default on
      accelerators and under ``torch.compile``.
    * ``"loop"``: the plain per-expert reference ``sum_e g_e W2(silu(W_e x) * V x)`` on routed
      tokens, kept to test and benchmark against.

    ``"auto"`` (default) picks ``"routed"`` for eager CPU tensors, else ``"fused"``. Tokens with a
    zero gate contribute exactly zero (value and gradient) in every dispatch.

    Args:
        dim: token width C.
        hidden: expert width dh.
        num_experts: E.
        top_k: experts per token.
        drop: dropout on the layer output (training only).
        dispatch: ``"auto"``, ``"routed"``, ``"fused"`` or ``"loop"``.
        **gate_kwargs: forwarded to :class:`NoisyTopKGate`.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        num_experts: int,
        top_k: int = 2,
        drop: float = 0.1,
        dispatch: Literal["auto", "routed", "fused", "loop"] = "auto",
        **gate_kwargs: float,
    ) -> None:
        super().__init__()
        self.num_experts = num_experts
        self.hidden = hidden
        self.dispatch = dispatch
        self.gate = NoisyTopKGate(dim, num_experts, top_k, **gate_kwargs)
        self.w = nn.Parameter(torch.empty(num_experts, hidden, dim))
        self.w_bias = nn.Parameter(torch.zeros(num_experts, hidden))
        self.v = nn.Linear(dim, hidden)
        self.w2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)
        nn.init.trunc_normal_(self.w, std=0.02)

    def expert_outputs(self, x: Tensor) -> Tensor:
        """Every expert's ungated output ``W2(silu(W_e x) * V x)`` for analysis: ``(T, C) -> (T, E, C)``."""
        h = F.silu(torch.einsum("tc,ehc->teh", x, self.w) + self.w_bias)
        return self.w2(h * self.v(x).unsqueeze(1))

    def forward(self, x: Tensor) -> tuple[Tensor, MoEAux]:
        """``(B, N, C) -> ((B, N, C), routing of the B*N tokens)``."""
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])
        aux = self.gate(tokens)
        weights = ExpertWeights(
            self.w, self.w_bias, self.v.weight, self.v.bias, self.w2.weight, self.w2.bias
        )
        out = mix_experts(tokens, aux.gates, weights, self.dispatch)
        return self.drop(out).view(shape), aux


class ExpertWeights(NamedTuple):
    """The weights of a :class:`SwiGLUMoE`'s experts, as :func:`mix_experts` takes them."""

    w: Tensor  # (E, dh, C)
    w_bias: Tensor  # (E, dh)
    v_weight: Tensor  # (dh, C)
    v_bias: Tensor  # (dh,)
    w2_weight: Tensor  # (C, dh)
    w2_bias: Tensor  # (C,)


def _fused(x: Tensor, gates: Tensor, p: ExpertWeights) -> Tensor:
    h = F.linear(x, p.w.flatten(0, 1), p.w_bias.flatten())  # (T, E * dh)
    h = F.silu(h).view(x.shape[0], p.w.shape[0], p.w.shape[1])
    # (T, 1, E) @ (T, E, dh): one batched matmul; autocast casts the float32 gates itself.
    mixed = torch.bmm(cast(gates, h.dtype).unsqueeze(1), h).squeeze(1)
    return F.linear(mixed * F.linear(x, p.v_weight, p.v_bias), p.w2_weight, p.w2_bias)


def _routed(x: Tensor, gates: Tensor, p: ExpertWeights) -> Tensor:
    mixed = x.new_zeros(x.shape[0], p.w.shape[1])
    for e in range(p.w.shape[0]):
        idx = torch.nonzero(gates[:, e] > 0).squeeze(-1)
        # index_select, not x[idx]: faster, and its backward is index_add, not index_put
        he = F.silu(F.linear(x.index_select(0, idx), p.w[e], p.w_bias[e]))
        gate = gates[:, e].index_select(0, idx).unsqueeze(-1).to(x.dtype)
        mixed.index_add_(0, idx, he * gate)  # in place: no copy of (T, dh) per expert
    return F.linear(mixed * F.linear(x, p.v_weight, p.v_bias), p.w2_weight, p.w2_bias)


def _loop(x: Tensor, gates: Tensor, p: ExpertWeights) -> Tensor:
    out = x.new_zeros(x.shape[0], p.w2_weight.shape[0])
    for e in range(p.w.shape[0]):
        idx = torch.nonzero(gates[:, e] > 0).squeeze(-1)
        xe = x[idx]
        he = F.silu(F.linear(xe, p.w[e], p.w_bias[e])) * F.linear(xe, p.v_weight, p.v_bias)
        out = out.index_add(
            0, idx, F.linear(he, p.w2_weight, p.w2_bias) * gates[idx, e : e + 1].to(x.dtype)
        )
    return out


def mix_experts(x: Tensor, gates: Tensor, weights: ExpertWeights, dispatch: str) -> Tensor:
    """``sum_e gates[:, e] * W2(silu(W_e x) * V x)`` of tokens ``x (T, C)``: ``(T, C)``.

    ``dispatch`` as :class:`SwiGLUMoE`'s. FX records this function as one call (it is wrapped),
    so ``"auto"`` decides when the graph runs, on the real device: a traced model computes
    exactly what the eager one does.
    """
    if dispatch == "auto":
        # Eager check first: under torch.compile the choice is the static-shape "fused".
        eager_cpu = eager_checks_enabled() and x.device.type == "cpu"
        dispatch = "routed" if eager_cpu else "fused"
    impl = {"routed": _routed, "fused": _fused, "loop": _loop}[dispatch]
    return impl(x, gates, weights)


torch.fx.wrap("mix_experts")
