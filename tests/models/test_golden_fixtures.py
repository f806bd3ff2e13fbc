"""The model reproduces the authors' code on the committed golden fixtures (tests/data/golden).

The fixtures were written by ``tests/data/golden/make_golden.py`` running the authors' reference
implementation (XXS and S, weights set by a seeded recipe, the authors' hour rule, gate noise off);
these tests need nothing outside the repository. So do the checks of how an authors'-format
checkpoint (made from the same weights) loads.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from tests.data.golden import authors_state_dict
from torchgeo_moemae.models import create_mae
from torchgeo_moemae.models.factory import load_into
from torchgeo_moemae.models.metadata import encode_metadata
from torchgeo_moemae.probe import Featurizer

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
ATOL = 1e-4  # float32 sums in another order


def _training_checkpoint(size: str) -> dict[str, Any]:
    """The authors' training checkpoint of the fixtures' weights, with the fields their training
    loop writes. It records a finished training (a finite ``best_train_loss``) as the published
    file does, so loading it must not warn of untrained weights; the record's values are
    placeholders (the weights come from the seeded recipe)."""
    return {"epoch": 499, "model_state": authors_state_dict(size), "best_train_loss": 0.0123}


@functools.cache
def _golden(size: str) -> dict:
    data = dict(np.load(GOLDEN / f"{size}.npz"))
    checkpoint = _training_checkpoint(size)
    # the authors' layout: the weights keep the authors' hour rule
    data["mae"] = create_mae(size, checkpoint).eval()
    return data


@pytest.fixture(params=["XXS", "S"])
def golden(request: pytest.FixtureRequest) -> dict:
    return _golden(request.param)


def _inputs(golden: dict) -> dict[str, torch.Tensor]:
    return {
        "image": torch.from_numpy(golden["images"]).float(),
        "lat": torch.from_numpy(golden["lat"]),
        "lon": torch.from_numpy(golden["lon"]),
        "time": torch.from_numpy(golden["time"]),
    }


def test_authors_hour_rule_and_metadata(golden: dict) -> None:
    batch = _inputs(golden)
    assert golden["mae"].encoder.hour_encoding == "authors"
    meta = encode_metadata(batch["lat"], batch["lon"], batch["time"], 2, hour_encoding="authors")
    for i, key in enumerate(("meta_week", "meta_hour", "meta_lat", "meta_lon")):
        np.testing.assert_allclose(meta[:, i].numpy(), golden[key], atol=1e-6)
    utc = encode_metadata(batch["lat"], batch["lon"], batch["time"], 2, hour_encoding="utc")
    assert not np.allclose(utc[:, 1].numpy(), golden["meta_hour"], atol=1e-3)  # 11 h is not 1 h


def test_tokens_match_before_and_after_the_norm(golden: dict) -> None:
    encoder = golden["mae"].encoder
    batch = _inputs(golden)
    expected = torch.from_numpy(golden["tokens_prenorm"])
    with torch.no_grad():
        prenorm = Featurizer(encoder).tokens(batch)
        normed = encoder.forward_features(
            batch["image"], lat=batch["lat"], lon=batch["lon"], time=batch["time"]
        )
        nan = torch.full((1,), float("nan"), dtype=torch.float64)
        no_meta = encoder.forward_features(batch["image"][:1], lat=nan, lon=nan, time=nan)
    torch.testing.assert_close(prenorm, expected, atol=ATOL, rtol=0)
    norm = encoder.norm
    expected_normed = F.layer_norm(expected, norm.normalized_shape, norm.weight, norm.bias, 1e-5)
    torch.testing.assert_close(normed, expected_normed, atol=ATOL, rtol=0)
    torch.testing.assert_close(
        no_meta, torch.from_numpy(golden["tokens_normed_no_metadata"]), atol=ATOL, rtol=0
    )


def test_mae_prediction_matches() -> None:
    """With a fixed masking (stored for XXS; the decoder is the same for every size)."""
    golden = _golden("XXS")
    batch = _inputs(golden)
    with torch.no_grad():
        out = golden["mae"](
            batch["image"],
            lat=batch["lat"],
            lon=batch["lon"],
            time=batch["time"],
            ids_keep=torch.from_numpy(golden["ids_keep"]),
            ids_restore=torch.from_numpy(golden["ids_restore"]),
        )
    torch.testing.assert_close(
        out.pred, torch.from_numpy(golden["decoder_pred"]), atol=ATOL, rtol=0
    )
    np.testing.assert_array_equal(out.mask.numpy(), golden["mask"])


@pytest.fixture(scope="module")
def authors_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An S training checkpoint in the authors' format (``{"epoch", "model_state",
    "best_train_loss"}``, shared expert weights repeated under every expert's keys), with the
    fixtures' weights."""
    path = tmp_path_factory.mktemp("authors") / "pretrained_S_best.pth"
    torch.save(_training_checkpoint("S"), path)
    return path


