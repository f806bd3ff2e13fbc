"""torchgeo-moemae: the metadata-aware mixture-of-experts masked autoencoder for Landsat.

Importing the package registers the timm models ``moemae_landsat``, ``moemae_landsat_xs`` and
``moemae_landsat_xxs``.
"""

from . import models

__version__ = "0.1.0"

__all__ = ["__version__", "models"]
