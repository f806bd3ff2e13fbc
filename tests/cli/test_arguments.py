"""The argument groups every command shares mean the same everywhere: weights are never missing
silently, and the device defaults to CUDA when present."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from torchgeo_moemae.cli import main
from torchgeo_moemae.utils import default_device

NO_WEIGHTS = "error: no --weights: pass --weights"


def _weights_commands(tmp_path: Path) -> dict[str, list[str]]:
    """Every command that builds a model from ``--weights``, with the other arguments it needs."""
    data = ["--root", str(tmp_path)]
    return {
        "embed": ["embed", *data, "--out", str(tmp_path / "emb")],
        "analyze reconstruction": [
            "analyze",
            "reconstruction",
            *data,
            "--out",
            str(tmp_path / "r.png"),
        ],
        "analyze experts": ["analyze", "experts", *data, "--out", str(tmp_path / "experts")],
        "embed-scene": ["embed-scene", str(tmp_path), "--out", str(tmp_path / "maps")],
    }


WEIGHTS_COMMANDS = ["embed", "analyze reconstruction", "analyze experts", "embed-scene"]


@pytest.mark.parametrize("command", WEIGHTS_COMMANDS)
def test_missing_weights_are_refused_the_same_way(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _weights_commands(tmp_path)[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"moemae {argv[0]}: {NO_WEIGHTS}") and "--random-init" in err, err
    assert main([*argv, "--random-init", "--weights", "x.pth"]) == 2
    assert "--random-init and --weights exclude each other" in capsys.readouterr().err


@pytest.mark.parametrize("command", WEIGHTS_COMMANDS)
def test_torchgeo_entries_are_not_moemae_weights(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        *_weights_commands(tmp_path)[command],
        "--weights",
        "ResNet18_Weights.LANDSAT_OLI_SR_MOCO",
    ]
    assert main(argv) == 2
    assert "a TorchGeo weights entry, not MoE-MAE weights" in capsys.readouterr().err


def test_default_device_is_cuda_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device(None) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device(None) == torch.device("cpu")


def _capture(monkeypatch: pytest.MonkeyPatch, target: str, result: Any) -> dict[str, Any]:
    """Replace ``target`` by a function that records its keyword arguments and returns ``result``."""
    seen: dict[str, Any] = {}

    def record(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return result

    monkeypatch.setattr(target, record)
    return seen


def test_every_device_option_defaults_to_cuda_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``embed``, ``embed-scene``, ``evaluate`` and ``probe`` leave ``--device`` unset, and what
    they call resolves it with :func:`default_device`: CUDA on a machine that has it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    devices = {}

    seen = _capture(monkeypatch, "torchgeo_moemae.probe.embed.extract_embeddings", {})
    argv = ["embed", "--model", "XXS", "--random-init", "--root", str(tmp_path)]
    assert main([*argv, "--out", str(tmp_path / "emb"), "--split", "test"]) == 0
    devices["embed"] = seen["device"]

    seen = _capture(monkeypatch, "torchgeo_moemae.scene.embed_scenes", None)
    monkeypatch.setattr("torchgeo_moemae.scene.SceneError", RuntimeError)
    argv = ["embed-scene", str(tmp_path), "--model", "XXS", "--random-init"]
    with pytest.raises(AttributeError):  # the recorded call returns no summary to report
        main([*argv, "--out", str(tmp_path / "maps"), "--debug"])
    devices["embed-scene"] = seen["device"]

    seen = _capture(monkeypatch, "torchgeo_moemae.probe.evaluate.evaluate", [])
    monkeypatch.setattr(  # the published weights are not read: nothing is evaluated here
        "torchgeo_moemae.probe.evaluate.resolve_encoder", lambda *a, **k: SimpleNamespace(name="x")
    )
    argv = ["evaluate", "--bigearthnet-root", str(tmp_path), "--out", str(tmp_path / "ev")]
    assert main(argv) == 0
    devices["evaluate"] = seen["device"]

    for split in ("train", "test"):
        folder = tmp_path / "emb" / f"{split}_cls"
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"complete": True}))
    seen = _capture(monkeypatch, "torchgeo_moemae.probe.api.probe_embedding_dirs", ({}, {}))
    assert main(["probe", "--embeddings", str(tmp_path / "emb"), "--method", "torch"]) == 0
    devices["probe"] = seen["device"]

    assert {name: default_device(d) for name, d in devices.items()} == dict.fromkeys(
        devices, torch.device("cuda")
    )
