"""``moemae evaluate`` feeds each encoder what its weights were trained with, and its cache keeps
only what those inputs produced (the paper's protocol: docs/user_guide/reproducing.rst)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kornia.augmentation as K
import pytest
import timm
import torch
import torchvision.transforms.functional as TF
from torch.utils.data import default_collate
from torchgeo.models import ResNet18_Weights

from tests.data.golden import authors_state_dict
from torchgeo_moemae.cli import main
from torchgeo_moemae.datasets import BigEarthNetLS, EuroSATLS
from torchgeo_moemae.datasets.metadata import authors_filename_time
from torchgeo_moemae.export import export_encoder
from torchgeo_moemae.models import create_mae
from torchgeo_moemae.probe.evaluate import evaluate, resolve_encoder

RESNET = "ResNet18_Weights.LANDSAT_OLI_SR_MOCO"
#: ids as the real sample writes them: zero-padded hours (10 h, 09 h) and one without the zero
IDS = (
    "S2A_MSIL2A_20170613T101031_0_0",
    "S2A_MSIL2A_20180525T94030_0_1",
    "S2A_MSIL2A_20171002T093351_0_2",
)
ACQUIRED = ("2017-06-13 10:10:31", "2018-05-25 09:40:30", "2017-10-02 09:33:51")


@pytest.fixture
def authors_pth(tmp_path: Path) -> Path:
    """An S checkpoint in the authors' training-checkpoint layout (it records no size: S)."""
    path = tmp_path / "pretrained_S_best.pth"
    model_state = authors_state_dict("S")
    torch.save({"epoch": 3, "model_state": model_state, "best_train_loss": 0.5}, path)
    return path


@pytest.fixture
def real_pattern_root(ben_root: Path, tmp_path: Path) -> Path:
    """The fake BigEarthNet-L with its test patches renamed as the real sample names them."""
    root = tmp_path / "pattern"
    shutil.copytree(ben_root, root, ignore=shutil.ignore_patterns("*.tar.gz"))
    base = root / "bigearthnet-l"
    lines = (root / "bigearthnet-test.csv").read_text().split()
    old = [line.split(",")[0] for line in lines if "_" in line]
    for before, after, acquired in zip(old, IDS, ACQUIRED, strict=True):
        (base / "images" / f"{before}.tif").rename(base / "images" / f"{after}.tif")
        label = json.loads((base / "labels" / f"{before}_labels_metadata.json").read_text())
        (base / "labels" / f"{before}_labels_metadata.json").unlink()
        label["acquisition_date"] = acquired
        (base / "labels" / f"{after}_labels_metadata.json").write_text(json.dumps(label))
    for split in ("train", "val", "test"):
        (root / f"bigearthnet-{split}.csv").write_text("\n".join(IDS) + "\n")
    return root


def _hours(root: Path, spec_kwargs: dict[str, Any]) -> list[int]:
    data = BigEarthNetLS(root, split="test", **spec_kwargs)
    return [datetime.fromtimestamp(float(data[i]["time"]), UTC).hour for i in range(len(data))]


def test_the_authors_weights_get_their_loaders_time(
    authors_pth: Path, real_pattern_root: Path, tmp_path: Path
) -> None:
    """Their loader read the hour's first digit as written in the id (T93351 -> 9 h); evaluate gave
    their weights the JSON time with their hour rule (9:40 -> 0 h) on such ids."""
    spec = resolve_encoder(str(authors_pth))
    assert (spec.time_source, spec.hour_encoding) == ("authors_filename", "utc")
    kwargs = spec.dataset_kwargs("bigearthnet_ls")
    assert _hours(real_pattern_root, kwargs) == [1, 9, 0]
    assert _hours(real_pattern_root, kwargs) == [
        datetime.fromtimestamp(authors_filename_time(i), UTC).hour for i in IDS
    ]
    assert spec.build().hour_encoding == "utc"  # the data applied their rule: taken as given
    # weights trained here: the true time, the true hour
    ours = resolve_encoder(str(export_encoder(create_mae("XXS"), tmp_path / "export")))
    assert (ours.time_source, ours.hour_encoding) == ("json", "utc")
    assert _hours(real_pattern_root, ours.dataset_kwargs("bigearthnet_ls")) == [10, 9, 9]
    # an option overrides the source; the authors' rule then moves to the encoder
    json_time = resolve_encoder(str(authors_pth), time_source="json")
    assert (json_time.time_source, json_time.hour_encoding) == ("json", "authors")
    # recorded with every result
    rows = evaluate(
        [spec],
        {"bigearthnet_ls": real_pattern_root},
        tmp_path / "cache",
        batch_size=3,
        progress=False,
        allow_overlap=True,
        log=lambda m: None,
    )
    assert rows[0].settings["time_source"] == "authors_filename"
    assert rows[0].settings["hour_encoding"] == "utc"


