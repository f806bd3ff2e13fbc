"""`moemae quickstart` end to end: one (shortened) run, then its outputs and what pre-training bought."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from matplotlib.figure import Figure

from tests.conftest import REAL_SAMPLE
from tests.interrupt import sigint_after
from torchgeo_moemae.analysis import figures, masked_reconstruction_loss
from torchgeo_moemae.cli import main as moemae_main
from torchgeo_moemae.datamodules import BigEarthNetLSDataModule
from torchgeo_moemae.datasets.layout import arrange_bigearthnet_sample
from torchgeo_moemae.models import create_mae

#: the warnings of the module's quickstart run
WARNINGS: list[str] = []
#: the captions (weights, data) of its figures
CAPTIONS: list[tuple[str, str]] = []


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    """One default quickstart run through the CLI, exactly as the README's main job."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see tests/trainers/conftest.py
    out = tmp_path_factory.mktemp("quickstart")
    printed = io.StringIO()
    label = figures.label_figure

    def recorded(fig: Figure, weights: object, data: str) -> Figure:
        CAPTIONS.append((str(weights), data))
        return label(fig, weights, data)

    try:
        with (
            contextlib.redirect_stdout(printed),
            warnings.catch_warnings(record=True) as caught,
            pytest.MonkeyPatch.context() as patch,
        ):
            warnings.simplefilter("always")
            patch.setattr(figures, "label_figure", recorded)
            code = moemae_main(["quickstart", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    WARNINGS[:] = [str(w.message) for w in caught]
    assert code == 0
    return out, json.loads((out / "metrics.json").read_text()), printed.getvalue()


def test_outputs_exist_and_are_printed(quickstart: tuple[Path, dict[str, Any], str]) -> None:
    _, summary, printed = quickstart
    paths = summary["paths"]
    for key in ("checkpoint", "last_checkpoint", "figure", "metrics"):
        assert Path(paths[key]).is_file(), key
        assert paths[key] in printed, key
    for name in ("model.safetensors", "config.json", "mae.safetensors"):
        assert (Path(paths["encoder"]) / name).is_file()
    assert sorted(Path(paths["validation_figures"]).glob("reconstruction_epoch*.png"))
    for name in ("pretrained", "random_init"):
        assert (Path(paths["probe"]) / name / "metrics.json").is_file()
    assert "pre-trained" in printed and "random init" in printed
    # the figure names its weights and data (a random-init one looks much the same)
    (weights, data), *_ = CAPTIONS
    encoder = Path(paths["encoder"])
    assert weights.startswith(f"{encoder / 'mae.safetensors'}, sha256 ")
    assert data == f"synthetic BigEarthNet-L test split ({paths['data']}), its first 4 images"


def _held_out(
    tmp_path: Path, quickstart_out: Path
) -> tuple[str, list[dict[str, torch.Tensor]], Any]:
    """The real ../shared sample when present (all 200 patches), else the generated test split."""
    if (REAL_SAMPLE / "samples.csv").is_file():
        root = arrange_bigearthnet_sample(REAL_SAMPLE, tmp_path / "real", fractions=None)
        dm = BigEarthNetLSDataModule(root=root, batch_size=50, on_error="skip")
        source = "real BigEarthNet-L sample"
    else:
        dm = BigEarthNetLSDataModule(root=quickstart_out / "data", batch_size=50)
        source = "generated test split"
    dm.setup("test")
    return source, list(dm.test_dataloader()), dm.aug


def test_run_is_free_of_library_noise(quickstart: tuple[Path, dict[str, Any], str]) -> None:
    # LightningCLI saw the command's own argv; torchmetrics warned once per pool about classes
    # absent from the small test split
    noise = ("args parameter", "No positive samples")
    assert not [w for w in WARNINGS if any(n in w for n in noise)]


def test_masked_reconstruction_improves_on_held_out_patches(
    quickstart: tuple[Path, dict[str, Any], str], tmp_path: Path
) -> None:
    out, summary, _ = quickstart
    source, batches, aug = _held_out(tmp_path, out)
    loss = {
        name: masked_reconstruction_loss(
            create_mae("XXS", out / folder / "mae.safetensors"), batches, 0.75, 0, aug
        )
        for name, folder in (("init", "init"), ("trained", "encoder"))
    }
    assert loss["trained"] < 0.8 * loss["init"], (source, loss)
    recorded = summary["test_masked_reconstruction_loss"]
    assert recorded["pretrained"] < recorded["random_init"]


def test_probe_of_pretrained_encoder_beats_random_init(
    quickstart: tuple[Path, dict[str, Any], str],
) -> None:
    """On the held-out test split, the pre-trained encoder probes better than its random init
    (the paper's protocol: CLS token before the final norm, sklearn logistic regression), and
    clearly better than a constant (label-prevalence) predictor."""
    out, summary, _ = quickstart
    dm = BigEarthNetLSDataModule(root=out / "data")
    dm.setup("test")
    labels = torch.stack([dm.test_dataset[i]["label"] for i in range(len(dm.test_dataset))])
    prevalence = labels.float().mean().item()  # micro mAP of a constant score
    probe = summary["linear_probe"]
    assert probe["pool"] == "cls" and probe["prenorm"]
    pretrained, random_init = probe["pretrained"], probe["random_init"]
    assert pretrained["map_micro"] > random_init["map_micro"], probe
    assert pretrained["f1_micro"] > random_init["f1_micro"], probe
    assert pretrained["map_micro"] > prevalence + 0.2, (probe, prevalence)


def test_written_checkpoints_are_this_runs(tmp_path: Path) -> None:
    """A re-run into the same folder printed the previous run's last.ckpt (the re-run
    wrote last-v1.ckpt); the paths now come from what the callbacks wrote."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader

    from torchgeo_moemae.quickstart import written_checkpoints
    from torchgeo_moemae.trainers import MoEMAEPretrainTask

    data = [{"image": x} for x in torch.randn(4, 7, 40, 40)]
    paths = []
    for _ in range(2):
        trainer = Trainer(
            accelerator="cpu",
            max_steps=1,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[ModelCheckpoint(tmp_path, save_last=True)],
        )
        task = MoEMAEPretrainTask(model="XXS", warmup_fraction=0.0, log_figures=False)
        trainer.fit(task, DataLoader(data, batch_size=2))  # type: ignore[arg-type]
        paths.append(written_checkpoints(trainer))
    (best1, last1), (best2, last2) = paths
    assert last1 == str(tmp_path / "last.ckpt") and Path(best1).is_file()
    assert last2 == str(tmp_path / "last-v1.ckpt") != str(Path(best2).parent / "last.ckpt")
    assert Path(best2).is_file() and best2 != best1


def test_sigint_during_pretraining_stops_the_run(tmp_path: Path) -> None:
    """A Ctrl-C during pre-training ended in Lightning's exit code 1, unlike every other stage:
    it ends the run with one line and the shell's code for a SIGINT (130). An interrupted
    ``--overwrite`` run left the earlier run's metrics.json beside its own files, and a rerun
    wrote last-v1.ckpt and version_1 beside the earlier run's."""
    out = tmp_path / "out"
    earlier = ["metrics.json", "train/checkpoints/last.ckpt", "train/lightning_logs/version_0/x"]
    for name in earlier:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("{}")
    argv = ["quickstart", "--out", str(out), "--threads", "1", "--overwrite"]
    target = "torchgeo_moemae.trainers:MoEMAEPretrainTask.training_step"
    code, err = sigint_after(target, argv, tmp_path / "ready")
    assert code == 130, err
    assert err.splitlines()[-1] == "moemae quickstart: interrupted"
    assert "Traceback" not in err and not (out / "metrics.json").exists()
    train = out / "train"
    assert not (train / "checkpoints" / "last.ckpt").exists()
    assert [p.name for p in (train / "lightning_logs").iterdir()] == ["version_0"]
    assert not (train / "lightning_logs" / "version_0" / "x").exists()
