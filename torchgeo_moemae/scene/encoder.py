"""The encoder for scene embedding: given weights, the cached published weights, or a random
initialisation asked for explicitly."""

from __future__ import annotations

from pathlib import Path

from ..errors import PretrainedWeightsError
from ..models import MoEMAEEncoder, Provenance, create_encoder, load_weights
from ..models.checkpoint import HF_HUB_FILENAME, HF_HUB_ID, RANDOM_INIT, Checkpoint

__all__ = ["load_scene_encoder"]


def load_scene_encoder(
    model: str | None = None, weights: str | Path | None = None, random_init: bool = False
) -> tuple[MoEMAEEncoder, Provenance]:
    """A MoE-MAE encoder and where its weights came from (``str()`` of it describes them).

    Args:
        model: ``"S"``/``"XS"``/``"XXS"`` or a ``moemae_landsat*`` timm name; None: the
            architecture the weights record (an export folder), else S.
        weights: an exported folder, ``.safetensors`` or the authors' ``.pth``. None: the published
            S weights if they are already in the Hugging Face cache (never downloaded here).
        random_init: without ``weights``, use a random initialisation (its embeddings carry no
            learned meaning: a baseline or a demo) instead of the published weights.

    Raises:
        PretrainedWeightsError: without ``weights`` and ``random_init`` when the published weights
            are not in the cache (or ``model`` has none): an embedding map of a random encoder
            would look like a real one.
    """
    if weights is not None and random_init:
        raise ValueError("weights and random_init exclude each other")
    source: str | Path | None = weights
    if (
        source is None
        and not random_init
        and (model or "S").upper() in ("S", "MOEMAE_LANDSAT", "MOEMAE_LANDSAT.BEN_LS")
    ):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(HF_HUB_ID, HF_HUB_FILENAME)
        source = cached if isinstance(cached, str) else None
    if source is None and not random_init:
        raise PretrainedWeightsError(
            f"no weights for {model or 'S'!r}: pass --weights (an exported folder, .safetensors or "
            f"the authors' .pth), fetch the published ones with `hf download {HF_HUB_ID} "
            f"{HF_HUB_FILENAME}`, or pass --random-init to embed with random weights on purpose"
        )
    checkpoint: Checkpoint | None = None if source is None else load_weights(source)
    encoder = create_encoder(model, checkpoint)
    if not isinstance(encoder, MoEMAEEncoder):
        raise ValueError(f"model must be a MoE-MAE encoder (S, XS, XXS), got {model!r}")
    return encoder, RANDOM_INIT if checkpoint is None else checkpoint.provenance
