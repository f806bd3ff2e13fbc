"""What the classification tasks share: loss, probabilities, the paper's metrics, the steps."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchgeo.trainers import BaseTask

from ..errors import reported_in_one_line
from ..models import MoEMAEEncoder, Provenance, create_encoder, load_weights
from ..models.checkpoint import RANDOM_INIT
from ..probe.metrics import make_metric_collection
from ..vocabulary import HourEncoding, TimeSource, sample_time

__all__ = ["ClassificationBase"]


class ClassificationBase(BaseTask):
    """A :class:`~torchgeo.trainers.BaseTask` whose ``forward(batch)`` gives logits
    ``(B, num_classes)``: BCE-with-logits (``task="multilabel"``, multi-hot targets) or
    cross-entropy (``"multiclass"``) plus :meth:`penalty`; the paper's metrics
    (:mod:`torchgeo_moemae.probe.metrics`) logged as ``{train,val,test}_<metric>`` with
    ``{stage}_loss``; ``predict_step`` returns probabilities. Subclasses set the hyper-parameters
    ``task`` and ``num_classes`` and build the model with :meth:`create_encoder`.

    The samples' time: the encoder gets the hours its weights were trained with. The task's
    :attr:`sample_time_source` (the authors' weights: their parse of each patch id; weights
    trained here: the label JSON's time) is what a BigEarthNet-L datamodule with
    ``time_source="auto"`` reads, and once the datamodule is set up the encoder's hour rule follows
    the time source it actually uses (:func:`~torchgeo_moemae.vocabulary.sample_time`).
    """

    monitor = "val_loss"
    mode = "min"
    #: where the weights the task started from came from
    initial_weights: Provenance = RANDOM_INIT
    #: the hour rule those weights were trained with
    weights_hour_encoding: HourEncoding = "utc"
    #: the time source of Landsat-Bench samples those weights need
    sample_time_source: TimeSource = "json"
    #: the time source the datamodule uses (known once it is set up)
    time_source: TimeSource | None = None

    def create_encoder(self, weights: Any, **kwargs: Any) -> nn.Module:
        """The ``model`` hyper-parameter's encoder with ``weights`` (None: random), noting where
        the weights came from and the hours they need; ``kwargs`` go to
        :func:`~torchgeo_moemae.models.create_encoder`."""
        with reported_in_one_line():  # not buried in `torchgeo fit`'s jsonargparse traceback
            checkpoint = None if weights is None else load_weights(weights)
        if checkpoint is not None:
            self.initial_weights = checkpoint.provenance
            self.weights_hour_encoding = checkpoint.hour_encoding
        self.sample_time_source, hour_encoding = sample_time(self.weights_hour_encoding)
        encoder = create_encoder(self.hparams["model"], checkpoint, **kwargs)
        if isinstance(encoder, MoEMAEEncoder):
            encoder.hour_encoding = hour_encoding
        return encoder

    def setup(self, stage: str) -> None:
        """Give the encoder the hour rule of the time source the datamodule chose."""
        datamodule = getattr(self.trainer, "datamodule", None)
        source = getattr(datamodule, "kwargs", {}).get("time_source")
        encoder = self.metadata_encoder
        if source is not None and encoder is not None:
            self.time_source = source
            encoder.hour_encoding = sample_time(self.weights_hour_encoding, source)[1]

    @property
    def trained_hour_encoding(self) -> HourEncoding:
        """The hour rule of the hours the encoder is fed: ``"authors"`` when the samples carry the
        authors' parse of the patch id or the encoder applies their rule, else ``"utc"``."""
        encoder = self.metadata_encoder
        source = self.time_source or self.sample_time_source
        if source == "authors_filename" or (
            encoder is not None and encoder.hour_encoding == "authors"
        ):
            return "authors"
        return "utc"

    @property
    def metadata_encoder(self) -> MoEMAEEncoder | None:
        """The MoE-MAE encoder that reads the batches' metadata (None for other timm models)."""
        return next((m for m in self.modules() if isinstance(m, MoEMAEEncoder)), None)

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
