"""``moemae quickstart``: the whole pipeline on the built-in synthetic dataset, offline, in minutes.

1. write the synthetic BigEarthNet-L dataset (:func:`make_synthetic_bigearthnet_ls`);
2. pre-train briefly with ``configs/quickstart.yaml`` (the same file as ``examples/quickstart.yaml``,
   run through the Lightning/TorchGeo CLI machinery, so ``torchgeo fit --config`` behaves the same);
3. export the best checkpoint (on ``val_loss``) to a timm/Hub folder, and the initial weights too;
4. linear-probe the exported encoder and, as the baseline, the same architecture at its initial
   (random) weights, both loaded through ``timm.create_model(..., pretrained=True)``;
5. measure the masked reconstruction loss on the held-out test split before/after pre-training, save
   a reconstruction figure and ``metrics.json``, and print where everything went.
"""

from __future__ import annotations

import json
import sys
import time
import unittest.mock
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .outputs import atomic_path, check_output

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

__all__ = ["DEFAULT_CONFIG", "format_summary", "run_quickstart", "written_checkpoints"]

#: The packaged quickstart config (identical to ``examples/quickstart.yaml``).
DEFAULT_CONFIG = Path(__file__).parent / "configs" / "quickstart.yaml"


def _step(i: int, text: str) -> None:
    print(f"\n[{i}/5] {text}", flush=True)


def _relocate(config: dict[str, Any], out: Path, data: Path, max_epochs: int | None) -> None:
    """Point the config's data, logs and checkpoints into ``out``."""
    config["data"]["init_args"]["root"] = str(data)
    trainer = config.setdefault("trainer", {})
    trainer["default_root_dir"] = str(out / "train")
    if isinstance(trainer.get("logger"), dict):
        trainer["logger"].setdefault("init_args", {})["save_dir"] = str(out / "train")
    for callback in trainer.get("callbacks") or []:
        if callback.get("class_path", "").endswith("ModelCheckpoint"):
            callback.setdefault("init_args", {})["dirpath"] = str(out / "train" / "checkpoints")
    if max_epochs is not None:
        trainer["max_epochs"] = max_epochs


def _probe(
    encoder_dir: Path, datamodule: Any, out_dir: Path, pool: str, prenorm: bool
) -> dict[str, float]:
    """Load an exported encoder the way users do (timm) and linear-probe it (sklearn, the paper's)."""
    import timm

    from .models.factory import export_architecture
    from .probe import linear_probe

    encoder = timm.create_model(
        str(export_architecture(encoder_dir)),
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(encoder_dir)),
    )
    return linear_probe(
        encoder,
        datamodule,
        pool=pool,
        method="sklearn",
        out_dir=out_dir,
        prenorm=prenorm,
        progress=True,
        overwrite=True,
    )


