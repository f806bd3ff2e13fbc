"""The authors' weights on the real sample, end to end (docs/user_guide/fidelity.rst).

This package's :class:`BigEarthNetLS` (default arguments) feeding ``timm.create_model("moemae_landsat",
pretrained=True, ...)`` must give the tokens of the authors' model fed by the authors' own loader
(``../shared/reference/geo-moe-mae``, imported at run time, gate noise off). Their loader takes the
hour from the file name and keeps its first digit, so:

* the pretrained encoder's default ``hour_encoding="authors"`` matches on the 174 names written with
  a zero-padded hour (``T093351`` -> 0, ``T101031`` -> 1); the 25 written ``T93351`` keep 9 there;
* ``time_source="authors_filename"`` reproduces their parse exactly, for all 199 patches, with an
  encoder taking the hour as given (``hour_encoding="utc"``).

Skipped without ``../shared``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import numpy as np
import pytest
import timm
import torch
from torch import Tensor
from torch.utils.data import default_collate

import torchgeo_moemae  # noqa: F401  (registers the timm models)
from torchgeo_moemae.bands import BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from torchgeo_moemae.datasets import BigEarthNetLS
from torchgeo_moemae.models import MoEMAEEncoder
from torchgeo_moemae.models.metadata import encode_metadata

pytestmark = pytest.mark.slow  # two S encoders on 199 patches: about 15 s on one CPU thread

ATOL = 1e-4
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"
AUTHORS_CODE = SHARED / "geo-moe-mae"
CHECKPOINT = SHARED / "upstream_format_checkpoint_S.pth"
#: top-level package names of the authors' repository (generic: kept out of sys.modules after use)
AUTHORS_PACKAGES = ("datasets", "models", "transformation", "utils")


def _import_authors_code() -> SimpleNamespace:
    """The authors' loader, transforms and model, imported from their repository by path."""
    if not (AUTHORS_CODE / "datasets" / "bigearthnet.py").is_file() or not CHECKPOINT.is_file():
        pytest.skip(f"the authors' code or checkpoint is not under {SHARED} (../shared is absent)")

    def ours(name: str) -> bool:
        return name.split(".")[0] in AUTHORS_PACKAGES

    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if ours(name)}
    sys.path.insert(0, str(AUTHORS_CODE))
    try:
        modules = {
            short: importlib.import_module(name)
            for short, name in (
                ("loader", "datasets.bigearthnet"),
                ("model", "models.moe_mae"),
                ("transforms", "transformation.transformer"),
                ("config", "utils.data_config"),
            )
        }
    finally:
        sys.path.remove(str(AUTHORS_CODE))
        for name in [name for name in sys.modules if ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
    return SimpleNamespace(**modules)


@pytest.fixture(scope="module")
def authors_outputs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The sample root (split files: the 199 labelled ids), the ids in order, and from the authors'
    own loader and model: their encoder tokens after (``tokens``) and before (``prenorm``) its
    final LayerNorm ``(199, 105, 144)``, and the metadata pairs their loader made
    (``metadata``, ``(199, 4, 2)``: week, hour, lat, lon)."""
    code = _import_authors_code()
    from torchgeo_moemae.datasets.layout import arrange_bigearthnet_sample

    sample = SHARED.parent / "data" / "bigearthnet-ls-sample"
    root = arrange_bigearthnet_sample(sample, tmp_path_factory.mktemp("authors") / "real")
    labels = root / "bigearthnet-l" / "labels"
    ids = [p.name.removesuffix("_labels_metadata.json") for p in sorted(labels.iterdir())]
    for filename in BigEarthNetLS.split_filenames.values():
        (root / filename).write_text("\n".join(["id", *ids]) + "\n")
    stats = code.config.BigEarthNetInfo.STATISTICS
    to_float = code.transforms.ToFloat()
    crop = code.transforms.CenterCrop40()
    normalize = code.transforms.ZScoreNormalize(stats["mean"], stats["std"])
    dataset = code.loader.BigEarthNetDatasetLS(
        str(root / "bigearthnet-test.csv"),
        str(root / "bigearthnet-l"),
        transform=lambda x: normalize(crop(to_float(x))),
    )
    images, _, week, hour, lat, lon = default_collate([dataset[i] for i in range(len(dataset))])
    encoder = code.model.build_model("S", img_size=40, patch_size=4, in_chans=7)
    mae = code.model.MOEMAE(encoder)
    mae.load_state_dict(
        torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["model_state"]
    )
    mae.eval()
    # Gate noise off: their gate adds randn_like noise even in eval mode.
    with torch.no_grad(), mock.patch.object(torch, "randn_like", torch.zeros_like):
        tokens, _, prenorm = encoder(images, week, hour, lat, lon)
    metadata = torch.stack([week, hour, lat, lon], dim=1).float()
    return SimpleNamespace(
        root=root, ids=ids, tokens=tokens, prenorm=prenorm, metadata=metadata, checkpoint=CHECKPOINT
    )


@pytest.fixture(scope="module")
def authors_run(authors_outputs: SimpleNamespace) -> tuple[Path, list[str], Tensor]:
    """The sample root, the ids in order, and the authors' encoder tokens."""
    return authors_outputs.root, authors_outputs.ids, authors_outputs.tokens


def _batch(root: Path, **dataset_kwargs: Any) -> dict[str, Tensor]:
    """All samples of this package's dataset (default arguments unless given), normalised."""
    dataset = BigEarthNetLS(root, split="test", **dataset_kwargs)
    assert len(dataset) == 199 and dataset.skipped == {}  # the all-fill patch included
    batch = default_collate([dataset[i] for i in range(len(dataset))])
    mean = torch.tensor(BIGEARTHNET_LS_MEAN)[:, None, None]
    std = torch.tensor(BIGEARTHNET_LS_STD)[:, None, None]
    return {**batch, "image": (batch["image"] - mean) / std}


def _model(**kwargs: Any) -> MoEMAEEncoder:
    model = timm.create_model(
        "moemae_landsat",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(CHECKPOINT)),
        **kwargs,
    )
    assert isinstance(model, MoEMAEEncoder)
    return model.eval()


