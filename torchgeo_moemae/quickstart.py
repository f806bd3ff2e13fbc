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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .outputs import atomic_path, check_output, remove_outputs

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

    from .trainers import MoEMAEPretrainTask

__all__ = ["DEFAULT_CONFIG", "OUTPUTS", "format_summary", "run_quickstart", "written_checkpoints"]

#: The packaged quickstart config (identical to ``examples/quickstart.yaml``).
DEFAULT_CONFIG = Path(__file__).parent / "configs" / "quickstart.yaml"

#: What a run writes in its folder; ``metrics.json`` (the summary of a finished run) first, as
#: an ``--overwrite`` run removes them in this order.
OUTPUTS = ("metrics.json", "figures", "probe", "encoder", "init", "train", "data")


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
        overwrite: run into a folder holding an earlier run: its outputs (:data:`OUTPUTS`) are
            removed first, ``metrics.json`` before the rest, so an interrupted run never leaves
            the earlier run's summary beside its own files, and a rerun starts from an empty
            ``train`` folder (no ``last-v1.ckpt``, no ``version_1``). Without it such a folder is
            kept and a ``FileExistsError`` raised before any work.
    """
    out = check_output(Path(out_dir), folder=True, overwrite=overwrite).resolve()
    from .datasets import make_synthetic_bigearthnet_ls
    from .export import export_encoder

    start = time.perf_counter()
    if overwrite:
        remove_outputs(out, OUTPUTS)
    out.mkdir(parents=True, exist_ok=True)

    _step(1, f"synthetic BigEarthNet-L ({num_patches} patches) -> {out / 'data'}")
    data = make_synthetic_bigearthnet_ls(out / "data", num_patches=num_patches, seed=seed)

    _step(2, f"pre-training ({config})")
    run = _pretrain(Path(config), out, data, seed, max_epochs)
    train_seconds = time.perf_counter() - start

    _step(3, f"export {run.checkpoint} -> {out / 'encoder'}")
    encoder_dir = export_encoder(run.checkpoint, out / "encoder", overwrite=True)

    norm = "pre-norm" if prenorm else "post-norm"
    _step(4, f"linear probe ({pool} {norm} embedding, train -> test), pre-trained vs. random init")
    exports = {"pretrained": encoder_dir, "random_init": run.init_dir}
    probes = {
        name: _probe(folder, run.datamodule, out / "probe" / name, pool, prenorm)
        for name, folder in exports.items()
    }

    _step(5, "held-out masked reconstruction loss and figure")
    recon, figure = _reconstruction(run, exports, out / "figures" / "reconstruction_test.png", seed)

    summary: dict[str, Any] = {
        "config": str(config),
        "seconds": {"pretrain": train_seconds, "total": time.perf_counter() - start},
        "test_masked_reconstruction_loss": recon,
        "linear_probe": {"pool": pool, "prenorm": prenorm, **probes},
        "paths": {
            "data": str(data),
            "checkpoint": run.checkpoint,
            "last_checkpoint": run.last_checkpoint,
            "train_logs": str(run.trainer.log_dir),
            "validation_figures": str(run.task.figure_dir),
            "encoder": str(encoder_dir),
            "init_encoder": str(run.init_dir),
            "probe": str(out / "probe"),
            "figure": str(figure),
            "metrics": str(out / "metrics.json"),
        },
    }
    with atomic_path(out / "metrics.json") as partial:
        partial.write_text(json.dumps(summary, indent=2))
    return summary


@dataclass
class _Pretraining:
    """What step 2 made: the task, its data (folder and datamodule) and trainer, the random-init
    export (before training), and the checkpoints the training wrote."""

    task: MoEMAEPretrainTask
    data: Path
    datamodule: Any
    trainer: Trainer
    init_dir: Path
    checkpoint: str
    last_checkpoint: str | None


def _instantiate(cfg: dict[str, Any]) -> tuple[Any, Any, Trainer]:
    """The task, datamodule and trainer of a LightningCLI config, as ``torchgeo fit`` builds them."""
    from lightning.pytorch.cli import LightningCLI
    from torchgeo.datamodules import BaseDataModule
    from torchgeo.trainers import BaseTask

    class ConfigCLI(LightningCLI):
        """LightningCLI of the config alone: the command line is the quickstart's own (parsed
        as a second command line, Lightning warns)."""

        def parse_arguments(self, parser: Any, args: Any) -> None:
            self.config = parser.parse_object(args)

    cli = ConfigCLI(
        model_class=BaseTask,
        datamodule_class=BaseDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        run=False,
        args=cfg,
    )
    return cli.model, cli.datamodule, cli.trainer


def _pretrain(
    config: Path, out: Path, data: Path, seed: int, max_epochs: int | None
) -> _Pretraining:
    """Step 2: export the initial weights (the probe's random-init baseline), then train."""
    from .export import export_encoder
    from .trainers import MoEMAEPretrainTask

    cfg = yaml.safe_load(config.read_text())
    cfg["seed_everything"] = seed
    _relocate(cfg, out, data, max_epochs)
    task, datamodule, trainer = _instantiate(cfg)
    if not isinstance(task, MoEMAEPretrainTask):
        raise TypeError(f"{config}: model must be MoEMAEPretrainTask, got {type(task).__name__}")
    init_dir = export_encoder(task, out / "init", overwrite=True)
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
    return _Pretraining(task, data, datamodule, trainer, init_dir, checkpoint, last_checkpoint)


def _reconstruction(
    run: _Pretraining, exports: dict[str, Path], figure: Path, seed: int
) -> tuple[dict[str, float], Path]:
    """Step 5: the masked reconstruction loss of each export on the test split, and the figure
    of the pre-trained one (captioned with its weights and data)."""
    from .analysis.figures import label_figure, save_figure
    from .analysis.reconstruction import masked_reconstruction_loss, plot_reconstruction
    from .models import create_mae, load_weights
    from .models.factory import mae_weights

    datamodule = run.datamodule
    datamodule.setup("test")
    test_batches = list(datamodule.test_dataloader())
    size, mask_ratio = run.task.hparams["model"], run.task.hparams["mask_ratio"]
    weights = {name: load_weights(mae_weights(folder)) for name, folder in exports.items()}
    maes = {name: create_mae(size, w, mask_ratio=mask_ratio) for name, w in weights.items()}
    recon = {
        name: masked_reconstruction_loss(mae, test_batches, mask_ratio, seed, datamodule.aug)
        for name, mae in maes.items()
    }
    batch = datamodule.aug(test_batches[0])
    fig = plot_reconstruction(
        maes["pretrained"], batch["image"], batch["lat"], batch["lon"], batch["time"], mask_ratio
    )
    shown = min(4, len(batch["image"]))  # plot_reconstruction's default rows
    data = f"synthetic BigEarthNet-L test split ({run.data}), its first {shown} images"
    save_figure(label_figure(fig, weights["pretrained"].provenance, data), figure, dpi=100)
    return recon, figure


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
