"""The public names of ``torchgeo_moemae.models`` follow ``torchgeo.models``."""

from __future__ import annotations

import torchgeo_moemae.models as models


def test_models_exports_torchgeo_shaped_names() -> None:
    assert sorted(models.__all__) == sorted(
        [
            # model classes
            "MoEMAE",
            "MoEMAEEncoder",
            "NoisyTopKGate",
            "SwiGLUMoE",
            # weights entries
            "MoEMAEWeightsEnum",
            "MoEMAELandsat_Weights",
            "MoEMAELandsatXS_Weights",
            "MoEMAELandsatXXS_Weights",
            # builders (also registered in timm)
            "moemae_landsat",
            "moemae_landsat_xs",
            "moemae_landsat_xxs",
            # TorchGeo's weights API
            "get_model",
            "get_model_weights",
            "get_weight",
            "list_models",
            # any size or weights -> a model; weights read once, with their provenance
            "create_encoder",
            "create_mae",
            "load_weights",
            "Checkpoint",
            "Provenance",
        ]
    )
    for name in models.__all__:
        assert getattr(models, name) is not None


def test_builders_are_the_registered_timm_models() -> None:
    import timm

    encoder = models.moemae_landsat_xxs()
    assert type(encoder) is type(timm.create_model("moemae_landsat_xxs"))
    assert encoder.pretrained_cfg["architecture"] == "moemae_landsat_xxs"
