"""``moemae analyze``: the sparsity table from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchgeo_moemae.cli import main


def test_cli_sparsity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "sparsity", "--out", str(tmp_path / "sp")]) == 0
    assert "899.0" in capsys.readouterr().out
    assert (tmp_path / "sp.json").is_file()
