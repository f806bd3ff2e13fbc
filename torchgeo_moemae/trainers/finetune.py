"""Fine-tuning an encoder with a classifier head as a ``torchgeo fit`` task, metadata included."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from timm.optim import param_groups_layer_decay
from torch import Tensor
from torchvision.models._api import WeightsEnum

from ..export import save_export
from ..models import MoEMAEEncoder
from ..utils import batch_metadata
from .classification import ClassificationBase

__all__ = ["FineTuneTask"]


class FineTuneTask(ClassificationBase):
    """Train an encoder and ``Linear(D, num_classes)`` end to end (or the head alone).

    The encoder is built by :func:`~torchgeo_moemae.models.create_encoder` with a fresh classifier
    head (timm's ``num_classes``/``global_pool``). Our encoder receives the batch's ``lat``,
    ``lon`` and ``time`` (NaN where unknown, e.g. EuroSAT-L); other timm models get the image only.

    Optimiser: AdamW over timm's layer-wise learning-rate decay groups
    (:func:`timm.optim.param_groups_layer_decay`, driven by the encoder's ``group_matcher``): the
    head learns at ``lr``, block ``i`` of ``L`` at ``lr * layer_decay ** (L - i)``, the embeddings
    at the smallest rate; norms, biases and :meth:`no_weight_decay` parameters are not decayed.
    ``freeze_backbone`` (TorchGeo's name) trains the head only, the backbone staying in eval mode
    for the whole fit (deterministic routing, no dropout: the features validation and test see).
    ReduceLROnPlateau on ``val_loss``. The samples' time follows the weights (see
    :class:`~torchgeo_moemae.trainers.classification.ClassificationBase`).

    Loss: BCE-with-logits (``multilabel``, BigEarthNet-L) or cross-entropy (``multiclass``,
    EuroSAT-L). Metrics: the paper's (:mod:`torchgeo_moemae.probe.metrics`), logged as
    ``{train,val,test}_<metric>``.
    """

    model: Any

    def __init__(
        self,
        model: str | None = None,
        weights: WeightsEnum | str | None = None,
        num_classes: int = 19,
        task: Literal["multilabel", "multiclass"] = "multilabel",
        global_pool: Literal["token", "avg"] = "token",
        freeze_backbone: bool = False,
        lr: float = 5e-4,
        layer_decay: float = 0.75,
        weight_decay: float = 0.05,
        patience: int = 10,
    ) -> None:
        """Initialize a new FineTuneTask.

        Args:
            model: ``"S"``/``"XS"``/``"XXS"``, ``moemae_landsat*`` or another timm model name; None:
                the architecture the weights record, else ``moemae_landsat``.
            weights: a weights entry or its name, an export folder, ``.safetensors`` or the
                authors' ``.pth``; None: random initialisation. Not saved in the hyper-parameters
                (a checkpoint holds the trained weights).
            num_classes: outputs (19 for BigEarthNet-L, 10 for EuroSAT-L).
            task: ``"multilabel"`` or ``"multiclass"``.
            global_pool: the head's input: the CLS token or the mean of all tokens.
            freeze_backbone: train the head only.
            lr: AdamW learning rate of the head (the top of the layer-wise decay).
            layer_decay: learning-rate factor per block below the head (1: no decay).
            weight_decay: AdamW weight decay (not applied to norms, biases and embeddings).
            patience: ReduceLROnPlateau patience (epochs).
        """
        self.weights = weights
        super().__init__()

    def configure_models(self) -> None:
        """The encoder with a fresh head; the backbone frozen if asked."""
        self.model = self.create_encoder(
            self.weights,
            num_classes=self.hparams["num_classes"],
            global_pool=self.hparams["global_pool"],
        )
        if self.hparams["freeze_backbone"]:
            head = {id(p) for p in self.model.get_classifier().parameters()}
            for param in self.model.parameters():
                param.requires_grad_(id(param) in head)

    def train(self, mode: bool = True) -> FineTuneTask:
        """Set the mode; a frozen backbone stays in eval mode (only the head trains)."""
        super().train(mode)
        if self.hparams["freeze_backbone"]:
            self.model.eval()
            self.model.get_classifier().train(mode)
        return self

    def configure_optimizers(self) -> Any:
        """AdamW over layer-wise lr-decay groups; ReduceLROnPlateau on ``val_loss``."""
        no_decay: set[str] = getattr(self.model, "no_weight_decay", set)()
        groups = param_groups_layer_decay(
            self.model,
            weight_decay=self.hparams["weight_decay"],
            no_weight_decay_list=list(no_decay),
            layer_decay=self.hparams["layer_decay"],
        )
        lr = self.hparams["lr"]
        for group in groups:  # torch's optimisers know no lr_scale: fold it into each lr
            group["lr"] = lr * group.pop("lr_scale", 1.0)
            group["params"] = [p for p in group["params"] if p.requires_grad]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, patience=self.hparams["patience"]
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor},
        }

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits ``(B, num_classes)``; our encoder also gets the batch's metadata."""
        if isinstance(self.model, MoEMAEEncoder):
            return self.model(batch["image"], **batch_metadata(batch))
        return self.model(batch["image"])

    def export(self, out_dir: str | Path, overwrite: bool = False) -> Path:
        """Write the fine-tuned encoder and head as ``model.safetensors`` + ``config.json``.

        As every export (:func:`~torchgeo_moemae.export.save_export`): an earlier export in
        ``out_dir`` is kept unless ``overwrite``, files replace it only once all are complete, and
        ``config.json`` records the weights fine-tuning started from, not the authors' release,
        and the hour rule of the hours the model was fine-tuned on (a re-loaded export reads
        samples as it did).
        Load it back with ``timm.create_model(architecture, num_classes=C, pretrained=True,
        pretrained_cfg_overlay=dict(file=..., num_classes=C))``, ``file`` naming the folder (a
        MoE-MAE encoder) or the ``model.safetensors`` in it (any timm model).
        """
        model_args: dict[str, Any] = {
            "num_classes": self.hparams["num_classes"],
            "global_pool": self.hparams["global_pool"],
        }
        if isinstance(self.model, MoEMAEEncoder):
            model_args["hour_encoding"] = self.trained_hour_encoding
        return save_export(
            self.model,
            out_dir,
            self.initial_weights,
            model_args=model_args,
            overwrite=overwrite,
            time_source=self.time_source or self.sample_time_source,
        )
