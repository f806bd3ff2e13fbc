"""What the classification tasks share: loss, probabilities, the paper's metrics, the steps."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchgeo.trainers import BaseTask

from ..probe.metrics import make_metric_collection

__all__ = ["ClassificationBase"]


class ClassificationBase(BaseTask):
    """A :class:`~torchgeo.trainers.BaseTask` whose ``forward(batch)`` gives logits
    ``(B, num_classes)``: BCE-with-logits (``task="multilabel"``, multi-hot targets) or
    cross-entropy (``"multiclass"``) plus :meth:`penalty`; the paper's metrics
    (:mod:`torchgeo_moemae.probe.metrics`) logged as ``{train,val,test}_<metric>`` with
    ``{stage}_loss``; ``predict_step`` returns probabilities. Subclasses set the hyper-parameters
    ``task`` and ``num_classes`` and build the model."""

    monitor = "val_loss"
    mode = "min"

    def configure_losses(self) -> None:
        """BCE-with-logits (``task="multilabel"``) or cross-entropy (``"multiclass"``)."""
        task = self.hparams["task"]
        if task not in ("multilabel", "multiclass"):
            raise ValueError(f"task must be 'multilabel' or 'multiclass', got {task!r}")
        self.criterion = nn.BCEWithLogitsLoss() if task == "multilabel" else nn.CrossEntropyLoss()

    def configure_metrics(self) -> None:
        """The paper's metrics per stage (torchmetrics collections)."""
        task, c = self.hparams["task"], self.hparams["num_classes"]
        self.train_metrics = make_metric_collection(task, c, prefix="train_")
        self.val_metrics = make_metric_collection(task, c, prefix="val_")
        self.test_metrics = make_metric_collection(task, c, prefix="test_")

    def penalty(self) -> Tensor | float:
        """A regularisation term added to the loss (none here)."""
        return 0.0

    def proba(self, logits: Tensor) -> Tensor:
        """Sigmoid (multi-label) or softmax (multi-class) probabilities of logits."""
        return torch.sigmoid(logits) if self.hparams["task"] == "multilabel" else logits.softmax(-1)

    def _step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        logits = self(batch)
        y = batch["label"]
        target = y.float() if self.hparams["task"] == "multilabel" else y.long()
        loss = self.criterion(logits, target) + self.penalty()
        bs = logits.shape[0]
        self.log(f"{stage}_loss", loss, batch_size=bs, prog_bar=stage != "test")
        metrics = getattr(self, f"{stage}_metrics")
        metrics(self.proba(logits).float(), y.long())
        self.log_dict(metrics, batch_size=bs, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Loss of a training batch."""
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Validation loss and metrics."""
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Test loss and metrics."""
        self._step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Probabilities ``(B, num_classes)``."""
        return self.proba(self(batch))
