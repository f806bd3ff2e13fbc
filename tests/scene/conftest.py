"""Fixtures of the scene-embedding tests: the committed real crop, synthetic products, encoders."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import timm
import torch

import torchgeo_moemae  # noqa: F401  (registers the timm models)
from torchgeo_moemae.models import MoEMAEEncoder

TESTS = Path(__file__).resolve().parents[1]
#: the public-domain Liverpool crop committed with the docs (see its PROVENANCE.md)
CROP = TESTS.parent / "docs" / "data" / "landsat8-l2-scene"


@pytest.fixture(scope="session")
def scene_data() -> ModuleType:
    """The fake-product generators of ``tests/data/landsat_scene/data.py``."""
    from tests.data.landsat_scene import data

    return data


@pytest.fixture
def product(tmp_path: Path, scene_data: ModuleType) -> Path:
    """A small synthetic product folder (fill block in the upper-left corner, QA_PIXEL)."""
    return scene_data.make_product(tmp_path / "in")


@pytest.fixture(scope="session")
def encoder_s() -> MoEMAEEncoder:
    """The S encoder (144 dims), random init with a fixed seed, eval mode."""
    torch.manual_seed(0)
    return timm.create_model("moemae_landsat").eval()


@pytest.fixture(scope="session")
def encoder_xxs() -> MoEMAEEncoder:
    """The XXS encoder (fast), random init with a fixed seed, eval mode."""
    torch.manual_seed(1)
    return timm.create_model("moemae_landsat_xxs").eval()


@pytest.fixture(scope="session")
def crop() -> Path:
    """The committed real crop folder."""
    return CROP


@pytest.fixture(scope="session")
def crop_mtl(crop: Path) -> Path:
    """The crop's MTL file."""
    return next(crop.glob("*_MTL.txt"))
