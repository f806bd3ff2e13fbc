"""benchmarks/_common.py's kernel floor: what it counts and the ratio bound it derives."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def common() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_common", BENCHMARKS / "_common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_common", module)
    spec.loader.exec_module(module)
    return module


def test_dense_kernel_seconds_counts_matmuls_only(common: ModuleType) -> None:
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    x = torch.randn(4_000_000)

    def matmuls() -> None:
        for _ in range(5):
            a @ b

    def elementwise() -> None:
        for _ in range(5):
            x.exp()

    assert common.dense_kernel_seconds(matmuls) > 0
    assert common.dense_kernel_seconds(elementwise) == 0


def test_kernel_floor_bounds_the_ratio(
    common: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    a = torch.randn(128, 128)
    floor = common.kernel_floor(lambda: a @ a, authors_s=1.0)
    assert floor["dense_kernel_ms"] > 0
    assert floor["max_ratio_to_authors"] == pytest.approx(1e3 / floor["dense_kernel_ms"])
    assert "kernels alone" in capsys.readouterr().out
    assert common.kernel_floor(lambda: a @ a, authors_s=None)["max_ratio_to_authors"] is None
