"""Per-layer routing sparsity of the encoder (the paper's Table 9), computed from the modules.

Definitions (per token, at inference):

* ``unique_expert_params`` of a layer: the expert-specific parameters, ``E * (C * dh + dh)`` (each
  expert's own ``W_e`` weight and bias). ``V``, ``W2`` and the gate are shared by the experts of the
  layer and are not counted here (the paper's "unique FFN" column).
* ``active_expert_params``: the ``k`` chosen experts' parameters, ``k * (C * dh + dh)``.
* **expert-FFN active fraction** = sum of ``active_expert_params`` / sum of ``unique_expert_params``
  over the layers (the paper's "about 52%").
* **encoder active fraction** = (all encoder parameters - the ``E - k`` idle experts' parameters of
  every layer) / all encoder parameters (the paper's "about 81%": embeddings, attention, norms,
  the gates and the shared ``V``/``W2`` are always on). The gate-noise network (``w_noise``) counts as
  a parameter but is only used in training; :attr:`SparsityReport.encoder_active_fraction_inference`
  leaves it out of both counts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from torch import nn

from ..models import MoEMAEEncoder, SwiGLUMoE

__all__ = ["PAPER_UNIQUE_EXPERT_PARAMS_K", "LayerSparsity", "SparsityReport", "sparsity_report"]

#: Paper Table 9 (size S): unique (non-shared) expert parameters per encoder layer, in thousands.
PAPER_UNIQUE_EXPERT_PARAMS_K: tuple[float, ...] = (
    62.6, 60.0, 57.9, 55.7, 53.5, 68.4, 65.5, 62.6, 59.2, 56.3, 66.7, 63.1, 59.5, 55.8, 52.2,
)  # fmt: skip


@dataclass
class LayerSparsity:
    """One encoder layer's routing sparsity."""

    layer: int
    num_experts: int
    top_k: int
    hidden: int
    params_per_expert: int
    unique_expert_params: int
    active_expert_params: int
    shared_params: int  # V, W2 and the gate (w_gate, w_noise)

    @property
    def k_over_e(self) -> float:
        """Fraction of experts a token uses."""
        return self.top_k / self.num_experts


@dataclass
class SparsityReport:
    """Table 9 of the paper plus the per-token active fractions."""

    layers: list[LayerSparsity] = field(default_factory=list)
    encoder_params: int = 0
    gate_noise_params: int = 0

    @property
    def unique_expert_params(self) -> int:
        """Total expert-specific parameters (paper: 899.0K for S)."""
        return sum(r.unique_expert_params for r in self.layers)

    @property
    def active_expert_params(self) -> int:
        """Expert-specific parameters a token uses."""
        return sum(r.active_expert_params for r in self.layers)

    @property
    def expert_active_fraction(self) -> float:
        """Per-token active fraction of the expert-specific FFN parameters (paper: ~52%)."""
        return self.active_expert_params / self.unique_expert_params

    @property
    def encoder_active_params(self) -> int:
        """Encoder parameters a token uses (all minus the idle experts)."""
        return self.encoder_params - (self.unique_expert_params - self.active_expert_params)

    @property
    def encoder_active_fraction(self) -> float:
        """Per-token active fraction of all encoder parameters (paper: ~81%)."""
        return self.encoder_active_params / self.encoder_params

    @property
    def encoder_active_fraction_inference(self) -> float:
        """The same without the gate-noise networks (unused at inference) in either count."""
        return (self.encoder_active_params - self.gate_noise_params) / (
            self.encoder_params - self.gate_noise_params
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the rows and the totals."""
        return {
            "layers": [{**asdict(r), "k_over_e": round(r.k_over_e, 4)} for r in self.layers],
            "unique_expert_params": self.unique_expert_params,
            "active_expert_params": self.active_expert_params,
            "expert_active_fraction": self.expert_active_fraction,
            "encoder_params": self.encoder_params,
            "encoder_active_params": self.encoder_active_params,
            "encoder_active_fraction": self.encoder_active_fraction,
            "encoder_active_fraction_inference": self.encoder_active_fraction_inference,
        }

    def save_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def to_markdown(self) -> str:
        """The paper's Table 9 layout (thousands of parameters) with the active fractions below."""
        lines = [
            "| Layer | E | k | k/E | dh | Unique expert params (K) | Active per token (K) |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.layers:
            lines.append(
                f"| {r.layer} | {r.num_experts} | {r.top_k} | {r.k_over_e:.2f} | {r.hidden} | "
                f"{r.unique_expert_params / 1e3:.1f} | {r.active_expert_params / 1e3:.1f} |"
            )
        lines.append(
            f"| Total | | | | | {self.unique_expert_params / 1e3:.1f} | "
            f"{self.active_expert_params / 1e3:.1f} |"
        )
        lines += [
            "",
            f"Per-token active fraction of the expert-specific FFN parameters: "
            f"{self.expert_active_fraction:.1%} "
            f"({self.active_expert_params:,} of {self.unique_expert_params:,}).",
            f"Per-token active fraction of all encoder parameters: "
            f"{self.encoder_active_fraction:.1%} "
            f"({self.encoder_active_params:,} of {self.encoder_params:,}; "
            f"{self.encoder_active_fraction_inference:.1%} without the training-only gate-noise layers).",
        ]
        return "\n".join(lines)


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sparsity_report(model: nn.Module) -> SparsityReport:
    """Count parameters layer by layer from an encoder (or an MAE: its encoder is used).

    Works for any module whose MoE layers are :class:`SwiGLUMoE` (found in module order); the
    encoder total is the parameter count of the whole ``model`` (a classifier head, if any, included).
    """
    encoder = model.encoder if hasattr(model, "encoder") else model
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    if isinstance(encoder, MoEMAEEncoder):
        moes = [cast(SwiGLUMoE, b.moe) for b in encoder.blocks]
    else:
        moes = [m for m in encoder.modules() if isinstance(m, SwiGLUMoE)]
    report = SparsityReport(encoder_params=_numel(encoder))
    for i, moe in enumerate(moes):
        e, dh = int(moe.num_experts), int(moe.hidden)
        per_expert = (moe.w.numel() + moe.w_bias.numel()) // e
        k = int(cast(Any, moe.gate).top_k)
        report.layers.append(
            LayerSparsity(
                layer=i,
                num_experts=e,
                top_k=k,
                hidden=dh,
                params_per_expert=per_expert,
                unique_expert_params=per_expert * e,
                active_expert_params=per_expert * k,
                shared_params=_numel(moe.v) + _numel(moe.w2) + _numel(moe.gate),
            )
        )
        report.gate_noise_params += _numel(moe.gate.w_noise)
    return report
