"""The paper's linear-probe metrics (torchmetrics), for every probe and the tasks.

BigEarthNet (``task="multilabel"``): micro/macro precision, recall and F1 at threshold 0.5 and
micro/macro mAP (average precision from probabilities). EuroSAT (``task="multiclass"``): overall
accuracy (OA) and macro precision, recall and F1 (micro P/R/F1 equal OA for single-label data and
are reported too).

Conventions (the same as ``sklearn.metrics`` with ``zero_division=0``): a class never predicted
has precision 0; a class absent from the targets has recall 0 and average precision 0, and all
of them count in macro averages. Macro averages are therefore only comparable between runs on the
same evaluation split.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MultilabelAveragePrecision,
    MultilabelF1Score,
    MultilabelPrecision,
    MultilabelRecall,
)
from torchmetrics.functional.classification import (
    binary_average_precision,
    multilabel_average_precision,
)
from torchmetrics.utilities import dim_zero_cat

from ..outputs import atomic_path

__all__ = [
    "METRIC_LABELS",
    "Task",
    "compute_metrics",
    "format_metrics_table",
    "make_metric_collection",
    "save_metrics",
]

Task = Literal["multilabel", "multiclass"]

#: Display names in the paper's order.
METRIC_LABELS: dict[str, str] = {
    "overall_accuracy": "OA",
    "precision_micro": "Precision (micro)",
    "precision_macro": "Precision (macro)",
    "recall_micro": "Recall (micro)",
    "recall_macro": "Recall (macro)",
    "f1_micro": "F1 (micro)",
    "f1_macro": "F1 (macro)",
    "map_micro": "mAP (micro)",
    "map_macro": "mAP (macro)",
}


class MacroAveragePrecision(MultilabelAveragePrecision):
    """Macro mAP where a class absent from the targets counts as 0, as the module's conventions say.

    torchmetrics gives such a class the same 0 but warns for each ("No positive samples found in
    target"), once per probe and pool; here only the present classes go through it.
    """

    def __init__(self, num_labels: int) -> None:
        super().__init__(num_labels=num_labels, average="none")

    def compute(self) -> Tensor:  # type: ignore[override]
        """Mean over all classes of the per-class average precision (0 without positives)."""
        preds, target = dim_zero_cat(self.preds), dim_zero_cat(self.target)
        present = (target == 1).any(dim=0)
        scores = torch.zeros(self.num_labels, dtype=torch.float32, device=preds.device)
        n = int(present.sum())
        if n == 1:  # torchmetrics' multilabel functions need at least two labels
            scores[present] = binary_average_precision(
                preds[:, present][:, 0], target[:, present][:, 0]
            ).float()
        elif n > 1:
            scores[present] = multilabel_average_precision(
                preds[:, present], target[:, present], n, average="none"
            ).float()
        return scores.mean()


def make_metric_collection(
    task: Task, num_classes: int, threshold: float = 0.5, prefix: str | None = None
) -> MetricCollection:
    """The torchmetrics objects behind :func:`compute_metrics` (for Lightning modules).

    Update them with probabilities (or logits: torchmetrics applies a sigmoid/softmax to values
    outside [0, 1]) and integer targets (multi-hot ``(N, C)`` or class indices ``(N,)``).
    """
    metrics: dict[str, Any]
    if task == "multilabel":
        kw: dict[str, Any] = dict(num_labels=num_classes, threshold=threshold)
        metrics = {
            "precision_micro": MultilabelPrecision(average="micro", **kw),
            "precision_macro": MultilabelPrecision(average="macro", **kw),
            "recall_micro": MultilabelRecall(average="micro", **kw),
            "recall_macro": MultilabelRecall(average="macro", **kw),
            "f1_micro": MultilabelF1Score(average="micro", **kw),
            "f1_macro": MultilabelF1Score(average="macro", **kw),
            "map_micro": MultilabelAveragePrecision(num_labels=num_classes, average="micro"),
            "map_macro": MacroAveragePrecision(num_labels=num_classes),
        }
    elif task == "multiclass":
        kw = {"num_classes": num_classes}
        metrics = {
            "overall_accuracy": MulticlassAccuracy(average="micro", **kw),
            "precision_micro": MulticlassPrecision(average="micro", **kw),
            "precision_macro": MulticlassPrecision(average="macro", **kw),
            "recall_micro": MulticlassRecall(average="micro", **kw),
            "recall_macro": MulticlassRecall(average="macro", **kw),
            "f1_micro": MulticlassF1Score(average="micro", **kw),
            "f1_macro": MulticlassF1Score(average="macro", **kw),
        }
    else:
        raise ValueError(f"task must be 'multilabel' or 'multiclass', got {task!r}")
    return MetricCollection(metrics, prefix=prefix)


def _as_tensor(x: Tensor | np.ndarray) -> Tensor:
    return x.detach().cpu() if isinstance(x, Tensor) else torch.from_numpy(np.asarray(x))


def compute_metrics(
    y_true: Tensor | np.ndarray,
    y_score: Tensor | np.ndarray,
    task: Task,
    num_classes: int | None = None,
    threshold: float = 0.5,
) -> dict[str, float]:
    """The paper's metrics from targets and predicted probabilities.

    Args:
        y_true: multi-hot ``(N, C)`` (multilabel) or class indices ``(N,)`` (multiclass).
        y_score: probabilities ``(N, C)`` (sigmoid outputs / softmax rows).
        task: ``"multilabel"`` or ``"multiclass"``.
        num_classes: C (default: ``y_score.shape[1]``).
        threshold: decision threshold on multi-label probabilities.

    Returns:
        ``{name: value}`` with the keys of :data:`METRIC_LABELS` that apply to ``task`` (values in [0, 1]).
    """
    target = _as_tensor(y_true).long()
    score = _as_tensor(y_score).float()
    if score.ndim != 2:
        raise ValueError(f"y_score must be (N, C) probabilities, got shape {tuple(score.shape)}")
    c = num_classes or score.shape[1]
    collection = make_metric_collection(task, c, threshold)
    collection.update(score, target)
    return {k: float(v) for k, v in collection.compute().items()}


def format_metrics_table(
    results: Mapping[str, Mapping[str, float]], percent: bool = False, digits: int = 3
) -> str:
    """A markdown table, one row per run (e.g. per pooling) and one column per metric."""
    keys = [k for k in METRIC_LABELS if any(k in r for r in results.values())]
    head = "| Embedding | " + " | ".join(METRIC_LABELS[k] for k in keys) + " |"
    rule = "|---|" + "---:|" * len(keys)
    rows = []
    for name, r in results.items():
        cells = []
        for k in keys:
            v = r.get(k)
            cells.append("" if v is None else f"{v * 100:.1f}" if percent else f"{v:.{digits}f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows])


def save_metrics(
    payload: Mapping[str, object],
    path: str | Path,
    results: Mapping[str, Mapping[str, float]] | None = None,
    percent: bool = False,
    markdown: str | None = None,
) -> Path:
    """Write ``payload`` as indented JSON to ``path`` (parents created; each file written whole or
    not at all, :func:`~torchgeo_moemae.outputs.atomic_path`) and, given ``markdown`` or
    ``results`` (``{run name: metrics}``: their :func:`format_metrics_table`), Markdown next to
    it (``.md``).

    Used by :func:`~torchgeo_moemae.probe.linear_probe` and ``moemae probe``.
    """
    path = Path(path)
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    if markdown is None and results is not None:
        markdown = format_metrics_table(results, percent)
    if markdown is not None:
        with atomic_path(path.with_suffix(".md")) as partial:
            partial.write_text(markdown + "\n")
    return path
