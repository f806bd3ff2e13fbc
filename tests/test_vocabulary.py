"""The package's vocabulary: defined once, torch-free, and what a weights string names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from torchgeo_moemae import vocabulary
from torchgeo_moemae.bands import BIGEARTHNET_LS_MEAN, EUROSAT_LS_STD
from torchgeo_moemae.vocabulary import (
    DATASETS,
    EXPORT_FILES,
    dataset_info,
    embedding_folder,
    weights_kind,
)

PACKAGE = Path(vocabulary.__file__).parent


def test_importing_the_vocabulary_loads_no_torch() -> None:
    code = (
        "import sys, torchgeo_moemae.vocabulary\n"
        "print(','.join(m for m in ('torch', 'timm', 'numpy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


@pytest.mark.parametrize(
    ("weights", "kind"),
    [
        ("MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS", "entry"),
        ("MoEMAELandsatXXS_Weights.ANYTHING", "entry"),
        ("ResNet18_Weights.LANDSAT_OLI_SR_MOCO", "torchgeo"),
        ("ViTSmall16_Weights.LANDSAT_OLI_SR_MOCO", "torchgeo"),
        ("pretrained_S_best.pth", "path"),  # missing, but a weights file by its ending
        ("export/model.safetensors", "path"),
        ("last.ckpt", "path"),
        ("some/folder", "path"),
    ],
)
def test_weights_kind(weights: str, kind: str) -> None:
    assert weights_kind(weights) == kind


def test_an_existing_path_is_a_path_whatever_its_name(tmp_path: Path) -> None:
    folder = tmp_path / "ResNet18_Weights.LANDSAT_OLI_SR_MOCO"
    folder.mkdir()
    assert weights_kind(folder) == "path"


@pytest.mark.parametrize("weights", ["nope", "resnet18", "Weights.X"])
def test_weights_kind_refuses_what_names_nothing(weights: str) -> None:
    with pytest.raises(ValueError, match="neither an existing file or folder nor a weights name"):
        weights_kind(weights)


def test_datasets_by_name_and_by_class() -> None:
    assert dataset_info("bigearthnet_ls") is dataset_info("BigEarthNetLS")
    assert dataset_info("eurosat_ls").std == EUROSAT_LS_STD
    assert DATASETS["bigearthnet_ls"].mean == BIGEARTHNET_LS_MEAN
    assert DATASETS["bigearthnet_ls"].datamodule_class().__name__ == "BigEarthNetLSDataModule"
    assert DATASETS["eurosat_ls"].dataset_class().__name__ == "EuroSATLS"
    with pytest.raises(ValueError, match="bigearthnet_ls, eurosat_ls"):
        dataset_info("sen12ms")


def test_embedding_folder() -> None:
    assert embedding_folder("train", "cls") == "train_cls"


def _package_sources() -> dict[str, str]:
    return {
        str(p.relative_to(PACKAGE)): p.read_text()
        for p in PACKAGE.rglob("*.py")
        if p.name != "vocabulary.py"
    }


@pytest.mark.parametrize(
    "definition",
    [
        # a tuple of pool names, the embedding-folder rule, an export file name, a dataset statistic
        r"\(\s*\"(cls|avg|all)\",\s*\"(cls|avg|all)\"",
        r"f\"\{split\}_\{pool\}\"",
        *[re.escape(f'"{name}"') for name in EXPORT_FILES],
        re.escape(repr(BIGEARTHNET_LS_MEAN[0])),
        re.escape(repr(EUROSAT_LS_STD[0])),
    ],
)
def test_names_are_defined_once(definition: str) -> None:
    """Pools, folder rule and export names live in the vocabulary, statistics in bands.py."""
    found = [
        name
        for name, text in _package_sources().items()
        if re.search(definition, text) and name != "bands.py"
    ]
    assert found == [], f"{definition} is spelled out again in {found}"
