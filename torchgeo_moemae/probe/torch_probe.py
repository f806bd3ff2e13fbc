"""A logistic-regression probe in PyTorch that streams features from disk (CPU or GPU).

It minimises the same objective as scikit-learn's ``LogisticRegression(C)`` divided by ``C * N``::

    mean_i loss(W x_i + b, y_i) + 1 / (2 * C * N) * ||W||^2        (the bias is not penalised)

with ``loss`` the per-sample binary cross-entropy summed over classes for multi-label targets (one
independent logistic regression per class: exactly one-vs-rest) or the softmax cross-entropy for
single-label targets (the multinomial model). Equal objectives have equal minimisers, so the probe
agrees with the paper's scikit-learn probe up to optimisation error.

Optimisers:

* ``"lbfgs"``: full-batch L-BFGS on the device; used by ``"auto"`` when the features fit in
  ``max_memory_bytes`` (exact and fast: most probes, all CLS/avg probes);
* ``"adam"``: minibatch Adam with a cosine learning-rate decay over row blocks streamed from the
  memory map (block order and rows within a block shuffled each epoch); only one block and the
  weights are ever on the device, so BigEarthNet-L's 16 GB all-token features need ~1 GB.

Features are used raw by default, like the paper; ``standardize=True`` z-scores them with
streamed per-feature statistics of the training set (stored in the probe).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..utils import default_device

__all__ = ["TorchLinearProbe", "fit_torch_probe", "torch_predict_proba"]


class TorchLinearProbe(nn.Module):
    """``Linear(D, C)`` with optional stored feature standardisation."""

    mean: Tensor
    scale: Tensor

    def __init__(self, dim: int, num_classes: int, task: str) -> None:
        super().__init__()
        self.task = task
        self.linear = nn.Linear(dim, num_classes)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, C)``."""
        return self.linear((x - self.mean) / self.scale)

    def proba(self, x: Tensor) -> Tensor:
        """Sigmoid (multi-label) or softmax (multi-class) probabilities."""
        logits = self(x)
        return torch.sigmoid(logits) if self.task == "multilabel" else logits.softmax(-1)


@dataclass
class _Data:
    features: np.ndarray
    labels: np.ndarray
    block_rows: int

    def blocks(self, order: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = self.features.shape[0]
        starts = np.arange(0, n, self.block_rows)
        for s in starts if order is None else starts[order]:
            e = min(s + self.block_rows, n)
            yield np.array(self.features[s:e], dtype=np.float32), np.array(self.labels[s:e])


def _loss(logits: Tensor, y: Tensor, task: str) -> Tensor:
    """Mean over samples of the per-sample loss (BCE summed over classes / CE)."""
    if task == "multilabel":
        return F.binary_cross_entropy_with_logits(logits, y.float(), reduction="sum") / y.shape[0]
    return F.cross_entropy(logits, y.long())


def _stats(data: _Data, device: torch.device) -> tuple[Tensor, Tensor]:
    d = data.features.shape[1]
    s = torch.zeros(d, dtype=torch.float64, device=device)
    s2 = torch.zeros(d, dtype=torch.float64, device=device)
    for x, _ in data.blocks():
        xt = torch.from_numpy(x).to(device, torch.float64)
        s += xt.sum(0)
        s2 += (xt * xt).sum(0)
    n = data.features.shape[0]
    mean = s / n
    std = (s2 / n - mean**2).clamp_min(0).sqrt()
    return mean.float(), torch.where(std > 1e-6, std, torch.ones_like(std)).float()


@torch.enable_grad()
def fit_torch_probe(
    features: np.ndarray,
    labels: np.ndarray,
    task: str | None = None,
    num_classes: int | None = None,
    C: float = 1.0,
    optimizer: Literal["auto", "lbfgs", "adam"] = "auto",
    epochs: int = 10,
    min_steps: int = 1000,
    batch_size: int = 512,
    lr: float = 5e-2,
    max_iter: int = 500,
    standardize: bool = False,
    block_rows: int = 65536,
    max_memory_bytes: int = 2 * 2**30,
    device: str | torch.device | None = None,
    seed: int = 0,
    progress: bool = False,
) -> TorchLinearProbe:
    """Fit the probe on ``(N, D)`` features (array or memory map) and labels.

    Args:
        features: ``(N, D)``; row blocks of ``block_rows`` are read as needed.
        labels: multi-hot ``(N, C)`` or class indices ``(N,)``.
        task: ``"multilabel"``/``"multiclass"`` (default: from ``labels.ndim``).
        num_classes: C (default: from the labels).
        C: inverse L2 strength, as scikit-learn's (1 in the paper).
        optimizer: ``"auto"``, ``"lbfgs"`` (full batch, in memory) or ``"adam"`` (streamed).
        epochs: passes over the data for Adam (raised to reach ``min_steps`` updates).
        min_steps: minimum number of Adam updates (small data sets need more epochs).
        batch_size: Adam minibatch size.
        lr: Adam peak learning rate (cosine decay to 0).
        max_iter: L-BFGS iterations.
        standardize: z-score features with training statistics.
        block_rows: rows per streamed block.
        max_memory_bytes: ``"auto"`` uses L-BFGS when ``N * D * 4`` is below this.
        device: default CUDA if available, else CPU.
        seed: seeds the initialisation-free shuffling; results are deterministic for a given device.
        progress: show a progress bar (Adam).
    """
    task = task or ("multilabel" if labels.ndim == 2 else "multiclass")
    n, d = features.shape
    c = num_classes or (labels.shape[1] if labels.ndim == 2 else int(np.max(labels)) + 1)
    dev = default_device(device)
    if optimizer == "auto":
        optimizer = "lbfgs" if n * d * 4 <= max_memory_bytes else "adam"
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"optimizer must be 'auto', 'lbfgs' or 'adam', got {optimizer!r}")
    data = _Data(features, labels, block_rows)
    probe = TorchLinearProbe(d, c, task).to(dev)
    if standardize:
        probe.mean, probe.scale = _stats(data, dev)
    weight_decay = 1.0 / (C * n)  # gradient of 1/(2CN) ||W||^2
    if optimizer == "lbfgs":
        _fit_lbfgs(probe, data, weight_decay, max_iter)
    else:
        steps_per_epoch = sum(
            math.ceil(len(rows) / batch_size) for _, rows in _sizes(n, block_rows)
        )
        epochs = max(epochs, math.ceil(min_steps / steps_per_epoch))
        _fit_adam(
            probe, data, weight_decay, epochs * steps_per_epoch, batch_size, lr, seed, progress
        )
    return probe.eval()


