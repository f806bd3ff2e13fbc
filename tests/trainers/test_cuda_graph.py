"""The graphed training step: buffers, eager fallback, tensor learning rates, records, resume.

Without CUDA the step object runs its step eagerly on the same static buffers (``capture=False``),
which exercises everything but the capture itself; the capture tests need a CUDA device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor, nn

from torchgeo_moemae.models import SwiGLUMoE
from torchgeo_moemae.trainers import MoEMAEPretrainTask
from torchgeo_moemae.trainers.cuda_graph import GraphedTrainStep
from torchgeo_moemae.trainers.guard import StepRecords
from torchgeo_moemae.trainers.schedule import warmup_cosine_scheduler

from .conftest import NoHostSync

Loader = Callable[..., Any]
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA graph capture needs a CUDA device"
)


def _linear_step(
    capture: bool = False, device: str = "cpu"
) -> tuple[GraphedTrainStep, nn.Linear, Any]:
    """A graphed step of a linear regression with fused AdamW and a warm-up/cosine schedule."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    scheduler = warmup_cosine_scheduler(optimizer, total_steps=10, warmup_fraction=0.2)

    def loss_fn(batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        err = (model(batch["image"].flatten(1)[:, :3]).squeeze(-1) - batch["y"]).pow(2).mean()
        return err, {"mse": err}, torch.ones(2, device=err.device) / 2

    step = GraphedTrainStep(loss_fn, optimizer, StepRecords(), clip_val=1.0, capture=capture)
    return step, model, scheduler


def _batch(b: int, device: str = "cpu", seed: int = 0) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(b, 3, generator=gen), "y": torch.randn(b, generator=gen)}


def test_full_batches_use_the_buffers_and_others_run_eagerly_and_are_counted() -> None:
    step, _, _ = _linear_step()
    out = step(_batch(4), (0, 0, 0))
    assert step.static is not None
    assert torch.equal(step.static["image"], _batch(4)["image"])  # copied into the buffers
    buffers = {k: v.data_ptr() for k, v in step.static.items()}
    step(_batch(4, seed=1), (1, 0, 1))
    assert torch.equal(step.static["y"], _batch(4, seed=1)["y"])
    step(_batch(2), (2, 0, 2))  # the partial last batch
    step({**_batch(4), "y": _batch(4)["y"].double()}, (3, 1, 0))  # another dtype
    assert (step.static_steps, step.eager_steps) == (2, 2)
    assert {k: v.data_ptr() for k, v in step.static.items()} == buffers  # never reallocated
    assert step.records.util_weight == 4 + 4 + 2 + 4
    assert set(out) == {"loss", "mse"} and not out["loss"].requires_grad


def test_other_shapes_do_not_recompile_compiled_blocks() -> None:
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    step, model, _ = _linear_step()
    model.compile(backend="eager", dynamic=False)  # Dynamo only: the tracing is what is counted
    step(_batch(4), (0, 0, 0))
    step(_batch(4, seed=1), (1, 0, 1))
    assert counters["stats"]["unique_graphs"] == 1
    step(_batch(2), (2, 0, 2))  # runs eagerly, compiled module included
    assert counters["stats"]["unique_graphs"] == 1 and step.eager_steps == 1


def test_learning_rate_is_a_tensor_the_schedule_fills_in_place() -> None:
    step, _, scheduler = _linear_step()
    group = step.optimizer.param_groups[0]
    lr = group["lr"]
    assert isinstance(lr, Tensor)
    for i in range(4):
        assert lr.item() == pytest.approx(0.1 * scheduler.lr_lambdas[0](i))
        step(_batch(4, seed=i), (i, 0, i))
        scheduler.step()
    assert group["lr"] is lr  # the same tensor: a captured graph reads the current rate


