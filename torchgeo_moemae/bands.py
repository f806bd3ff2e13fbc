"""Band names, patch size and normalisation statistics of the Landsat-Bench datasets (Landsat 8/9
C2 L2 DN).

A leaf module (it imports nothing): the models, datasets and datamodules all read it, and importing
:mod:`torchgeo_moemae` must stay light.
"""

from typing import Final

#: The seven surface-reflectance bands the model consumes, in order.
BANDS: Final[tuple[str, ...]] = ("SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7")

#: Height and width (px) of the patches the MoE-MAE encoders take (30 m pixels: 1.2 km).
PATCH_SIZE: Final[int] = 40

#: Indices of red, green and blue (B4, B3, B2) within :data:`BANDS`.
RGB_INDICES: Final[tuple[int, int, int]] = (3, 2, 1)

#: Per-band mean and std of the BigEarthNet-L train split, in DN.
BIGEARTHNET_LS_MEAN: Final[tuple[float, ...]] = (
    9405.194,
    9649.677,
    10425.686,
    10444.589,
    16067.627,
    12699.184,
    10596.475,
)
BIGEARTHNET_LS_STD: Final[tuple[float, ...]] = (
    6016.344,
    6095.472,
    5839.462,
    6068.493,
    6271.440,
    4256.046,
    3130.776,
)

#: Per-band mean and std of EuroSAT-L (first seven bands), in DN.
EUROSAT_LS_MEAN: Final[tuple[float, ...]] = (
    8515.3,
    8829.6,
    9795.9,
    9891.7,
    15499.9,
    13146.1,
    11004.2,
)
EUROSAT_LS_STD: Final[tuple[float, ...]] = (
    3938.8,
    4057.7,
    4206.0,
    4434.4,
    6150.6,
    4923.0,
    4044.1,
)