def _tokens(model: MoEMAEEncoder, batch: dict[str, Tensor], rows: Tensor) -> Tensor:
    """Encoder tokens of the batch rows selected by the boolean mask ``rows``."""
    with torch.no_grad():
        return model.forward_features(
            batch["image"][rows],
            lat=batch["lat"][rows],
            lon=batch["lon"][rows],
            time=batch["time"][rows],
        )


def _zero_padded(ids: list[str]) -> Tensor:
    """Which names write the hour with two digits (``YYYYMMDDTHHMMSS``, 15 characters)."""
    return torch.tensor([len(pid.split("_")[2]) == 15 for pid in ids])


def _max_error(ours: Tensor, theirs: Tensor) -> Tensor:
    """Per-sample largest absolute token difference ``(B,)``."""
    return (ours - theirs).abs().flatten(1).amax(1)


def test_default_pipeline_matches_authors_on_zero_padded_names(
    authors_run: tuple[Path, list[str], Tensor],
) -> None:
    root, ids, theirs = authors_run
    padded = _zero_padded(ids)
    assert len(ids) == 199 and int(padded.sum()) == 174
    model = _model()
    assert model.hour_encoding == "authors"  # the authors' weights bring their hour rule
    error = _max_error(_tokens(model, _batch(root), torch.ones(199, dtype=torch.bool)), theirs)
    assert error[padded].max() < ATOL
    # Their loader kept hour 9 for the 25 names written T9xxxx: only the compatibility option
    # (last test) reproduces that.
    assert (error[~padded] > ATOL).all()


