"""The sparsity table of the S model equals the paper's Table 9."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from torchgeo_moemae.analysis import sparsity_report
from torchgeo_moemae.analysis.sparsity import PAPER_UNIQUE_EXPERT_PARAMS_K
from torchgeo_moemae.models import MoEMAEEncoder


def test_table9(tmp_path: Path) -> None:
    r = sparsity_report(MoEMAEEncoder())
    assert [row.num_experts for row in r.layers] == [3] * 5 + [4] * 5 + [5] * 5
    assert all(row.top_k == 2 for row in r.layers)
    assert [round(row.k_over_e, 2) for row in r.layers] == [0.67] * 5 + [0.5] * 5 + [0.4] * 5
    assert [round(row.unique_expert_params / 1e3, 1) for row in r.layers] == list(
        PAPER_UNIQUE_EXPERT_PARAMS_K
    )
    assert r.layers[0].unique_expert_params == 3 * (144 * 144 + 144)
    assert round(r.unique_expert_params / 1e3, 1) == 899.0
    assert r.encoder_params == 2_366_798
    assert r.expert_active_fraction == pytest.approx(0.52, abs=0.005)
    assert r.encoder_active_fraction == pytest.approx(0.81, abs=0.01)
    md = r.to_markdown()
    assert "899.0" in md and "52.1%" in md
    data = json.loads(r.save_json(tmp_path / "s.json").read_text())
    assert len(data["layers"]) == 15
