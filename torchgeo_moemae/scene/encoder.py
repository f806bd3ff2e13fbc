"""The encoder for scene embedding: given weights, the cached published weights, or a loud random init."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..models import RANDOM_INIT, MoEMAEEncoder, Provenance, create_encoder, load_weights
from ..models.checkpoint import HF_HUB_FILENAME, HF_HUB_ID, Checkpoint

__all__ = ["load_scene_encoder"]


def load_scene_encoder(
    model: str | None = None, weights: str | Path | None = None
) -> tuple[MoEMAEEncoder, Provenance]:
    """A MoE-MAE encoder and where its weights came from (``str()`` of it describes them).

    Args:
        model: ``"S"``/``"XS"``/``"XXS"`` or a ``moemae_landsat*`` timm name; None: the
            architecture the weights record (an export folder), else S.
        weights: an exported folder, ``.safetensors`` or the authors' ``.pth``. None: the published
            S weights if they are already in the Hugging Face cache (never downloaded here), else a
            random initialisation, with a warning (its embeddings carry no learned meaning).
    """
    source: str | Path | None = weights
    if source is None and (model or "S").upper() in (
        "S",
        "MOEMAE_LANDSAT",
        "MOEMAE_LANDSAT.BEN_LS",
    ):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(HF_HUB_ID, HF_HUB_FILENAME)
        source = cached if isinstance(cached, str) else None
    checkpoint: Checkpoint | None = None if source is None else load_weights(source)
    encoder = create_encoder(model, checkpoint)
    if not isinstance(encoder, MoEMAEEncoder):
        raise ValueError(f"model must be a MoE-MAE encoder (S, XS, XXS), got {model!r}")
    if checkpoint is None:
        warnings.warn(
            f"NO WEIGHTS: {model!r} is randomly initialised, so its embeddings carry no learned "
            f"meaning. Pass --weights (an exported folder or the authors' .pth), or pre-fill the "
            f"Hugging Face cache with `hf download {HF_HUB_ID} {HF_HUB_FILENAME}`.",
            UserWarning,
            stacklevel=2,
        )
        return encoder, RANDOM_INIT
    return encoder, checkpoint.provenance
