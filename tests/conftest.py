"""The suite's shared fixtures: offline hub, seeded single-threaded torch, the optional real data in
../shared, fake Landsat-Bench datasets and a quiet CPU Lightning Trainer."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# Tests never reach the Hugging Face Hub: loading code is exercised against local files.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
#: the real 200-patch BigEarthNet-L sample (project workspace only)
REAL_SAMPLE = SHARED / "data" / "bigearthnet-ls-sample"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``<repo>/../shared``; skips the test with a clear reason when it is absent (e.g. a user's clone)."""
    if not SHARED.is_dir():
        pytest.skip(
            f"reference data not available: {SHARED} is absent (it exists only in the project workspace)"
        )
    return SHARED


@pytest.fixture(scope="session")
def reference(shared_dir: Path) -> dict[str, Any]:
    """The authors' reference vectors (``../shared/reference/golden_S_40px.npz``) with POSIX ``time`` and the checkpoint path."""
    import numpy as np

    golden = dict(np.load(shared_dir / "reference" / "golden_S_40px.npz"))
    # The vectors store week-of-year and hour; any timestamp in that ISO week and hour encodes the same.
    times = [
        dt.datetime.fromisocalendar(2018, int(w), 3).replace(hour=int(h), tzinfo=dt.UTC).timestamp()
        for w, h in zip(golden["week_of_year"], golden["hour_of_day"], strict=True)
    ]
    golden["time"] = np.array(times, dtype=np.float64)
    golden["checkpoint"] = shared_dir / "reference" / "upstream_format_checkpoint_S.pth"
    return golden


@pytest.fixture(autouse=True)
def _seed_and_one_thread() -> Iterator[None]:
    """Seed torch and run single-threaded: two OpenMP threads on a busy 2-core CI box can be
    several times slower than one. Restores the thread count afterwards."""
    import torch

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def offline_empty_hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``HF_HUB_OFFLINE`` with an empty Hugging Face cache: every Hub file is unavailable."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))


# --------------------------------------------------------------------------- Lightning
@pytest.fixture(scope="session")
def make_trainer() -> Callable[..., Any]:
    """Factory ``make_trainer(root, **kwargs)`` of a quiet single-device CPU ``Trainer`` (no
    logger, checkpoints, bars, summary or validation) writing under ``root``; ``kwargs`` override
    the defaults."""
    from lightning.pytorch import Trainer

    def make(root: Path, **kwargs: Any) -> Trainer:
        defaults: dict[str, Any] = dict(
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=root,
            limit_val_batches=0,
        )
        return Trainer(**{**defaults, **kwargs})

    return make


# --------------------------------------------------------------------------- fake datasets
@pytest.fixture(scope="session")
def ben_data() -> ModuleType:
    """The BigEarthNet-L fake-data generator module (``tests/data/bigearthnet_ls/data.py``)."""
    from tests.data.bigearthnet_ls import data

    return data


@pytest.fixture(scope="session")
def eurosat_data() -> ModuleType:
    """The EuroSAT-L fake-data generator module (``tests/data/eurosat_ls/data.py``)."""
    from tests.data.eurosat_ls import data

    return data


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
    """The real 200-patch sample in the Landsat-Bench layout (links, no copies), every split CSV
    listing all 200 ids after the sample's own header row "0", the one without a label JSON
    included (to test that error; the sample helper leaves it out).
    """
    from torchgeo_moemae.datasets.layout import arrange_bigearthnet_sample

    if not (REAL_SAMPLE / "samples.csv").is_file():
        pytest.skip(f"real BigEarthNet-L sample not found at {REAL_SAMPLE} (../shared is absent)")
    listed = (REAL_SAMPLE / "samples.csv").read_text()
    assert listed.splitlines()[0].strip() == "0", "the sample's header row changed"
    root = arrange_bigearthnet_sample(REAL_SAMPLE, tmp_path / "real", fractions=None)
    for filename in ("bigearthnet-train.csv", "bigearthnet-val.csv", "bigearthnet-test.csv"):
        (root / filename).write_text(listed)
    return root


@pytest.fixture
def real_labelled_root(real_ben_root: Path) -> Path:
    """The real sample as the sample helper arranges it with ``fractions=None``: every split CSV
    lists the 199 patches that have a label JSON (the 200th's is missing on purpose)."""
    from torchgeo_moemae.datasets.layout import arrange_bigearthnet_sample

    return arrange_bigearthnet_sample(
        REAL_SAMPLE, real_ben_root.parent / "labelled", fractions=None
    )
