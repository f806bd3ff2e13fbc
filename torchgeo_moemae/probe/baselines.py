"""TorchGeo's SSL4EO-L models as Landsat-Bench evaluates them: their weights from a local file or
torch's hub cache, and Landsat-Bench's preprocessing of each dataset.

Landsat-Bench (the benchmark of BigEarthNet-L and EuroSAT-L) feeds these models:

1. each patch, clipped at 0 and resized (bilinear, antialiased) to :data:`LANDSAT_BENCH_PATCH`:
   BigEarthNet-L's native 41-45 px patches to 40 px, EuroSAT-L's 64 px patches to 22 px;
2. the batch, mapped linearly from surface reflectance 0..0.3 (DN 7,272.7..18,181.8) to 0..1 (the
   8-bit scaling SSL4EO-L was trained with, divided by 255), then resized to 224 px (kornia's
   ``Resize``, bilinear with aligned corners);
3. the model's pooled features: global average for ResNets, the CLS token for ViTs.

Weights: an entry is read from its TorchGeo URL through torch's hub cache
(``$TORCH_HOME/hub/checkpoints/<the URL's file name>``), downloaded there if missing, or from a
local file named with ``ENTRY=path`` (``ResNet18_Weights.LANDSAT_OLI_SR_MOCO=resnet18.pth``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse

import kornia.augmentation as K
import torch
import torchvision.transforms.functional as TF
from torch import Tensor, nn

from ..errors import PretrainedWeightsError
from ..utils import file_sha256

__all__ = [
    "INPUT_SIZE",
    "LANDSAT_BENCH_PATCH",
    "SSL4EO_L_DN_RANGE",
    "LandsatBenchResize",
    "TorchGeoWeights",
    "recognise_torchgeo_file",
    "ssl4eo_l_transform",
]

#: Landsat Collection 2 Level-2 surface-reflectance scale and offset: reflectance = DN * s + o.
_SR_SCALE, _SR_OFFSET = 2.75e-5, -0.2
#: DN of reflectance 0 and 0.3, the range SSL4EO-L maps to 0..255.
SSL4EO_L_DN_RANGE = ((0.0 - _SR_OFFSET) / _SR_SCALE, (0.3 - _SR_OFFSET) / _SR_SCALE)
#: Input size of TorchGeo's SSL4EO-L models.
INPUT_SIZE = 224
#: The patch size Landsat-Bench resizes each dataset's images to before the batch transform.
LANDSAT_BENCH_PATCH = {"bigearthnet_ls": 40, "eurosat_ls": 22}


class LandsatBenchResize:
    """Landsat-Bench's per-sample step: the image clipped at 0 and resized to ``size x size``
    (bilinear, antialiased, as ``torchvision.transforms.functional.resize``)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """The sample with its ``(C, H, W)`` image resized."""
        image = TF.resize(sample["image"].clip(min=0), [self.size, self.size], antialias=True)
        return {**sample, "image": image}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.size})"


class _OnImage(nn.Module):
    """Apply an image transform to a batch dict's ``image``."""

    def __init__(self, transform: nn.Module) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {**batch, "image": self.transform(batch["image"].float())}


def ssl4eo_l_transform() -> nn.Module:
    """Landsat-Bench's batch step for SSL4EO-L models: DN -> 0..1 over reflectance 0..0.3, then
    resized to :data:`INPUT_SIZE` (see the module docstring); takes and returns batch dicts."""
    low, high = SSL4EO_L_DN_RANGE
    return _OnImage(
        K.ImageSequential(
            K.Normalize(mean=low, std=1.0),
            K.Normalize(mean=0.0, std=high - low),
            K.Resize(INPUT_SIZE),
            keepdim=True,
        )
    )


def _entries() -> Iterator[Any]:
    """Every weights entry TorchGeo has."""
    from torchgeo.models import get_model_weights, list_models

    for name in list_models():
        try:
            yield from get_model_weights(name)
        except (KeyError, ValueError):  # a builder without an enum
            continue


def _url_file_name(url: str) -> str:
    return Path(urlparse(url).path).name


def recognise_torchgeo_file(path: str | Path) -> str | None:
    """The TorchGeo weights entry whose download ``path`` is (by its file name), else None."""
    name = Path(path).name
    return next((str(e) for e in _entries() if _url_file_name(str(e.url)) == name), None)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class TorchGeoWeights:
    """A TorchGeo weights entry and the local file its weights are read from."""

    #: the entry, e.g. ``ResNet18_Weights.LANDSAT_OLI_SR_MOCO``
    entry: Any
    #: the weights file (torch's hub cache, or the file named with ``ENTRY=path``)
    file: Path

    @classmethod
    def resolve(cls, name: str) -> TorchGeoWeights:
        """``ENTRY`` or ``ENTRY=path``: the entry and its file (downloaded to torch's hub cache if
        it is not there and the network may be used).

        Raises:
            ValueError: not a TorchGeo weights entry.
            FileNotFoundError: ``path`` does not exist.
            PretrainedWeightsError: (one line naming the entry and the fixes) the file is not in
                the cache and cannot be downloaded (``HF_HUB_OFFLINE``, no network).
        """
        from torchgeo.models import get_weight

        entry_name, _, local = name.partition("=")
        entry = get_weight(entry_name)
        if local:
            file = Path(local).expanduser()
            if not file.is_file():
                raise FileNotFoundError(f"{entry_name}={local}: no such file")
            return cls(entry, file)
        url = str(entry.url)
        if urlparse(url).scheme in ("", "file") and Path(urlparse(url).path).is_file():
            return cls(entry, Path(urlparse(url).path))  # an entry pointing at a local file
        cached = Path(torch.hub.get_dir()) / "checkpoints" / _url_file_name(url)
        if not cached.is_file():
            fix = (
                f"download {url} to {cached}, or pass --encoder {entry_name}=/path/to/{cached.name}"
            )
            if _offline():
                raise PretrainedWeightsError(
                    f"TorchGeo weights {entry_name}: not in torch's hub cache and HF_HUB_OFFLINE "
                    f"is set: {fix}"
                )
            cached.parent.mkdir(parents=True, exist_ok=True)
            try:
                torch.hub.download_url_to_file(url, str(cached), progress=True)
            except (URLError, OSError) as err:
                raise PretrainedWeightsError(
                    f"TorchGeo weights {entry_name}: cannot download {url} ({err}): {fix}"
                ) from None
        return cls(entry, cached)

    @property
    def name(self) -> str:
        """The entry's full name."""
        return str(self.entry)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the weights file."""
        return file_sha256(self.file)

    @property
    def pooled(self) -> str:
        """What the model's pooled features are: a ResNet's global average, a ViT's CLS token."""
        return (
            "Global average" if str(self.entry.meta["model"]).startswith("resnet") else "CLS token"
        )

    @property
    def meta(self) -> dict[str, Any]:
        """The entry's metadata (what TorchGeo's builders read besides the state dict)."""
        return dict(self.entry.meta)

    def get_state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The weights, read from :attr:`file` (an entry's ``get_state_dict`` reads its URL)."""
        state: dict[str, Any] = torch.load(self.file, map_location="cpu", weights_only=True)
        return state

    def build(self) -> nn.Module:
        """TorchGeo's model with these weights, ``num_classes=0`` (pooled features): TorchGeo's
        own builder, given this object in place of the entry so it reads :attr:`file`."""
        from torchgeo.models import get_model

        return get_model(self.entry.meta["model"], weights=self, num_classes=0)