def test_graphed_step_trains_as_the_plain_loop() -> None:
    step, model, scheduler = _linear_step()
    torch.manual_seed(0)
    plain = nn.Linear(3, 1)
    optimizer = torch.optim.AdamW(plain.parameters(), lr=0.1, fused=True)
    plain_scheduler = warmup_cosine_scheduler(optimizer, total_steps=10, warmup_fraction=0.2)
    for i, b in enumerate([4, 4, 2, 4]):
        batch = _batch(b, seed=i)
        step(batch, (i, 0, i))
        scheduler.step()
        optimizer.zero_grad()
        loss = (plain(batch["image"]).squeeze(-1) - batch["y"]).pow(2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plain.parameters(), 1.0)
        optimizer.step()
        plain_scheduler.step()
    for ours, theirs in zip(model.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)
    state, plain_state = step.optimizer.state_dict()["state"], optimizer.state_dict()["state"]
    for i in plain_state:
        assert state[i]["step"].item() == plain_state[i]["step"].item() == 4


def test_non_finite_step_is_skipped_and_recorded() -> None:
    step, model, _ = _linear_step()
    step(_batch(4), (0, 0, 0))
    before = [p.clone() for p in model.parameters()]
    bad = _batch(4, seed=1)
    bad["image"][2, 1] = math.nan
    step(bad, (1, 0, 1))
    for p, q in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, q)  # fused AdamW's found_inf skipped the update
    with pytest.raises(RuntimeError, match=r"batch 1 \(epoch 0, global step 1\).*samples \[2\]"):
        step.records.raise_if_non_finite()


def test_records_utilisation_mean_and_reset() -> None:
    records = StepRecords()
    where = torch.tensor([0, 0, 0])
    for util, b in ((torch.tensor([1.0, 0.0]), 2), (torch.tensor([0.0, 1.0]), 6)):
        records.update(torch.tensor(1.0), torch.zeros(b, 3), where, util)
        records.count(b)
    assert records.pop_utilisation() == pytest.approx([0.25, 0.75])
    assert records.pop_utilisation() is None
    records.raise_if_non_finite()  # nothing bad recorded


def test_capture_needs_cuda_and_warmup_is_validated() -> None:
    model = nn.Linear(1, 1)
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)
    with pytest.raises(ValueError, match="warmup_steps must be >= 1"):
        GraphedTrainStep(lambda b: (b["x"], {}, b["x"]), optimizer, StepRecords(), warmup_steps=0)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="capture=True needs CUDA"):
            GraphedTrainStep(lambda b: (b["x"], {}, b["x"]), optimizer, StepRecords())


# --- through the task ----------------------------------------------------------------------------


def _fit(
    tmp_path: Path,
    make_loader: Loader,
    make_trainer: Callable[..., Trainer],
    cuda_graph: bool | None,
    ckpt_path: str | None = None,
    **trainer_kwargs: Any,
) -> MoEMAEPretrainTask:
    seed_everything(0)
    task = MoEMAEPretrainTask(model="XXS", lr=1e-3, warmup_fraction=0.25, cuda_graph=cuda_graph)
    trainer = make_trainer(tmp_path, gradient_clip_val=1.0, **trainer_kwargs)
    trainer.fit(task, make_loader(n=10, batch_size=4), ckpt_path=ckpt_path)  # 4, 4, 2
    return task