def test_upstream_checkpoint_into_wrong_size_is_rejected(authors_pth: Path) -> None:
    with pytest.raises(ValueError, match=r"does not match|wrong model size"):
        load_into(create_mae("XS"), authors_pth)


def test_unshared_expert_weights_are_rejected(authors_pth: Path) -> None:
    checkpoint = torch.load(authors_pth, map_location="cpu", weights_only=True)
    state = dict(checkpoint["model_state"])
    key = "encoder.layers.3.moe.experts.1.V.weight"
    state[key] = state[key] + 1
    with pytest.raises(ValueError, match=r"experts\.1\.V\.weight differs"):
        load_into(create_mae("S"), state)


def test_authors_weights_default_to_their_hour_rule(authors_pth: Path, tmp_path: Path) -> None:
    """The authors' weights were trained with the first digit of the hour; every way
    of loading them says so, models built here keep the true UTC hour, and an export records it."""
    from torchgeo_moemae.export import export_encoder
    from torchgeo_moemae.models import MoEMAE, create_encoder, get_model, load_weights

    assert load_weights(authors_pth).hour_encoding == "authors"
    encoder = timm.create_model(
        "moemae_landsat", pretrained=True, pretrained_cfg_overlay=dict(file=str(authors_pth))
    )
    assert encoder.hour_encoding == "authors"
    assert create_mae("S", authors_pth).encoder.hour_encoding == "authors"
    assert get_model("moemae_landsat", authors_pth).hour_encoding == "authors"
    assert create_encoder("S", authors_pth).hour_encoding == "authors"
    assert timm.create_model("moemae_landsat").hour_encoding == "utc"
    assert create_mae("S").encoder.hour_encoding == "utc"

    out = export_encoder(MoEMAE(encoder), tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert config["model_args"]["hour_encoding"] == "authors"
    for reloaded in (
        timm.create_model(f"local-dir:{out}", pretrained=True),
        timm.create_model(
            "moemae_landsat",
            pretrained=True,
            pretrained_cfg_overlay=dict(file=str(out / "model.safetensors")),
        ),
        create_mae("S", out / "mae.safetensors").encoder,
    ):
        assert reloaded.hour_encoding == "authors"


def test_moemae_export_converts_the_authors_pth_as_theirs(
    authors_pth: Path, tmp_path: Path
) -> None:
    """The authors' weights exported unchanged keep their tag, licence and paper (weights trained
    here never do), their hour rule, and load in timm to the same encoder."""
    from torchgeo_moemae.cli import main
    from torchgeo_moemae.export import AUTHORS_FIELDS

    out = tmp_path / "moemae-s"
    assert main(["export", str(authors_pth), "--out", str(out), "--no-mae"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert set(AUTHORS_FIELDS) & set(config["pretrained_cfg"])  # e.g. the licence and paper
    assert config["pretrained_cfg"]["license"] == "mit"
    assert config["model_args"]["hour_encoding"] == "authors"
    assert config["trained_with"]["weights"]["source"] == str(authors_pth)
    direct = timm.create_model(
        "moemae_landsat", pretrained=True, pretrained_cfg_overlay=dict(file=str(authors_pth))
    ).eval()
    exported = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    x = torch.randn(2, 7, 40, 40)
    torch.testing.assert_close(
        exported.forward_features(x), direct.forward_features(x), rtol=0, atol=0
    )
