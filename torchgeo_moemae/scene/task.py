"""The model side of scene embedding: a TorchGeo task whose ``predict_step`` is the featurizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchgeo.trainers import BaseTask

from ..models import MoEMAEEncoder, Provenance
from ..models.factory import load_model
from ..outputs import provenance_record
from ..probe.featurizer import Featurizer
from ..vocabulary import DEFAULT_POOL, MAP_POOLS, PRECISIONS

__all__ = ["SceneEmbeddingTask"]


class SceneEmbeddingTask(BaseTask):
    """Embed batches of windows with a frozen MoE-MAE encoder (``Trainer.predict`` only).

    ``predict_step`` returns the :class:`~torchgeo_moemae.probe.Featurizer` embedding of each
    window, ``(B, C)`` float32 (the tokens before the final LayerNorm, pooled), as ``moemae embed``
    computes it for a dataset sample. Batches come from
    :class:`~torchgeo_moemae.scene.SceneDataModule` (z-scored DN with ``lat``/``lon``/``time``).

    Args:
        model: ``"S"``/``"XS"``/``"XXS"`` or a ``moemae_landsat*`` timm name (None: what the
            weights record, else S).
        weights: an exported folder, ``.safetensors``, the authors' ``.pth`` or a weights name
            (``MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS``: the published weights).
        random_init: without ``weights``, a random initialisation on purpose (a demo or baseline);
            without either, the task refuses to start (a map of a random encoder looks real).
        pool: ``"cls"`` or ``"avg"`` (one value per embedding dimension).
        precision: ``"auto"`` (default): bf16 autocast on CUDA, fp32 elsewhere; ``"bf16"``: bf16
            autocast on any device; ``"32"``: fp32.
        encoder: an encoder to use as it is instead of loading ``model``/``weights`` (Python API).
        provenance: where ``encoder``'s weights came from (recorded in the outputs).
    """

    ignore = ("encoder", "provenance")

    def __init__(
        self,
        model: str | None = None,
        weights: str | Path | None = None,
        random_init: bool = False,
        pool: str = DEFAULT_POOL,
        precision: str = "auto",
        encoder: MoEMAEEncoder | None = None,
        provenance: Provenance | dict[str, Any] | None = None,
    ) -> None:
        if pool not in MAP_POOLS:
            raise ValueError(
                f"pool must be one of {MAP_POOLS} for a scene map (one band per embedding dimension), "
                f"got {pool!r}"
            )
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if encoder is None and (weights is None) != random_init:
            raise ValueError(
                "give weights (an export folder, .safetensors, the authors' .pth or a weights "
                "name) or random_init=True for a randomly initialised encoder on purpose, not both"
                if random_init
                else "no weights: give weights (an export folder, .safetensors, the authors' .pth "
                "or a weights name), or random_init=True for a randomly initialised encoder on "
                "purpose"
            )
        self._given = (encoder, provenance)
        super().__init__()

    def configure_models(self) -> None:
        """Load the encoder (or take the one given)."""
        given, provenance = self._given
        del self._given
        encoder: Any = given
        if encoder is None:
            encoder, provenance = load_model(self.hparams["model"], self.hparams["weights"])
        if not isinstance(encoder, MoEMAEEncoder):
            raise ValueError(f"the encoder must be a MoE-MAE encoder, got {type(encoder).__name__}")
        self.model = encoder
        self.featurizer = Featurizer(encoder)
        self.provenance: dict[str, Any] = provenance_record(
            provenance if provenance is not None else {"description": "not recorded"},
            (getattr(encoder, "pretrained_cfg", None) or {}).get("architecture"),
        )

    @property
    def encoder(self) -> MoEMAEEncoder:
        """The encoder."""
        encoder: MoEMAEEncoder = self.model
        return encoder

    def predict_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """``(B, C)`` float32 embeddings of a batch of windows (``(0, C)`` for an empty one)."""
        if len(batch["image"]) == 0:
            return torch.zeros(0, self.encoder.num_features)
        precision = self.hparams["precision"]
        bf16 = precision == "bf16" or (precision == "auto" and self.device.type == "cuda")
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            return self.featurizer(batch, self.hparams["pool"]).float()