def _penalty(probe: TorchLinearProbe, weight_decay: float) -> Tensor:
    """``weight_decay / 2 * ||W||^2`` (the bias is not penalised, as in scikit-learn)."""
    return 0.5 * weight_decay * probe.linear.weight.pow(2).sum()


def _fit_lbfgs(probe: TorchLinearProbe, data: _Data, weight_decay: float, max_iter: int) -> None:
    """Full-batch L-BFGS with a strong-Wolfe line search, all features on the probe's device."""
    dev = probe.linear.weight.device
    x = torch.from_numpy(np.array(data.features, dtype=np.float32)).to(dev)
    y = torch.from_numpy(np.array(data.labels)).to(dev)
    opt = torch.optim.LBFGS(
        probe.linear.parameters(),
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = _loss(probe(x), y, probe.task) + _penalty(probe, weight_decay)
        loss.backward()
        return loss

    opt.step(closure)


def _fit_adam(
    probe: TorchLinearProbe,
    data: _Data,
    weight_decay: float,
    total: int,
    batch_size: int,
    lr: float,
    seed: int,
    progress: bool,
) -> None:
    """``total`` minibatch Adam steps with a cosine decay, over row blocks streamed from ``data``
    (block order and the rows within a block shuffled each pass)."""
    dev = probe.linear.weight.device
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(probe.linear.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    num_blocks = math.ceil(data.features.shape[0] / data.block_rows)
    steps = 0
    with tqdm(total=total, desc="torch probe", disable=not progress, unit="step") as bar:
        while steps < total:
            for xb_np, yb_np in data.blocks(rng.permutation(num_blocks)):
                xb = torch.from_numpy(xb_np).to(dev, non_blocking=True)
                yb = torch.from_numpy(yb_np).to(dev, non_blocking=True)
                perm = torch.randperm(len(yb), generator=g).to(dev)
                for i in range(0, len(yb), batch_size):
                    idx = perm[i : i + batch_size]
                    loss = _loss(probe(xb[idx]), yb[idx], probe.task) + _penalty(
                        probe, weight_decay
                    )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    bar.update()
                    steps += 1


def _sizes(n: int, block_rows: int) -> Iterator[tuple[int, range]]:
    for s in range(0, n, block_rows):
        yield s, range(s, min(s + block_rows, n))


@torch.no_grad()
def torch_predict_proba(
    probe: TorchLinearProbe, features: np.ndarray, block_rows: int = 65536
) -> np.ndarray:
    """Probabilities ``(N, C)`` float32, computed block by block on the probe's device."""
    dev = probe.linear.weight.device
    out = []
    for s in range(0, features.shape[0], block_rows):
        x = torch.from_numpy(np.array(features[s : s + block_rows], dtype=np.float32)).to(dev)
        out.append(probe.proba(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, probe.linear.out_features), np.float32)
