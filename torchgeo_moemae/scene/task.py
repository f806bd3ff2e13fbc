"""The model side of scene embedding: a TorchGeo task whose ``predict_step`` is the featurizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchgeo.trainers import BaseTask

from ..models import MoEMAEEncoder, Provenance
from ..outputs import provenance_record
from ..probe.featurizer import DEFAULT_POOL, Featurizer
from ..probe.featurizer import POOLS as FEATURIZER_POOLS
from .encoder import load_scene_encoder

__all__ = ["POOLS", "PRECISIONS", "SceneEmbeddingTask"]

#: Pools of a scene map: the featurizer's with one value per embedding dimension (not ``"all"``).
POOLS = tuple(p for p in FEATURIZER_POOLS if p != "all")
#: ``precision`` values: ``"auto"`` (bf16 autocast on CUDA, fp32 elsewhere), ``"bf16"``, ``"32"``
PRECISIONS = ("auto", "bf16", "32")


class SceneEmbeddingTask(BaseTask):
    """Embed batches of windows with a frozen MoE-MAE encoder (``Trainer.predict`` only).

    ``predict_step`` returns the :class:`~torchgeo_moemae.probe.Featurizer` embedding of each
    window, ``(B, C)`` float32 (the tokens before the final LayerNorm, pooled), as ``moemae embed``
    computes it for a dataset sample. Batches come from
    :class:`~torchgeo_moemae.scene.SceneDataModule` (z-scored DN with ``lat``/``lon``/``time``).

    Args:
        model: ``"S"``/``"XS"``/``"XXS"`` or a ``moemae_landsat*`` timm name (None: what the
            weights record, else S).
        weights: an exported folder, ``.safetensors`` or the authors' ``.pth`` (None: the published
            S weights if already in the Hugging Face cache).
        random_init: without ``weights``, a random initialisation on purpose (a demo or baseline).
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
        if pool not in POOLS:
            raise ValueError(
                f"pool must be one of {POOLS} for a scene map (one band per embedding dimension), "
                f"got {pool!r}"
            )
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self._given = (encoder, provenance)
        super().__init__()

    def configure_models(self) -> None:
        """Load the encoder (or take the one given)."""
        encoder, provenance = self._given
        del self._given
        if encoder is None:
            encoder, provenance = load_scene_encoder(
                self.hparams["model"], self.hparams["weights"], self.hparams["random_init"]
            )
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
