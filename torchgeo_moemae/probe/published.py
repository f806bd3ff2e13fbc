"""The paper's published linear-probe results (test splits), to compare measured values against.

* BigEarthNet-L (Table 5): the MoE-MAE S encoder, per embedding, micro precision/recall/F1, macro F1
  and micro/macro mAP.
* EuroSAT-L (Table 6): overall accuracy and macro precision/recall/F1.
* Both (Table 7, Landsat-Bench's baselines): one value per model, the probe on the model's pooled
  features (ResNet: global average, ViT: CLS token); EuroSAT-L: overall accuracy, BigEarthNet-L:
  micro mAP (the paper's MoE-MAE rows of that table equal Table 5's micro mAP).

Values are fractions in [0, 1] (the paper prints EuroSAT-L accuracies in percent). Keys are the
metric names of :func:`~torchgeo_moemae.probe.compute_metrics`.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BASELINE_NAMES", "PUBLISHED", "published_values"]

#: The weights name of the published MoE-MAE S encoder.
MOEMAE_WEIGHTS: Final = "MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS"

#: dataset -> encoder -> embedding -> {metric: value}. The MoE-MAE values hold for the published
#: weights (or the authors' checkpoint); TorchGeo's entries have one (pooled) embedding, ``"cls"``.
PUBLISHED: Final[dict[str, dict[str, dict[str, dict[str, float]]]]] = {
    "bigearthnet_ls": {
        MOEMAE_WEIGHTS: {
            "cls": {
                "precision_micro": 0.755,
                "recall_micro": 0.551,
                "f1_micro": 0.638,
                "f1_macro": 0.450,
                "map_micro": 0.748,
                "map_macro": 0.582,
            },
            "all": {
                "precision_micro": 0.737,
                "recall_micro": 0.615,
                "f1_micro": 0.670,
                "f1_macro": 0.540,
                "map_micro": 0.767,
                "map_macro": 0.600,
            },
            "avg": {
                "precision_micro": 0.763,
                "recall_micro": 0.514,
                "f1_micro": 0.614,
                "f1_macro": 0.419,
                "map_micro": 0.731,
                "map_macro": 0.557,
            },
        },
        "ResNet18_Weights.LANDSAT_OLI_SR_SIMCLR": {"cls": {"map_micro": 0.603}},
        "ResNet18_Weights.LANDSAT_OLI_SR_MOCO": {"cls": {"map_micro": 0.740}},
        "ResNet50_Weights.LANDSAT_OLI_SR_SIMCLR": {"cls": {"map_micro": 0.631}},
        "ResNet50_Weights.LANDSAT_OLI_SR_MOCO": {"cls": {"map_micro": 0.761}},
        "ViTSmall16_Weights.LANDSAT_OLI_SR_SIMCLR": {"cls": {"map_micro": 0.683}},
        "ViTSmall16_Weights.LANDSAT_OLI_SR_MOCO": {"cls": {"map_micro": 0.775}},
    },
    "eurosat_ls": {
        MOEMAE_WEIGHTS: {
            "cls": {
                "overall_accuracy": 0.784,
                "precision_macro": 0.781,
                "recall_macro": 0.779,
                "f1_macro": 0.777,
            },
            "all": {
                "overall_accuracy": 0.842,
                "precision_macro": 0.845,
                "recall_macro": 0.838,
                "f1_macro": 0.839,
            },
            "avg": {
                "overall_accuracy": 0.743,
                "precision_macro": 0.739,
                "recall_macro": 0.737,
                "f1_macro": 0.731,
            },
        },
        "ResNet18_Weights.LANDSAT_OLI_SR_SIMCLR": {"cls": {"overall_accuracy": 0.685}},
        "ResNet18_Weights.LANDSAT_OLI_SR_MOCO": {"cls": {"overall_accuracy": 0.828}},
        "ResNet50_Weights.LANDSAT_OLI_SR_SIMCLR": {"cls": {"overall_accuracy": 0.735}},
        "ResNet50_Weights.LANDSAT_OLI_SR_MOCO": {"cls": {"overall_accuracy": 0.825}},
        "ViTSmall16_Weights.LANDSAT_OLI_SR_SIMCLR": {"cls": {"overall_accuracy": 0.776}},
        "ViTSmall16_Weights.LANDSAT_OLI_SR_MOCO": {"cls": {"overall_accuracy": 0.888}},
    },
}

#: The paper's names of TorchGeo's SSL4EO-L entries (Table 7's rows).
BASELINE_NAMES: Final[dict[str, str]] = {
    "ResNet18_Weights.LANDSAT_OLI_SR_SIMCLR": "SSL4EO-L ResNet-18 SimCLR",
    "ResNet18_Weights.LANDSAT_OLI_SR_MOCO": "SSL4EO-L ResNet-18 MoCo v2",
    "ResNet50_Weights.LANDSAT_OLI_SR_SIMCLR": "SSL4EO-L ResNet-50 SimCLR",
    "ResNet50_Weights.LANDSAT_OLI_SR_MOCO": "SSL4EO-L ResNet-50 MoCo v2",
    "ViTSmall16_Weights.LANDSAT_OLI_SR_SIMCLR": "SSL4EO-L ViT-S/16 SimCLR",
    "ViTSmall16_Weights.LANDSAT_OLI_SR_MOCO": "SSL4EO-L ViT-S/16 MoCo v2",
}


def published_values(dataset: str, encoder: str | None, pool: str) -> dict[str, float]:
    """The paper's ``{metric: value}`` for an encoder (a weights name; None: no published values)."""
    if encoder is None:
        return {}
    return dict(PUBLISHED.get(dataset, {}).get(encoder, {}).get(pool, {}))
