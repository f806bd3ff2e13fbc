"""A checkpoint that records no training is named wherever it is read for evaluation.

The authors' format sample (``epoch`` 0, ``best_train_loss`` nan) and a Lightning checkpoint at
``global_step`` 0 hold initial weights: results from them look real and mean nothing.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import timm
import torch

from tests.data.golden.make_golden import authors_state_dict
from torchgeo_moemae.cli import main
from torchgeo_moemae.errors import UntrainedWeightsWarning
from torchgeo_moemae.export import export_encoder
from torchgeo_moemae.models import create_encoder, create_mae, get_model, load_weights


def _authors_pth(path: Path, best_train_loss: float) -> Path:
    """An XXS training checkpoint in the authors' format (``epoch``, ``model_state``,
    ``best_train_loss``), with the golden fixtures' weights."""
    state = authors_state_dict("XXS")
    torch.save({"epoch": 0, "model_state": state, "best_train_loss": best_train_loss}, path)
    return path


def _lightning_ckpt(path: Path, global_step: int) -> Path:
    """A Lightning checkpoint of the pre-training task, as Lightning writes its keys."""
    torch.manual_seed(0)
    state = {f"model.{k}": v for k, v in create_mae("XXS").state_dict().items()}
    checkpoint = {
        "pytorch-lightning_version": "2.6.0",
        "epoch": 0,
        "global_step": global_step,
        "state_dict": state,
        "hyper_parameters": {"model": "XXS", "mask_ratio": 0.75},
    }
    torch.save(checkpoint, path)
    return path


#: every way a weights file is loaded for evaluation (the commands' loader is create_encoder or
#: create_mae; export reads Lightning checkpoints, below)
LOADERS: dict[str, Callable[[Path], Any]] = {
    "load_weights": lambda file: load_weights(file),
    "create_encoder": lambda file: create_encoder("XXS", file),
    "create_mae": lambda file: create_mae("XXS", file),
    "get_model": lambda file: get_model("moemae_landsat_xxs", file),
    "timm pretrained=True": lambda file: timm.create_model(
        "moemae_landsat_xxs", pretrained=True, pretrained_cfg_overlay=dict(file=str(file))
    ),
}


@pytest.mark.parametrize("loader", LOADERS)
def test_untrained_authors_checkpoint_is_named(loader: str, tmp_path: Path) -> None:
    file = _authors_pth(tmp_path / "pretrained_XXS_best.pth", float("nan"))
    with pytest.warns(UntrainedWeightsWarning) as caught:
        LOADERS[loader](file)
    message = str(caught[0].message)
    assert message.startswith(f"{file}: untrained weights") and "best_train_loss nan" in message
    assert "\n" not in message


@pytest.mark.parametrize("loader", LOADERS)
def test_trained_authors_checkpoint_passes_quietly(loader: str, tmp_path: Path) -> None:
    file = _authors_pth(tmp_path / "pretrained_XXS_best.pth", 0.0123)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedWeightsWarning)
        LOADERS[loader](file)


def test_lightning_checkpoint_at_step_zero_is_named(tmp_path: Path) -> None:
    untrained = _lightning_ckpt(tmp_path / "untrained.ckpt", global_step=0)
    with pytest.warns(UntrainedWeightsWarning, match=re.escape(f"{untrained}: untrained")):
        export_encoder(untrained, tmp_path / "a")
    trained = _lightning_ckpt(tmp_path / "trained.ckpt", global_step=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedWeightsWarning)
        export_encoder(trained, tmp_path / "b")


def test_command_names_untrained_weights_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = _lightning_ckpt(tmp_path / "last.ckpt", global_step=0)
    assert main(["export", str(ckpt), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.strip()
    assert err == (
        f"moemae export: warning: {ckpt}: untrained weights, the checkpoint records no training "
        "(a Lightning checkpoint at global_step 0); results from it say nothing about pre-training"
    )
    # the authors' format sample: read twice by export (its kind, then its weights), named once
    pth = tmp_path / "pretrained_S_best.pth"
    state = authors_state_dict("S")
    torch.save({"epoch": 0, "model_state": state, "best_train_loss": float("nan")}, pth)
    assert main(["export", str(pth), "--out", str(tmp_path / "authors")]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"moemae export: warning: {pth}: untrained weights, the checkpoint records no training "
        "(epoch 0, best_train_loss nan); results from it say nothing about pre-training"
    ]