def test_true_utc_hour_is_not_what_the_weights_saw(
    authors_run: tuple[Path, list[str], Tensor],
) -> None:
    # The old behaviour: the authors' weights fed the true UTC hour (9-11).
    root, ids, theirs = authors_run
    padded = _zero_padded(ids)
    rows = ~padded | (torch.arange(len(ids)) < 40)  # the 25 T9 names and some zero-padded ones
    error = _max_error(_tokens(_model(hour_encoding="utc"), _batch(root), rows), theirs[rows])
    assert (error[padded[rows]] > ATOL).all()  # they see an hour token the weights never saw
    assert error[~padded[rows]].max() < ATOL


def test_authors_filename_option_matches_all_patches(
    authors_run: tuple[Path, list[str], Tensor],
) -> None:
    root, ids, theirs = authors_run
    padded = _zero_padded(ids)
    compat = _batch(root, time_source="authors_filename")
    # The dataset already applies their rule, so the encoder takes the hour as given.
    model = _model(hour_encoding="utc")
    error = _max_error(_tokens(model, compat, ~padded), theirs[~padded])
    assert error.max() < ATOL
    # On the zero-padded names the option feeds the same metadata encoding as the default
    # pipeline above (so the same tokens, checked there); compared here without a second forward.
    default = _batch(root)
    meta = [
        encode_metadata(b["lat"], b["lon"], b["time"], len(ids), hour_encoding=rule)
        for b, rule in ((compat, "utc"), (default, "authors"))
    ]
    assert torch.equal(meta[0][padded], meta[1][padded])
    assert torch.equal(compat["image"], default["image"])


def test_evaluate_caches_the_authors_cls_features(
    authors_outputs: SimpleNamespace, tmp_path: Path
) -> None:
    """``moemae evaluate`` with the authors' checkpoint: its cached CLS embeddings are the authors'
    pipeline's (their loader with its file-name time, their model, pre-norm CLS) on all 199
    patches; before, the 25 ids written without the hour's zero got another hour token."""
    from torchgeo_moemae.probe.embed import load_embeddings
    from torchgeo_moemae.probe.evaluate import evaluate, resolve_encoder

    cache = tmp_path / "cache"
    spec = resolve_encoder(str(authors_outputs.checkpoint), pools=("cls",))
    evaluate(
        [spec],
        {"bigearthnet_ls": authors_outputs.root},
        cache,
        progress=False,
        allow_overlap=True,
        log=lambda m: None,
    )
    (folder,) = cache.glob("*/bigearthnet_ls/test_cls")
    cached = load_embeddings(folder)
    assert cached.ids is not None and list(cached.ids) == authors_outputs.ids
    theirs = authors_outputs.prenorm[:, 4]  # the CLS token (after the 4 metadata tokens)
    error = (torch.from_numpy(np.asarray(cached.features)) - theirs).abs().amax(1)
    assert error.max() < ATOL, f"{int((error >= ATOL).sum())} patches differ, max {error.max()}"


def test_finetune_feeds_the_authors_metadata(
    authors_outputs: SimpleNamespace, tmp_path: Path
) -> None:
    """The fine-tune task with the authors' checkpoint under a Trainer: the BigEarthNet-L
    datamodule gives its encoder the metadata the authors' loader made, on all 199 patches."""
    from lightning.pytorch import Trainer

    from torchgeo_moemae.datamodules import BigEarthNetLSDataModule
    from torchgeo_moemae.trainers import FineTuneTask

    task = FineTuneTask("S", weights=str(authors_outputs.checkpoint))
    datamodule = BigEarthNetLSDataModule(authors_outputs.root, batch_size=199)
    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    trainer.validate(task, datamodule=datamodule)  # sets the datamodule and the task up
    batch = default_collate([datamodule.val_dataset[i] for i in range(199)])
    ours = encode_metadata(
        batch["lat"], batch["lon"], batch["time"], 199, hour_encoding=task.model.hour_encoding
    )
    assert list(datamodule.val_dataset.ids) == authors_outputs.ids
    torch.testing.assert_close(ours.float(), authors_outputs.metadata, atol=ATOL, rtol=0)