def test_task_graphed_step_matches_the_eager_path(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    eager = _fit(tmp_path / "eager", make_loader, make_trainer, None, max_epochs=2)
    graphed = _fit(tmp_path / "graph", make_loader, make_trainer, True, max_epochs=2)
    assert eager.graphed is None and graphed.graphed is not None
    assert (graphed.graphed.static_steps, graphed.graphed.eager_steps) == (4, 2)
    assert graphed.trainer.global_step == eager.trainer.global_step == 6
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(graphed.state_dict()[key], value, rtol=0, atol=1e-6)
    lr = graphed.trainer.optimizers[0].param_groups[0]["lr"]
    assert lr.item() == pytest.approx(eager.trainer.optimizers[0].param_groups[0]["lr"])


@pytest.mark.parametrize(("first", "second"), [(None, True), (True, None)])
def test_checkpoint_resumes_across_paths(
    tmp_path: Path,
    make_loader: Loader,
    make_trainer: Callable[..., Trainer],
    first: bool | None,
    second: bool | None,
) -> None:
    ckpt = ModelCheckpoint(tmp_path / "ckpt", save_top_k=0, save_last=True)
    _fit(tmp_path, make_loader, make_trainer, first, max_epochs=1, callbacks=[ckpt],
         enable_checkpointing=True)  # fmt: skip
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    # one layout whichever path wrote it: float rates, step counters as tensors, not capturable
    for group in saved["optimizer_states"][0]["param_groups"]:
        assert isinstance(group["lr"], float) and not group.get("capturable")
    assert all(
        isinstance(s["step"], Tensor) for s in saved["optimizer_states"][0]["state"].values()
    )
    assert all(isinstance(v, float) for v in saved["lr_schedulers"][0]["_last_lr"])

    resumed = _fit(tmp_path, make_loader, make_trainer, second, max_epochs=2,
                   ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))  # fmt: skip
    straight = _fit(tmp_path / "straight", make_loader, make_trainer, first, max_epochs=2)
    assert resumed.trainer.global_step == straight.trainer.global_step == 6
    state = resumed.trainer.optimizers[0].state_dict()["state"]
    assert all(s["step"].item() == 6 for s in state.values())
    lr = resumed.trainer.optimizers[0].param_groups[0]["lr"]
    assert float(lr) == pytest.approx(float(straight.trainer.optimizers[0].param_groups[0]["lr"]))
    # the masking's random numbers differ after a restart (the RNG is not in the checkpoint), so
    # the weights are not compared: the schedule and optimiser state continued
    assert resumed.state_dict().keys() == straight.state_dict().keys()


def test_graphed_step_is_capturable_code(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    """No host read anywhere in the graphed step (what would break or stall a capture on CUDA)."""
    seed_everything(0)
    task = MoEMAEPretrainTask(model="XXS", cuda_graph=True)
    for module in task.model.modules():
        if isinstance(module, SwiGLUMoE):
            module.dispatch = "fused"  # what "auto" picks on accelerators (and under capture)
    step = task.training_step
    calls = []

    def checked(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        with NoHostSync():
            return step(*args, **kwargs)

    task.training_step = checked  # type: ignore[method-assign]
    make_trainer(tmp_path, max_steps=3, gradient_clip_val=1.0).fit(task, make_loader(n=12))
    assert len(calls) == 3 and task.graphed is not None and task.graphed.static_steps == 3


def test_cuda_graph_refuses_gradient_accumulation(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    with pytest.raises(ValueError, match="cuda_graph=True cannot be used with gradient accum"):
        _fit(tmp_path, make_loader, make_trainer, True, max_steps=1, accumulate_grad_batches=2)


# --- CUDA only -----------------------------------------------------------------------------------


@needs_cuda
def test_captured_step_replays_like_the_eager_step() -> None:
    captured, model, scheduler = _linear_step(capture=True, device="cuda")
    eager, plain, plain_scheduler = _linear_step(capture=False, device="cuda")
    for i, b in enumerate([4, 4, 4, 4, 4, 2, 4]):  # 3 warm-up steps, capture, replays, a partial
        batch = {k: v.cuda() for k, v in _batch(b, seed=i).items()}
        captured(batch, (i, 0, i))
        eager(batch, (i, 0, i))
        scheduler.step()
        plain_scheduler.step()
    assert captured.graph is not None and captured.eager_steps == 1
    for ours, theirs in zip(model.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs)


@needs_cuda
def test_task_captures_on_cuda(
    tmp_path: Path, make_loader: Loader, make_trainer: Callable[..., Trainer]
) -> None:
    task = _fit(tmp_path, make_loader, make_trainer, None, max_epochs=3, accelerator="cuda")
    assert task.graphed is not None and task.graphed.graph is not None
    assert task.graphed.eager_steps == 3  # one partial batch per epoch