def written_checkpoints(trainer: Trainer) -> tuple[str, str | None]:
    """The best and the newest last checkpoint this run wrote, as its callbacks recorded them.

    A name guessed from the folder (``<dir>/last.ckpt``) may be a previous run's file: a re-run into
    the same folder can write ``last-v1.ckpt`` instead.

    Returns:
        ``(best, last)``: the first ModelCheckpoint's ``best_model_path`` ("" if none) and the most
        recently written ``last_model_path`` of all of them (None if none).
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    best = trainer.checkpoint_callback
    lasts = [
        Path(cb.last_model_path)
        for cb in trainer.checkpoint_callbacks
        if isinstance(cb, ModelCheckpoint) and cb.last_model_path
    ]
    lasts = [path for path in lasts if path.is_file()]
    last = max(lasts, key=lambda path: path.stat().st_mtime_ns, default=None)
    return (
        best.best_model_path if isinstance(best, ModelCheckpoint) else "",
        None if last is None else str(last),
    )


def run_quickstart(
    out_dir: str | Path = "moemae_quickstart",
    config: str | Path = DEFAULT_CONFIG,
    max_epochs: int | None = None,
    num_patches: int = 300,
    pool: str = "cls",
    seed: int = 0,
    prenorm: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the five quickstart steps into ``out_dir``; returns the summary written to ``metrics.json``.

    Args:
        out_dir: output folder (data, train logs/checkpoints, exports, probe results, figures).
        config: LightningCLI config of the pre-training (default: the packaged quickstart config).
        max_epochs: override the config's epochs.
        num_patches: size of the synthetic dataset (split 70/15/15).
        pool: embedding of the linear probe (``"cls"``, ``"avg"`` or ``"all"``).
        seed: seed of the data, the initial weights and the training.
        prenorm: probe the tokens before the encoder's final LayerNorm, as the paper's reference
            code did (after this brief pre-training, post-norm tokens of the random-init encoder
            probe as well as the pre-trained ones on the synthetic data; pre-norm ones do not).
        overwrite: run into a non-empty ``out_dir`` (replacing the files of an earlier run);
            without it such a folder is kept and a ``FileExistsError`` raised before any work.
    """
    out = check_output(Path(out_dir), folder=True, overwrite=overwrite).resolve()
    from lightning.pytorch.cli import LightningCLI
    from torchgeo.datamodules import BaseDataModule
    from torchgeo.trainers import BaseTask

    from .analysis.reconstruction import plot_reconstruction
    from .datasets import make_synthetic_bigearthnet_ls
    from .export import export_encoder
    from .models import create_mae
    from .trainers import MoEMAEPretrainTask
    from .trainers.evaluate import masked_reconstruction_loss

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)

    _step(1, f"synthetic BigEarthNet-L ({num_patches} patches) -> {out / 'data'}")
    data = make_synthetic_bigearthnet_ls(out / "data", num_patches=num_patches, seed=seed)

    _step(2, f"pre-training ({config})")
    cfg = yaml.safe_load(Path(config).read_text())
    cfg["seed_everything"] = seed
    _relocate(cfg, out, data, max_epochs)
    # LightningCLI warns when it gets both args and a command line: the command line is ours
    with unittest.mock.patch.object(sys, "argv", sys.argv[:1]):
        cli = LightningCLI(
            model_class=BaseTask,
            datamodule_class=BaseDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            run=False,
            args=cfg,
        )
    task, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    if not isinstance(task, MoEMAEPretrainTask):
        raise TypeError(f"{config}: model must be MoEMAEPretrainTask, got {type(task).__name__}")
    # the folder was checked above: what it holds is an earlier run's, replaced
    init_dir = export_encoder(
        task, out / "init", overwrite=True
    )  # the probe's random-init baseline
    try:
        trainer.fit(task, datamodule=datamodule)
    except SystemExit:
        # Lightning answers Ctrl-C with its own shutdown and sys.exit(1): report it as the
        # interruption it is (one line, exit 130), as a Ctrl-C in any other stage is
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    checkpoint, last_checkpoint = written_checkpoints(trainer)
    if not checkpoint:
        raise RuntimeError(f"{config}: the training saved no checkpoint (add a ModelCheckpoint)")
    train_seconds = time.perf_counter() - start

    _step(3, f"export {checkpoint} -> {out / 'encoder'}")
    encoder_dir = export_encoder(checkpoint, out / "encoder", overwrite=True)

    norm = "pre-norm" if prenorm else "post-norm"
    _step(4, f"linear probe ({pool} {norm} embedding, train -> test), pre-trained vs. random init")
    probes = {
        name: _probe(folder, datamodule, out / "probe" / name, pool, prenorm)
        for name, folder in (("pretrained", encoder_dir), ("random_init", init_dir))
    }

    _step(5, "held-out masked reconstruction loss and figure")
    datamodule.setup("test")
    test_batches = list(datamodule.test_dataloader())
    size = task.hparams["model"]
    mask_ratio = task.hparams["mask_ratio"]
    maes = {
        "pretrained": create_mae(size, encoder_dir, mask_ratio=mask_ratio),
        "random_init": create_mae(size, init_dir, mask_ratio=mask_ratio),
    }
    recon = {
        name: masked_reconstruction_loss(mae, test_batches, mask_ratio, seed, datamodule.aug)
        for name, mae in maes.items()
    }
    batch = datamodule.aug(test_batches[0])
    fig = plot_reconstruction(
        maes["pretrained"], batch["image"], batch["lat"], batch["lon"], batch["time"], mask_ratio
    )
    figure = out / "figures" / "reconstruction_test.png"
    with atomic_path(figure) as partial:
        fig.savefig(partial, dpi=100, format="png")

    summary: dict[str, Any] = {
        "config": str(config),
        "seconds": {"pretrain": train_seconds, "total": time.perf_counter() - start},
        "test_masked_reconstruction_loss": recon,
        "linear_probe": {"pool": pool, "prenorm": prenorm, **probes},
        "paths": {
            "data": str(data),
            "checkpoint": checkpoint,
            "last_checkpoint": last_checkpoint,
            "train_logs": str(trainer.log_dir),
            "validation_figures": str(task.figure_dir),
            "encoder": str(encoder_dir),
            "init_encoder": str(init_dir),
            "probe": str(out / "probe"),
            "figure": str(figure),
            "metrics": str(out / "metrics.json"),
        },
    }
    with atomic_path(out / "metrics.json") as partial:
        partial.write_text(json.dumps(summary, indent=2))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The printed table: results, then where every output went."""
    recon = summary["test_masked_reconstruction_loss"]
    probe = summary["linear_probe"]
    metrics = [k for k in ("map_micro", "map_macro", "f1_micro") if k in probe["pretrained"]]
    rows = [("", "pre-trained", "random init")]
    rows.append(
        ("masked recon. loss (test)", f"{recon['pretrained']:.3f}", f"{recon['random_init']:.3f}")
    )
    for k in metrics:
        rows.append(
            (
                f"probe {probe['pool']} {k}",
                f"{probe['pretrained'][k]:.3f}",
                f"{probe['random_init'][k]:.3f}",
            )
        )
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b:>12}  {c:>12}" for a, b, c in rows]
    lines.append("")
    paths = summary["paths"]
    pwidth = max(len(k) for k in paths)
    lines += [f"{k:<{pwidth}}  {v}" for k, v in paths.items()]
    lines.append(f"\ntotal time: {summary['seconds']['total']:.0f} s")
    return "\n".join(lines)
