"""MoEMAEPretrainTask: schedule, optimiser groups, logging, NaN guard, resume, CLI configs, DDP."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torchgeo.main import main as torchgeo_main

from torchgeo_moemae.analysis import masked_reconstruction_loss, reconstruct
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls
from torchgeo_moemae.models import MoEMAELandsat_Weights, SwiGLUMoE, create_mae
from torchgeo_moemae.probe import Featurizer
from torchgeo_moemae.trainers import LinearProbeTask, MoEMAEPretrainTask
from torchgeo_moemae.trainers.pretrain import expert_utilisation, with_metadata
from torchgeo_moemae.trainers.schedule import WarmupCosine

from .conftest import NoHostSync

REPO = Path(__file__).resolve().parents[2]
Loader = Callable[..., Any]


# --- schedule and model names -------------------------------------------------------------------


def test_warmup_cosine_shape() -> None:
    f = WarmupCosine(total_steps=100, warmup_steps=10, min_ratio=0.1)
    warm = [f(s) for s in range(10)]
    assert warm == sorted(warm) and warm[0] > 0 and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    assert f(100) == pytest.approx(0.1) and f(10_000) == pytest.approx(0.1)
    decay = [f(s) for s in range(10, 101)]
    assert decay == sorted(decay, reverse=True)


@pytest.mark.parametrize(
    "kwargs", [dict(total_steps=0, warmup_steps=0), dict(total_steps=5, warmup_steps=6)]
)
def test_warmup_cosine_rejects_bad_settings(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="steps"):
        WarmupCosine(**kwargs)


def test_model_names() -> None:
    assert MoEMAEPretrainTask(model="xxs").model.encoder.pretrained_cfg["architecture"] == (
        "moemae_landsat_xxs"
    )
    with pytest.raises(ValueError, match="model must be one of"):
        MoEMAEPretrainTask(model="moemae_landsat_xl")


# --- optimisation -------------------------------------------------------------------------------


def test_optimizer_groups_and_schedule(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    task = MoEMAEPretrainTask(model="XXS", lr=1e-3, weight_decay=0.05, warmup_fraction=0.25)
    trainer = make_trainer(tmp_path, max_steps=1)
    trainer.fit(task, make_loader(n=4))
    optimizer = trainer.optimizers[0]
    decay_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    names = dict(task.model.named_parameters())
    assert set(decay_of) == {id(p) for p in names.values()}
    no_decay = {n for n, p in names.items() if decay_of[id(p)] == 0}
    expected_free = {"encoder.pos_embed", "encoder.cls_token", "mask_token", "decoder_pos_embed"}
    assert expected_free <= no_decay
    assert all(n in no_decay for n in names if n.endswith("bias") or ".norm" in n)
    assert "encoder.blocks.0.moe.w_bias" in no_decay  # 2-D per-expert biases too
    assert decay_of[id(names["encoder.blocks.0.attn.qkv.weight"])] == 0.05
    assert decay_of[id(names["encoder.blocks.0.moe.w"])] == 0.05
    scheduler = trainer.lr_scheduler_configs[0]
    assert scheduler.interval == "step"
    assert isinstance(scheduler.scheduler.lr_lambdas[0], WarmupCosine)  # type: ignore[attr-defined]


def test_unbounded_run_is_rejected(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    trainer = make_trainer(tmp_path, max_epochs=-1, max_steps=-1)
    with pytest.raises(ValueError, match="max_epochs or max_steps"):
        trainer.fit(MoEMAEPretrainTask(model="XXS"), make_loader(n=4))


# --- forward, metadata, logging -----------------------------------------------------------------


def test_held_out_measures_hide_the_same_patches(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    """Batch i hides the same patches in the task's validation, ``masked_reconstruction_loss``
    and ``reconstruct``: one masking rule for every held-out measure."""
    task = MoEMAEPretrainTask(model="XXS", log_figures=False)
    masks: list[torch.Tensor] = []
    task.model.register_forward_hook(lambda m, args, out: masks.append(out.mask.clone()))
    loader = make_loader(n=12, batch_size=4)  # unshuffled
    make_trainer(tmp_path, limit_val_batches=None).validate(task, loader)
    batches = list(loader)
    by_task = masks[:]
    masks.clear()
    masked_reconstruction_loss(task.model, batches)
    assert len(by_task) == len(masks) == 3
    assert all(torch.equal(a, b) for a, b in zip(by_task, masks, strict=True))
    assert not torch.equal(masks[0], masks[1])  # a masking per batch, not one for all
    masks.clear()
    first = batches[0]
    out = reconstruct(task.model, first["image"], first["lat"], first["lon"], first["time"])
    assert torch.equal(out["mask"], by_task[0].float())


def test_missing_metadata_is_nan(make_loader: Loader) -> None:
    task = MoEMAEPretrainTask(model="XXS")
    batch = {"image": torch.randn(2, 7, 40, 40)}
    meta = with_metadata(batch)
    image = meta.pop("image")
    assert image is batch["image"]
    assert all(v.shape == (2,) and v.isnan().all() for v in meta.values())
    assert meta["time"].dtype == torch.float64
    task.eval()
    no_meta = task(batch, mask_ratio=0.0).pred
    # explicit NaNs are the same as absent keys (up to the random patch order), and metadata
    # does change the output
    explicit = task({"image": batch["image"], **meta}, mask_ratio=0.0).pred
    assert torch.allclose(no_meta, explicit, atol=1e-5)
    full = next(iter(make_loader(n=2, batch_size=2)))
    full["image"] = batch["image"]
    assert not torch.allclose(no_meta, task(full, mask_ratio=0.0).pred, atol=1e-3)


def test_logs_losses_lr_utilisation_and_figures(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    task = MoEMAEPretrainTask(model="XXS", warmup_fraction=0.5)
    logger = CSVLogger(tmp_path, name="logs")
    trainer = make_trainer(
        tmp_path, max_epochs=2, logger=logger, limit_val_batches=1, log_every_n_steps=1
    )
    trainer.fit(task, make_loader(n=8), make_loader(n=4))
    with open(Path(logger.log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    columns = set(rows[0])
    for key in ("train_loss", "train_loss_masked", "train_loss_visible", "train_loss_moe", "lr"):
        assert key in columns
    assert {"val_loss", "val_loss_masked", "val_loss_visible", "val_loss_moe"} <= columns
    depth = len(task.model.encoder.blocks)
    util = [c for c in columns if c.startswith("train_util/")]
    assert len(util) == sum(b.moe.num_experts for b in task.model.encoder.blocks)
    for i in range(depth):  # each epoch, a layer's fractions sum to 1
        layer = [c for c in util if c.startswith(f"train_util/layer{i:02d}/")]
        epochs = [[float(r[c]) for c in layer] for r in rows if r[layer[0]]]
        assert len(epochs) == 2
        assert all(sum(e) == pytest.approx(1.0, abs=1e-5) for e in epochs)
    lrs = [float(r["lr"]) for r in rows if r["lr"]]
    assert max(lrs) == pytest.approx(task.hparams["lr"], rel=1e-6)  # warm-up then decay
    figures = sorted(task.figure_dir.glob("reconstruction_epoch*.png"))
    assert [p.name for p in figures] == [
        "reconstruction_epoch0000.png",
        "reconstruction_epoch0001.png",
    ]
    assert task.figure_dir.parent == Path(logger.log_dir)


def test_expert_utilisation_counts_slots() -> None:
    mae = create_mae("XXS")
    out = mae(torch.randn(3, 7, 40, 40))
    gates = out.routing[0].gates
    util = expert_utilisation(out.routing[0])
    assert util.sum() == pytest.approx(1.0)
    assert torch.allclose(util * gates.shape[0] * 2, (gates > 0).sum(0).float())


# --- NaN guard ----------------------------------------------------------------------------------


class _Snapshot(Callback):
    """The weights after the last trained batch (of ``batches`` if given)."""

    def __init__(self, batches: tuple[int, ...] | None = None) -> None:
        self.batches = batches
        self.state: dict[str, torch.Tensor] = {}

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.batches is None or batch_idx in self.batches:
            self.state = {k: v.clone() for k, v in pl_module.state_dict().items()}


def test_nan_batch_stops_before_the_update(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    task = MoEMAEPretrainTask(model="XXS")
    snapshot = _Snapshot()
    trainer = make_trainer(tmp_path, max_epochs=1, callbacks=[snapshot], gradient_clip_val=1.0)
    # sample 6 is in the second batch (batch size 4); the task's sync-free guard reports it (the
    # encoder's own value checks, host synchronisations, are off inside the training step)
    with pytest.raises(RuntimeError, match=r"batch 1 \(epoch 0, global step 1\).*samples \[2\]"):
        trainer.fit(task, make_loader(n=12, nan_samples=(6,)))
    assert snapshot.state, "the first (finite) batch should have trained"
    for key, value in task.state_dict().items():
        assert torch.isfinite(value).all(), key
        assert torch.equal(value, snapshot.state[key]), key


def test_non_finite_weights_are_reported(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    task = MoEMAEPretrainTask(model="XXS")
    with torch.no_grad():
        task.model.decoder_pred.bias.fill_(math.inf)
    with pytest.raises(RuntimeError, match="input is finite, so the weights"):
        make_trainer(tmp_path, max_steps=1).fit(task, make_loader(n=4))


def test_test_and_predict_steps(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    task = MoEMAEPretrainTask(model="XXS", log_figures=False)
    trainer = make_trainer(tmp_path)
    res = trainer.test(task, make_loader(n=8), verbose=False)[0]
    assert {"test_loss", "test_loss_masked", "test_loss_visible", "test_loss_moe"} <= set(res)
    again = trainer.test(task, make_loader(n=8), verbose=False)[0]
    assert again["test_loss"] == res["test_loss"]  # fixed masking per batch index
    embeddings = trainer.predict(task, make_loader(n=6, batch_size=4))
    assert [tuple(e.shape) for e in embeddings] == [(4, 108), (2, 108)]
    batch = next(iter(make_loader(n=6, batch_size=4)))
    # the embedding of every command: the CLS token before the final LayerNorm
    with torch.no_grad():
        expected = Featurizer(task.model.encoder.eval())(batch, "cls")
    torch.testing.assert_close(embeddings[0], expected)


def test_training_step_does_not_synchronise(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    task = MoEMAEPretrainTask(model="XXS")
    for module in task.model.modules():
        if isinstance(module, SwiGLUMoE):
            module.dispatch = "fused"  # what "auto" picks on accelerators
    step, before = task.training_step, task.on_before_optimizer_step
    calls = []

    def checked(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            calls.append(fn.__name__)
            with NoHostSync():
                return fn(*args, **kwargs)

        return run

    task.training_step = checked(step)  # type: ignore[method-assign]
    task.on_before_optimizer_step = checked(before)  # type: ignore[method-assign]
    trainer = make_trainer(tmp_path, max_steps=2)
    trainer.fit(task, make_loader(n=8))
    assert calls.count("training_step") == 2 and calls.count("on_before_optimizer_step") == 2
    assert trainer.optimizers[0].defaults["fused"]  # its found_inf skips bad steps on device


def test_bad_step_is_skipped_and_reported_at_the_next_check(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    task = MoEMAEPretrainTask(model="XXS", finite_check_every_n_steps=2)
    snapshot = _Snapshot(batches=(0,))
    trainer = make_trainer(tmp_path, max_epochs=1, callbacks=[snapshot])
    # batch 0 trains, batch 1 (samples 4-7) is NaN in its sample 1 and skipped; the check after
    # global step 2 reports it, so batch 2 never runs
    with pytest.raises(RuntimeError, match=r"batch 1 \(epoch 0, global step 1\).*samples \[1\]"):
        trainer.fit(task, make_loader(n=16, nan_samples=(5,)))
    assert trainer.global_step == 2
    for key, value in task.state_dict().items():
        assert torch.equal(value, snapshot.state[key]), key


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_fused_optimizer_gradients_are_clipped(algorithm: str) -> None:
    # Lightning's mixed-precision plugin refuses to clip fused optimisers: the task clips itself
    task = MoEMAEPretrainTask(model="XXS")
    params = list(task.model.parameters())
    optimizer = torch.optim.AdamW(params, fused=True)
    for p in params:
        p.grad = torch.randn_like(p)
    task.configure_gradient_clipping(optimizer, 1e-3, algorithm)
    grads = [p.grad for p in params if p.grad is not None]
    if algorithm == "norm":
        assert torch.nn.utils.get_total_norm(grads) == pytest.approx(1e-3, rel=1e-3)
    else:
        assert max(g.abs().max() for g in grads) <= 1e-3


def test_finite_check_interval_is_validated() -> None:
    with pytest.raises(ValueError, match="finite_check_every_n_steps must be >= 1"):
        MoEMAEPretrainTask(model="XXS", finite_check_every_n_steps=0)


def test_compile_flag_compiles_the_blocks(
    tmp_path: Path,
    make_loader: Loader,
    make_trainer: Callable[..., Trainer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled, limits = [], set()

    def fake_compile(fn: Callable[..., Any], **kwargs: Any) -> Callable[..., Any]:
        compiled.append(fn.__self__)  # nn.Module.compile compiles its bound _call_impl

        def call(*args: Any, **kwargs: Any) -> Any:
            limits.add(torch._dynamo.config.recompile_limit)  # what a recompilation would see
            return fn(*args, **kwargs)

        return call

    # inductor itself is too slow for a unit test
    monkeypatch.setattr(torch, "compile", fake_compile)
    task = MoEMAEPretrainTask(model="XXS", compile=True)
    keys = set(task.state_dict())
    with torch._dynamo.config.patch(recompile_limit=2):  # too low for the blocks
        make_trainer(tmp_path, max_steps=1).fit(task, make_loader(n=4))
        global_limit = torch._dynamo.config.recompile_limit
    blocks = [*task.model.encoder.blocks, *task.model.decoder_blocks]
    assert compiled == blocks  # each block, once; embedding, metadata and losses stay eager
    assert set(task.state_dict()) == keys  # compiled in place: same checkpoint keys
    # the blocks' calls may recompile for every distinct block; the global setting is untouched
    distinct = {tuple((n, p.shape) for n, p in b.named_parameters()) for b in blocks}
    assert limits == {4 * len(distinct)} and global_limit == 2


# --- initial weights ----------------------------------------------------------------------------


def test_weights_from_mae_or_encoder_checkpoint(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = create_mae("XXS")
    save_file(source.state_dict(), tmp_path / "mae.safetensors")
    save_file(source.encoder.state_dict(), tmp_path / "encoder.safetensors")
    full = MoEMAEPretrainTask(model="XXS", weights=str(tmp_path / "mae.safetensors"))
    for key, value in source.state_dict().items():
        assert torch.equal(full.model.state_dict()[key], value), key
    enc = MoEMAEPretrainTask(model="XXS", weights=str(tmp_path / "encoder.safetensors"))
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(enc.model.encoder.state_dict()[key], value), key
    assert "weights" not in full.hparams  # checkpoints must not depend on the file
    with pytest.raises(ValueError, match=r"does not match|hold a XXS .* encoder, the model is S"):
        MoEMAEPretrainTask(model="S", weights=str(tmp_path / "mae.safetensors"))


def test_weights_enum_member_or_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As TorchGeo's tasks: ``weights`` may be a WeightsEnum member or its name (no download here)."""
    from safetensors.torch import save_file

    from torchgeo_moemae.models import checkpoint

    source = create_mae("S")
    save_file(source.state_dict(), tmp_path / "mae.safetensors")
    monkeypatch.setattr(
        checkpoint, "hf_hub_download", lambda *a, **k: str(tmp_path / "mae.safetensors")
    )
    member = MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS
    for weights in (member, str(member)):
        task = MoEMAEPretrainTask(model="S", weights=weights)
        for key, value in source.state_dict().items():
            assert torch.equal(task.model.state_dict()[key], value), key
        probe = LinearProbeTask(model="S", weights=weights)
        for key, value in source.encoder.state_dict().items():
            assert torch.equal(probe.encoder.state_dict()[key], value), key
    with pytest.raises(ValueError, match="not a valid weights name"):
        MoEMAEPretrainTask(model="S", weights="MoEMAELandsat_Weights.NOPE")