def test_cache_key_holds_the_ids_and_the_weights_bytes(
    ben_root: Path, tmp_path: Path, torchgeo_resnet18: Path
) -> None:
    """Cutting a split's ids or replacing any encoder's weights file used to reuse stale
    embeddings ("cached embeddings reused", the old counts)."""
    export = export_encoder(create_mae("XXS"), tmp_path / "export")
    cache, log = tmp_path / "cache", list[str]()
    kwargs: dict[str, Any] = dict(batch_size=3, progress=False, log=log.append)
    encoders = [str(export), RESNET]
    first = evaluate(encoders, {"bigearthnet_ls": ben_root}, cache, **kwargs)
    assert {r.n_test for r in first} == {3}

    test_csv = ben_root / "bigearthnet-test.csv"
    lines = test_csv.read_text().splitlines()
    test_csv.write_text("\n".join(lines[:-1]) + "\n")  # one id fewer
    log.clear()
    cut = evaluate(encoders, {"bigearthnet_ls": ben_root}, cache, **kwargs)
    assert {r.n_test for r in cut} == {2} and {r.n_train for r in cut} == {3}
    stale = [m for m in log if "made with other" in m]
    assert stale and all("ids_sha256" in m and "/test_" in m for m in stale), log
    assert sum("train: cached embeddings" in m for m in log) == 2  # train untouched

    export_encoder(create_mae("XXS"), export, overwrite=True)  # other weights, same path
    torch.save(
        timm.create_model("resnet18", in_chans=7, num_classes=0).state_dict(), torchgeo_resnet18
    )
    log.clear()
    evaluate(encoders, {"bigearthnet_ls": ben_root}, cache, **kwargs)
    stale = [m for m in log if "made with other weights_sha256" in m]
    assert len(stale) == 3 * 2 + 2, log  # every split and pool of both encoders
    assert not any("cached embeddings" in m for m in log)


@pytest.mark.parametrize(("dataset", "size"), [("bigearthnet_ls", 40), ("eurosat_ls", 22)])
def test_baselines_are_preprocessed_as_landsat_bench_does(
    dataset: str, size: int, ben_root: Path, eurosat_root: Path, torchgeo_resnet18: Path
) -> None:
    """Landsat-Bench's transform, written out: per patch, clip at 0 and torchvision's resize
    (antialiased) to 40 px (BigEarthNet-L) or 22 px (EuroSAT-L); per batch, DN 7272.7..18181.8
    -> 0..1 and kornia's Resize(224). Before, BigEarthNet-L patches were centre-cropped and
    EuroSAT-L ones resized to 40 without antialias, then resized with unaligned corners."""
    root, cls = (
        (ben_root, BigEarthNetLS) if dataset == "bigearthnet_ls" else (eurosat_root, EuroSATLS)
    )
    spec = resolve_encoder(RESNET)
    ours = cls(root, split="test", **spec.dataset_kwargs(dataset))
    ours_batch = spec.transform()(default_collate([ours[i] for i in range(len(ours))]))
    native = cls(root, split="test", patch_size=None)
    low, high = 7272.72727272727272727272, 18181.81818181818181818181
    theirs = K.ImageSequential(
        K.Normalize(mean=low, std=1.0),
        K.Normalize(mean=0.0, std=high - low),
        K.Resize(224),
        keepdim=True,
    )
    for i in range(len(native)):
        patch = TF.resize(native[i]["image"].clip(0, None), [size, size])
        torch.testing.assert_close(ours_batch["image"][i], theirs(patch[None])[0])
    assert spec.pool_label("cls") == "Global average"


def test_torchgeo_weights_from_a_local_file_offline(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    eurosat_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Offline without the file, the error was a bare ``<urlopen error ...>``; the hub-cache
    convention was documented nowhere; a TorchGeo file passed as a path gave a key dump."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = str(ResNet18_Weights.LANDSAT_OLI_SR_MOCO.url)
    name = Path(url).name
    argv = ["evaluate", "--eurosat-root", str(eurosat_root), "--out", str(tmp_path / "out")]
    assert main([*argv, "--encoder", RESNET]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and RESNET in err and "HF_HUB_OFFLINE" in err
    assert f"--encoder {RESNET}=/path/to/{name}" in err

    state = timm.create_model("resnet18", in_chans=7, num_classes=0).state_dict()
    local = tmp_path / "downloads" / name
    local.parent.mkdir()
    torch.save(state, local)
    for given in (f"{RESNET}={local}", str(local)):  # ENTRY=path, or the file by its name
        spec = resolve_encoder(given)
        assert spec.torchgeo is not None and spec.torchgeo.file == local
        model = spec.build()
        torch.testing.assert_close(model.state_dict()["conv1.weight"], state["conv1.weight"])
    # TorchGeo's own convention: the file in torch's hub cache
    cached = tmp_path / "torch" / "hub" / "checkpoints" / name
    cached.parent.mkdir(parents=True)
    shutil.copy(local, cached)
    assert resolve_encoder(RESNET).torchgeo.file == cached  # type: ignore[union-attr]
    other = tmp_path / "mine.pth"
    shutil.copy(local, other)
    with pytest.raises(ValueError, match=r"not MoE-MAE weights, nor the file of a TorchGeo"):
        resolve_encoder(str(other))


@pytest.fixture
def torchgeo_resnet18(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """TorchGeo's SSL4EO-L ResNet-18 entry served from a local file (its URL points at it)."""
    file = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", in_chans=7, num_classes=0).state_dict(), file)
    monkeypatch.setattr(ResNet18_Weights.LANDSAT_OLI_SR_MOCO.value, "url", str(file))
    return file
