"""Project-wide test settings: offline hub, deterministic torch, the optional real data in ../shared."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests never reach the Hugging Face Hub: loading code is exercised against local files.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``<repo>/../shared``; skips the test with a clear reason when it is absent (e.g. a user's clone)."""
    if not SHARED.is_dir():
        pytest.skip(
            f"reference data not available: {SHARED} is absent (it exists only in the project workspace)"
        )
    return SHARED


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
