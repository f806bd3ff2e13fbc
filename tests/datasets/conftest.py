"""Fixtures: fake Landsat-Bench datasets written into tmp_path, and the real BigEarthNet-L sample."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from torchgeo_moemae.datasets.layout import arrange_bigearthnet_sample

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
#: the project's read-only material (absent on a user's fresh clone)
REAL_SAMPLE = REPO / ".." / "shared" / "data" / "bigearthnet-ls-sample"


def load_generator(dataset: str) -> ModuleType:
    """Import ``tests/data/<dataset>/data.py`` by path (``tests`` is not a package)."""
    path = TESTS / "data" / dataset / "data.py"
    spec = importlib.util.spec_from_file_location(f"fake_{dataset}_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing here should reach the Hugging Face hub; make sure nothing can.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def ben_data() -> ModuleType:
    """The BigEarthNet-L fake-data generator module."""
    return load_generator("bigearthnet_ls")


@pytest.fixture(scope="session")
def eurosat_data() -> ModuleType:
    """The EuroSAT-L fake-data generator module."""
    return load_generator("eurosat_ls")


@pytest.fixture
def ben_root(tmp_path: Path, ben_data: ModuleType) -> Path:
    """An extracted fake BigEarthNet-L (3 patches per split)."""
    root = tmp_path / "ben"
    ben_data.make_bigearthnet_ls(root, archive=False)
    return root


@pytest.fixture
def eurosat_root(tmp_path: Path, eurosat_data: ModuleType) -> Path:
    """An extracted fake EuroSAT-L (3 scenes per split)."""
    root = tmp_path / "eurosat"
    eurosat_data.make_eurosat_ls(root, archive=False)
    return root


@pytest.fixture
def patch_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the datasets' ``download_url`` by a copy from a local path (torchgeo's test style)."""

    def copy(url: str, root: str | Path, filename: str | None = None, **kwargs: Any) -> None:
        shutil.copy(url, Path(root) / (filename or Path(url).name))

    monkeypatch.setattr("torchgeo_moemae.datasets.base.download_url", copy)


@pytest.fixture
def real_ben_root(tmp_path: Path) -> Path:
    """The real 200-patch sample arranged in the Landsat-Bench layout (links, no copies).

    Every split CSV lists all 200 ids after the sample's own header row "0".
    """
    if not (REAL_SAMPLE / "samples.csv").is_file():
        pytest.skip(f"real BigEarthNet-L sample not found at {REAL_SAMPLE} (../shared is absent)")
    with open(REAL_SAMPLE / "samples.csv") as f:
        assert f.readline().strip() == "0", "the sample's header row changed"
    return arrange_bigearthnet_sample(REAL_SAMPLE, tmp_path / "real")


@pytest.fixture
def real_labelled_root(real_ben_root: Path) -> Path:
    """The real sample whose split CSVs list only the 199 patches that have a label JSON.

    A Landsat-Bench split lists labelled patches only; the sample's 200th id (its label JSON is
    missing on purpose) stays in ``real_ben_root`` to test that error.
    """
    labels = real_ben_root / "bigearthnet-l" / "labels"
    with open(real_ben_root / "bigearthnet-train.csv") as f:
        rows = [line.strip() for line in f]
    labelled = [pid for pid in rows[1:] if (labels / f"{pid}_labels_metadata.json").is_file()]
    for filename in ("bigearthnet-train.csv", "bigearthnet-val.csv", "bigearthnet-test.csv"):
        (real_ben_root / filename).write_text("\n".join([rows[0], *labelled]) + "\n")
    return real_ben_root