# --- resume -------------------------------------------------------------------------------------


class _Kill(Callback):
    """Simulates a crash at the start of optimiser step ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer: Trainer, *args: Any) -> None:
        if trainer.global_step == self.at:
            raise RuntimeError("killed")


class _Record(Callback):
    def __init__(self) -> None:
        self.steps: list[tuple[int, int, float]] = []

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self.steps.append((trainer.global_step, batch_idx, lr))


def test_resume_mid_epoch_continues_the_schedule(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    lr, epochs, per_epoch = 1e-3, 2, 4
    total = epochs * per_epoch

    def run(*callbacks: Callback, ckpt_path: str | None = None) -> MoEMAEPretrainTask:
        task = MoEMAEPretrainTask(model="XXS", lr=lr, warmup_fraction=0.25)
        last = ModelCheckpoint(
            tmp_path / "ckpt", save_top_k=0, save_last=True, every_n_train_steps=3
        )
        trainer = make_trainer(
            tmp_path, max_epochs=epochs, enable_checkpointing=True, callbacks=[last, *callbacks]
        )
        trainer.fit(task, make_loader(n=4 * per_epoch), ckpt_path=ckpt_path)
        return task

    with pytest.raises(RuntimeError, match="killed"):
        run(_Kill(at=7))  # mid second epoch; last.ckpt is from step 6
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == 6

    record = _Record()
    task = run(record, ckpt_path="last")
    schedule = WarmupCosine(total, warmup_steps=round(0.25 * total))
    first_step, first_batch, first_lr = record.steps[0]
    assert (first_step, first_batch) == (6, 2)  # epoch 1, batch 2: not a restart
    assert first_lr == pytest.approx(lr * schedule(6))
    assert first_lr != pytest.approx(lr * schedule(0))  # the warm-up did not restart
    assert [s for s, _, _ in record.steps] == [6, 7]
    assert task.trainer.global_step == total


def test_extending_a_finished_run_continues_on_the_longer_schedule(
    tmp_path: Path,
    make_loader: Loader,
    make_trainer: Callable[..., Trainer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A run finished at ``max_epochs=2`` and resumed with 4 trains on the 4-epoch cosine (it
    trained at the finished schedule's lr 0 before), and says so."""
    lr, per_epoch = 1e-3, 4

    def run(epochs: int, *callbacks: Callback, ckpt_path: str | None = None) -> None:
        last = ModelCheckpoint(tmp_path / "ckpt", save_top_k=0, save_last=True)
        trainer = make_trainer(
            tmp_path, max_epochs=epochs, enable_checkpointing=True, callbacks=[last, *callbacks]
        )
        task = MoEMAEPretrainTask(model="XXS", lr=lr, warmup_fraction=0.25)
        trainer.fit(task, make_loader(n=4 * per_epoch), ckpt_path=ckpt_path)

    run(2)
    record = _Record()
    with caplog.at_level("INFO"):
        run(4, record, ckpt_path="last")
    longer = WarmupCosine(4 * per_epoch, warmup_steps=per_epoch)
    assert [s for s, _, _ in record.steps] == list(range(2 * per_epoch, 4 * per_epoch))
    for step, _, rate in record.steps:
        assert rate == pytest.approx(lr * longer(step)) and rate > 0
    (message,) = [r.message for r in caplog.records if "schedule now spans" in r.message]
    assert "16 steps instead of the checkpoint's 8" in message


