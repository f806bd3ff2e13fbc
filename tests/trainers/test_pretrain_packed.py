"""configs/pretrain_bigearthnet_ls_packed.yaml under `torchgeo fit`: trains from packs, resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchgeo.main import main as torchgeo_main

from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls, pack_dataset

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "pretrain_bigearthnet_ls_packed.yaml"
CHECKPOINTS = Path("runs/pretrain_bigearthnet_ls_packed/checkpoints")
#: a second --config: last.ckpt every step, so that a 2-step run leaves one to resume from
EVERY_STEP = f"""
trainer:
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args:
        dirpath: {CHECKPOINTS}
        save_top_k: 0
        save_last: true
        every_n_train_steps: 1
"""


@pytest.fixture(scope="module")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Packs of a small synthetic BigEarthNet-L (42 train, 9 val patches)."""
    base = tmp_path_factory.mktemp("packed")
    root = make_synthetic_bigearthnet_ls(base / "data", num_patches=60)
    for split in ("train", "val"):
        pack_dataset("bigearthnet_ls", base / "packs" / split, split=split, root=root)
    return base / "packs"


def test_packed_config_fits_and_resumes(
    packs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "every_step.yaml").write_text(EVERY_STEP)
    args = [
        "fit",
        "--config",
        str(CONFIG),
        "--config",
        "every_step.yaml",
        f"--data.init_args.root={packs}",
        "--data.init_args.batch_size=8",  # the fake train split is smaller than 128
        "--model.init_args.model=XXS",  # fast settings: the data path is under test
        "--trainer.precision=32",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false",
    ]
    if not torch.cuda.is_available():
        args.append("--trainer.accelerator=cpu")
    torchgeo_main([*args, "--trainer.max_steps=2"])
    last = CHECKPOINTS / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 2
    torchgeo_main([*args, "--trainer.max_steps=4", "--ckpt_path=last"])
    resumed = torch.load(last, map_location="cpu", weights_only=False)
    assert resumed["global_step"] == 4 and resumed["epoch"] == 0  # continued, not restarted
