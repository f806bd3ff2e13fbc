"""benchmarks/gpu_check.sh --quick runs on a CPU and records every field the GPU run records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_quick_on_cpu(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["mode"] == "quick" and result["env"]["device"] == "cpu"
    assert result["errors"] == {}
    rows = [(r["batch"], r["variant"]) for r in result["train"]]
    assert rows == [(2, "eager"), (2, "captured"), (4, "eager"), (4, "captured")]
    for row in result["train"]:
        assert row["steps_per_s"] > 0 and row["images_per_s"] > 0 and row["peak_memory_mib"] > 0
        assert row["first_step_s"] > 0 and row["kernels_per_step"] > 0
        assert row["precision"] == "32-true"
    # without CUDA the "captured" step runs its logic (buffers, guard, tensor lr) without a graph
    assert all(not r["graph_captured"] for r in result["train"] if r["variant"] == "captured")
    fidelity = result["fidelity"]
    assert fidelity["within_2_percent"] and not fidelity["captured"]
    assert result["inference"]["images_per_s"] > 0
    if result["authors"] is not None:  # the authors' code is reference material, maybe absent
        assert result["ratio_to_authors"] > 0
    # the packed loader's rate comes from bench_data.py, or its absence is explained
    assert result["packed_samples_per_s"] is None or result["packed_samples_per_s"] > 0
    assert result["packed_source"]
    projection = result["projection"]
    assert projection["steps"] == 2_107 * 500  # the last partial batch of each epoch is kept
    best = max(r["steps_per_s"] for r in result["train"] if r["batch"] == 2)
    assert projection["hours"] == projection["steps"] / best / 3600
    page = (tmp_path / "gpu_check.md").read_text()
    assert "| XXS | 4 | captured | 32-true |" in page and "Paper run" in page