def _config_checkpoints(config: str, dirpath: Path, every_n_train_steps: int) -> list[Callback]:
    """The ModelCheckpoint callbacks of a shipped config, writing to ``dirpath``, with its
    every-N-steps interval scaled down to a short run."""
    callbacks = yaml.safe_load((REPO / config).read_text())["trainer"]["callbacks"]
    out: list[Callback] = []
    for callback in callbacks:
        assert callback["class_path"] == "lightning.pytorch.callbacks.ModelCheckpoint"
        args = {**callback["init_args"], "dirpath": dirpath}
        if "every_n_train_steps" in args:
            args["every_n_train_steps"] = every_n_train_steps
        out.append(ModelCheckpoint(**args))
    return out


@pytest.mark.parametrize(
    ("config", "max_steps", "kill_at"),
    [
        ("configs/pretrain_bigearthnet_ls.yaml", 10, None),
        ("configs/pretrain_bigearthnet_ls.yaml", 7, None),
        ("configs/pretrain_bigearthnet_ls.yaml", 10, 7),
        ("configs/pretrain_bigearthnet_ls_ddp.yaml", 10, None),
        ("examples/quickstart.yaml", 7, None),
    ],
)
def test_config_last_ckpt_is_current(
    config: str,
    max_steps: int,
    kill_at: int | None,
    tmp_path: Path,
    make_loader: Loader,
    make_trainer: Callable[..., Trainer],
) -> None:
    """With only an every-N-steps ``save_last`` (N = 4 here, 1000 in the config),
    last.ckpt stayed at step 8 of a 10-step run (upstream: step 120 of 129)."""
    task = MoEMAEPretrainTask(model="XXS", warmup_fraction=0.0, log_figures=False)
    callbacks = _config_checkpoints(config, tmp_path / "ckpt", every_n_train_steps=4)
    if kill_at is not None:
        callbacks.append(_Kill(at=kill_at))
    trainer = make_trainer(
        tmp_path,
        max_epochs=2,
        max_steps=max_steps,
        enable_checkpointing=True,
        callbacks=callbacks,
        limit_val_batches=1,
    )
    try:
        # 5 steps per epoch: 10 steps end at an epoch end, 7 stop mid-epoch (max_steps)
        trainer.fit(task, make_loader(n=10, batch_size=2), make_loader(n=2, batch_size=2))
    except RuntimeError as err:
        assert kill_at is not None and "killed" in str(err)
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    # killed at step 7: the end of epoch 1 (step 5) is newer than the last 4-step save
    assert saved["global_step"] == (5 if kill_at is not None else max_steps)


