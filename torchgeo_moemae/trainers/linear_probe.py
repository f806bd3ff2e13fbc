"""Linear probing as a ``torchgeo fit`` task: frozen encoder, trainable linear head."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchvision.models._api import WeightsEnum

from ..bands import BANDS, PATCH_SIZE
from ..probe.featurizer import Featurizer, check_pool
from ..vocabulary import DEFAULT_POOL, Pool
from .classification import ClassificationBase

__all__ = ["LinearProbeTask"]


class LinearProbeTask(ClassificationBase):
    """Train ``Linear(D, num_classes)`` on frozen encoder embeddings.

    The encoder has ``requires_grad=False`` and stays in eval mode even while the task trains
    (deterministic MoE routing, no dropout), runs without autograd, and is excluded from the
    optimiser; only the head learns. Embeddings from :class:`~torchgeo_moemae.probe.Featurizer`
    (default: the paper's protocol, tokens before the final LayerNorm): ``"cls"`` (CLS token),
    ``"avg"`` (mean of all tokens), ``"all"`` (all tokens flattened). ``lat``/``lon``/``time`` batch
    keys are passed to our encoder.

    Loss: BCE-with-logits (``multilabel``, multi-hot targets) or cross-entropy (``multiclass``),
    plus optional L2 on the head weights (``l2``; the paper's sklearn C=1 corresponds to
    ``l2 = 1 / N_train``). Metrics: the paper's (see :mod:`torchgeo_moemae.probe.metrics`), logged as
    ``{train,val,test}_<metric>``; ``val_loss`` is monitored.
    """

    encoder: Any

    def __init__(
        self,
        model: str | None = None,
        weights: WeightsEnum | str | None = None,
        pool: Pool = DEFAULT_POOL,
        prenorm: bool | None = None,
        num_classes: int = 19,
        task: Literal["multilabel", "multiclass"] = "multilabel",
        lr: float = 1e-3,
        patience: int = 10,
        l2: float = 0.0,
    ) -> None:
        """Initialize a new LinearProbeTask.

        Args:
            model: ``"S"``/``"XS"``/``"XXS"``, ``moemae_landsat*`` or any timm model name; None:
                the architecture the weights record, else ``moemae_landsat``.
            weights: encoder weights: a weights entry or its name (as TorchGeo's tasks accept), an
                exported folder, ``.safetensors`` or the authors' ``.pth``; None = random
                initialisation (a baseline). Not saved in the hyper-parameters.
            pool: embedding fed to the head.
            prenorm: tokens before the final LayerNorm; None (default): the paper's protocol (see
                :class:`~torchgeo_moemae.probe.Featurizer`).
            num_classes: outputs (19 for BigEarthNet-L, 10 for EuroSAT-L).
            task: ``"multilabel"`` or ``"multiclass"``.
            lr: AdamW learning rate of the head.
            patience: ReduceLROnPlateau patience (epochs).
            l2: L2 penalty ``l2 / 2 * ||W||^2`` added to the mean loss.
        """
        check_pool(pool)
        self.weights = weights
        super().__init__()

    # ------------------------------------------------------------------ setup
    def configure_models(self) -> None:
        """Frozen encoder + linear head sized from a dummy forward pass."""
        self.encoder = self.create_encoder(self.weights)
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        self.featurizer = Featurizer(self.encoder, self.hparams["prenorm"])
        # the featurizer resizes to fixed-size models' input, so a Landsat patch fits all
        dim = self._embed({"image": torch.zeros(1, len(BANDS), PATCH_SIZE, PATCH_SIZE)}).shape[1]
        self.head = nn.Linear(dim, self.hparams["num_classes"])

    def configure_optimizers(self) -> Any:
        """AdamW on the head only, ReduceLROnPlateau on ``val_loss``."""
        optimizer = torch.optim.AdamW(self.head.parameters(), lr=self.hparams["lr"], weight_decay=0)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, patience=self.hparams["patience"]
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor},
        }

    def train(self, mode: bool = True) -> LinearProbeTask:
        """Set the mode of the head; the encoder always stays in eval mode."""
        super().train(mode)
        self.encoder.eval()
        return self

    # ------------------------------------------------------------------ forward
    @torch.no_grad()
    def _embed(self, batch: dict[str, Tensor]) -> Tensor:
        return self.featurizer(batch, self.hparams["pool"]).float()

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits ``(B, num_classes)`` for a batch dict."""
        return self.head(self._embed(batch))

    def penalty(self) -> Tensor | float:
        """``l2 / 2 * ||W||^2`` of the head."""
        if self.hparams["l2"] > 0:
            return 0.5 * self.hparams["l2"] * self.head.weight.pow(2).sum()
        return 0.0
