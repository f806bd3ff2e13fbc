"""``moemae evaluate``: the paper's protocol end to end on fake Landsat-Bench data, offline.

The published weights come from a local file through the monkeypatched Hub download, TorchGeo's
ResNet-18 entry through its monkeypatched URL (TorchGeo's own test convention).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import timm
import torch
import torchvision
from torchgeo.models import ResNet18_Weights

from torchgeo_moemae.cli import main
from torchgeo_moemae.export import export_encoder
from torchgeo_moemae.models import checkpoint, create_mae
from torchgeo_moemae.probe import evaluate as evaluation
from torchgeo_moemae.probe.evaluate import EncoderSpec, evaluate, format_evaluation
from torchgeo_moemae.probe.published import MOEMAE_WEIGHTS, PUBLISHED

RESNET = "ResNet18_Weights.LANDSAT_OLI_SR_MOCO"


@pytest.fixture
def published_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The published weights entry served from a local file in the authors' layout."""
    file = tmp_path / "pretrained_S_best.pth"
    torch.save({"epoch": 1, "model_state": create_mae("S").state_dict()}, file)
    monkeypatch.setattr(checkpoint, "hf_hub_download", lambda repo_id, filename, **kw: str(file))
    return file


@pytest.fixture
def torchgeo_resnet18(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """TorchGeo's SSL4EO-L ResNet-18 entry with its download replaced by a local file."""
    file = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", in_chans=7, num_classes=0).state_dict(), file)
    monkeypatch.setattr(ResNet18_Weights.LANDSAT_OLI_SR_MOCO.value, "url", str(file))

    def load(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return torch.load(url, weights_only=True)

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", load)
    return file


@pytest.mark.usefixtures("published_weights", "torchgeo_resnet18")
def test_evaluate_command_both_datasets(
    ben_root: Path, eurosat_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["evaluate", "--encoder", MOEMAE_WEIGHTS, "--encoder", RESNET]
    argv += ["--bigearthnet-root", str(ben_root), "--eurosat-root", str(eurosat_root)]
    argv += ["--out", str(out), "--num-workers", "0", "--batch-size", "2", "--threads", "1"]
    assert main(argv) == 0
    printed, err = capsys.readouterr()
    # every probe shows its elapsed time (scikit-learn reports nothing for minutes)
    assert "sklearn probe (3 x " in err and "elapsed" in err
    table = (out / "evaluation.md").read_text()
    assert table.strip() in printed
    assert "### BigEarthNet-L" in table and "### EuroSAT-L" in table
    for value in ("0.767", "0.600", "0.842", "0.740", "0.828"):  # Tables 5, 6 and 7
        assert f"| {value} |" in table
    rows = json.loads((out / "evaluation.json").read_text())["results"]
    # 3 embeddings of ours, TorchGeo's pooled features, on 2 datasets
    assert [(r["dataset"], r["encoder"], r["pool"]) for r in rows] == [
        *[("bigearthnet_ls", MOEMAE_WEIGHTS, p) for p in ("cls", "all", "avg")],
        *[("eurosat_ls", MOEMAE_WEIGHTS, p) for p in ("cls", "all", "avg")],
        ("bigearthnet_ls", RESNET, "cls"),
        ("eurosat_ls", RESNET, "cls"),
    ]
    for r in rows:
        assert r["paper"] == PUBLISHED[r["dataset"]][r["encoder"]][r["pool"]]
        assert r["difference"] == {k: r["measured"][k] - v for k, v in r["paper"].items()}
        assert r["n_train"] == r["n_test"] == 3
    manifest = out / "cache" / RESNET / "eurosat_ls" / "train_cls" / "manifest.json"
    assert json.loads(manifest.read_text())["D"] == 512  # ResNet-18's pooled features
    # the results are kept unless --overwrite; refused before any work
    assert main(argv) == 2
    assert "evaluation.md already exist; pass --overwrite" in capsys.readouterr().err


@pytest.fixture
def xxs_export(tmp_path: Path) -> Path:
    return export_encoder(create_mae("XXS"), tmp_path / "export")


def _run(export: Path, root: Path, cache: Path, messages: list[str]) -> list[dict[str, Any]]:
    rows = evaluate(
        [str(export)],
        {"eurosat_ls": root},
        cache,
        batch_size=2,
        progress=False,
        log=messages.append,
    )
    return [r.as_dict() | {"seconds": 0} for r in rows]


def test_cache_is_reused_without_the_encoder(
    xxs_export: Path, eurosat_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, messages = tmp_path / "cache", list[str]()
    first = _run(xxs_export, eurosat_root, cache, messages)
    assert first[0]["paper"] == {}  # an XXS export: nothing published to compare with

    def no_encoder(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the encoder must not run on a cache hit")

    monkeypatch.setattr(EncoderSpec, "build", no_encoder)
    monkeypatch.setattr(evaluation, "extract_embeddings", no_encoder)
    messages.clear()
    assert _run(xxs_export, eurosat_root, cache, messages) == first
    assert sum("cached embeddings cls, all, avg reused" in m for m in messages) == 2, messages


def test_corrupted_cache_is_detected_and_recomputed(
    xxs_export: Path, eurosat_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, messages = tmp_path / "cache", list[str]()
    first = _run(xxs_export, eurosat_root, cache, messages)
    (features,) = cache.glob("*/eurosat_ls/test_avg/features.npy")
    clean = np.load(features)
    raw = bytearray(features.read_bytes())
    raw[-4:] = b"\x00\x00\xc0\x7f"  # the last value becomes NaN: same size, valid header
    features.write_bytes(bytes(raw))

    # an interrupted run: the train split of one embedding never got its checksums
    (sums,) = cache.glob("*/eurosat_ls/train_cls/checksums.json")
    sums.unlink()

    builds: list[str] = []
    original = EncoderSpec.build

    def counted(self: EncoderSpec) -> torch.nn.Module:
        builds.append(self.name)
        return original(self)

    monkeypatch.setattr(EncoderSpec, "build", counted)
    messages.clear()
    assert _run(xxs_export, eurosat_root, cache, messages) == first
    assert builds == [str(xxs_export)]
    assert any(f"{features} does not match its checksum" in m for m in messages)
    np.testing.assert_array_equal(np.load(features), clean)
    assert any(f"{sums.parent}: incomplete; recomputing" in m for m in messages)


def test_limit_takes_a_subset_cached_apart(
    xxs_export: Path, ben_root: Path, tmp_path: Path
) -> None:
    kwargs: dict[str, Any] = dict(batch_size=2, progress=False, log=lambda m: None)
    cache = tmp_path / "cache"
    full = evaluate([str(xxs_export)], {"bigearthnet_ls": ben_root}, cache, **kwargs)
    rows = evaluate(
        [str(xxs_export)], {"bigearthnet_ls": ben_root}, cache, limit=2, method="torch", **kwargs
    )
    assert [(r.n_train, r.n_test) for r in full] == [(3, 3)] * 3
    assert [(r.n_train, r.n_test) for r in rows] == [(2, 2)] * 3
    assert {p.name for p in next(cache.iterdir()).iterdir()} == {
        "bigearthnet_ls",
        "bigearthnet_ls-limit2",
    }


def test_table_lists_paper_values_beside_measured() -> None:
    row = evaluation.EvaluationRow(
        "eurosat_ls", MOEMAE_WEIGHTS, "MoE-MAE S", "all", {"overall_accuracy": 0.8}, {}, 4, 2, 0.0
    )
    row.paper = PUBLISHED["eurosat_ls"][MOEMAE_WEIGHTS]["all"]
    table = format_evaluation([row])
    assert "| MoE-MAE S | All tokens | OA | 0.800 | 0.842 | -0.042 |" in table
    assert "| MoE-MAE S | All tokens | F1 (macro) |  | 0.839 |  |" in table


def test_unknown_encoder_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", "--encoder", str(tmp_path / "nope"), "--eurosat-root", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("moemae evaluate: error: encoder") and "not found" in err
    assert len(err.splitlines()) == 1


def test_real_sample_reference_checkpoint(
    real_labelled_root: Path,
    reference: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The BigEarthNet-L part on the real 199-patch sample with the authors' checkpoint layout
    (every split lists the same patches here, so --allow-overlap)."""
    out = tmp_path / "out"
    argv = ["evaluate", "--encoder", str(reference["checkpoint"])]
    argv += ["--bigearthnet-root", str(real_labelled_root), "--out", str(out)]
    # all tokens (15,120 features) take minutes in the SAG probe on 2 cores: CLS and average here
    argv += ["--pool", "cls,avg", "--num-workers", "0", "--threads", "1", "--allow-overlap"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    print(printed)
    rows = json.loads((out / "evaluation.json").read_text())["results"]
    assert [r["pool"] for r in rows] == ["cls", "avg"]
    assert all(r["n_train"] == r["n_test"] == 199 for r in rows)
    assert all(0 <= r["measured"]["map_micro"] <= 1 for r in rows)
    assert "| 0.748 |" in printed  # the paper's CLS mAP (micro), beside the measured one