# --- the configs through the real torchgeo CLI --------------------------------------------------


@pytest.fixture(scope="module")
def fake_ben(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic BigEarthNet-L (60 patches: 42 train, 9 val, 9 test)."""
    return make_synthetic_bigearthnet_ls(tmp_path_factory.mktemp("ben") / "data", num_patches=60)


def test_torchgeo_fit_quickstart_config(
    fake_ben: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    torchgeo_main(
        [
            "fit",
            "--config",
            str(REPO / "examples" / "quickstart.yaml"),
            f"--data.init_args.root={fake_ben}",
            "--trainer.fast_dev_run=1",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert (tmp_path / "moemae_quickstart" / "train").is_dir()


def test_torchgeo_fit_paper_config(
    fake_ben: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [
        "fit",
        "--config",
        str(REPO / "configs" / "pretrain_bigearthnet_ls.yaml"),
        f"--data.init_args.root={fake_ben}",
        # the fake train split (42) is smaller than the paper's batch of 128 (torchgeo drops the
        # last incomplete train batch)
        "--data.init_args.batch_size=8",
        "--data.init_args.num_workers=0",
        "--data.init_args.download=false",
        "--trainer.fast_dev_run=1",
        "--trainer.enable_progress_bar=false",
    ]
    if not torch.cuda.is_available():
        args.append("--trainer.accelerator=cpu")
    fitted: list[MoEMAEPretrainTask] = []
    monkeypatch.setattr(MoEMAEPretrainTask, "on_train_end", lambda self: fitted.append(self))
    torchgeo_main(args)
    (task,) = fitted
    assert task.trainer.global_step == 1  # one optimiser step of fast_dev_run
    assert task.model.encoder.pretrained_cfg["architecture"] == "moemae_landsat"
    paper = {"mask_ratio": 0.75, "alpha": 0.1, "beta": 0.5, "lr": 3e-4, "weight_decay": 0.05}
    assert {k: task.hparams[k] for k in paper} == paper
    assert task.trainer.gradient_clip_val == 1.0


def test_packaged_quickstart_config_is_the_example() -> None:
    packaged = REPO / "torchgeo_moemae" / "configs" / "quickstart.yaml"
    assert packaged.read_bytes() == (REPO / "examples" / "quickstart.yaml").read_bytes()


def test_ddp_two_cpu_processes(fake_ben: Path, tmp_path: Path) -> None:
    """Lightning DDP (gloo) with 2 CPU processes, launched by `torchgeo fit` as a user would."""
    cmd = [
        str(Path(sys.executable).parent / "torchgeo"),
        "fit",
        "--config",
        str(REPO / "examples" / "quickstart.yaml"),
        f"--data.init_args.root={fake_ben}",
        "--data.init_args.batch_size=4",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--trainer.max_steps=2",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false",
        "--model.init_args.log_figures=false",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in output
    assert "gloo" in output
    last = tmp_path / "moemae_quickstart" / "train" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 2
