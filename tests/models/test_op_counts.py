"""Host-side cost of a pre-training step: operations launched per step, and no host synchronisation.

Eager PyTorch pays a dispatcher call (tens of microseconds of host time on a GPU host) per
operation, so the step's operation count bounds its speed wherever kernels are small. Counts are
those of ``torch.profiler``'s top-level CPU events (operations not called by another one; an
autograd node's evaluation counts once) for size S with the fused expert dispatch (the one used on
accelerators and when compiling): deterministic, and independent of the batch size (checked
below), so a batch of 2 stands for the benchmarks' batch of 128.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from torchgeo_moemae.models import MoEMAE, SwiGLUMoE, create_mae
from torchgeo_moemae.models.checks import skip_value_checks
from torchgeo_moemae.trainers.clipping import clip_grad_norm_, clip_gradients

#: Upper bounds for size S: the MAE forward, one training step, and its dtype/device conversions.
MAX_FORWARD_OPS = 1000
MAX_STEP_OPS = 2500
MAX_STEP_CONVERSIONS = 100


def _batch(batch_size: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return dict(
        image=torch.randn(batch_size, 7, 40, 40, generator=gen),
        lat=torch.rand(batch_size, generator=gen) * 30 + 40,
        lon=torch.rand(batch_size, generator=gen) * 30 - 10,
        time=1.5e9 + torch.rand(batch_size, generator=gen, dtype=torch.float64) * 3e7,
    )


def _fused_mae(size: str) -> MoEMAE:
    torch.manual_seed(0)
    mae = create_mae(size).train()
    for module in mae.modules():
        if isinstance(module, SwiGLUMoE):
            module.dispatch = "fused"
    return mae


def _training_step(mae: MoEMAE, batch: dict[str, torch.Tensor]) -> tuple[Callable, Callable]:
    """The pre-training task's forward and its whole step: loss, backward, clipping, fused AdamW."""
    optimizer = torch.optim.AdamW(mae.parameters(), lr=3e-4, weight_decay=0.05, fused=True)

    def forward() -> Any:
        with skip_value_checks():  # as the task trains: its guard checks values on the device
            return mae(batch["image"], lat=batch["lat"], lon=batch["lon"], time=batch["time"])

    def step() -> None:
        loss = forward().loss(0.1, 0.5)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(list(mae.parameters()), 1.0, None)  # the task's clipping
        optimizer.step()

    return forward, step


def _top_level_ops(fn: Callable[[], Any]) -> list[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return [event.name for event in prof.events() if event.cpu_parent is None]


def _counts(size: str, batch_size: int) -> dict[str, int]:
    forward, step = _training_step(_fused_mae(size), _batch(batch_size))
    step()  # optimiser state and lazy initialisation out of the way
    forward_ops, step_ops = _top_level_ops(forward), _top_level_ops(step)
    return dict(
        forward=len(forward_ops),
        step=len(step_ops),
        conversions=step_ops.count("aten::to"),
    )


@pytest.fixture(scope="module")
def counts_s() -> dict[str, int]:
    return _counts("S", 2)


def test_step_of_size_s_launches_few_operations(counts_s: dict[str, int]) -> None:
    assert counts_s["forward"] <= MAX_FORWARD_OPS, counts_s
    assert counts_s["step"] <= MAX_STEP_OPS, counts_s
    assert counts_s["conversions"] <= MAX_STEP_CONVERSIONS, counts_s


def test_operation_counts_do_not_depend_on_the_batch_size(counts_s: dict[str, int]) -> None:
    assert _counts("S", 3) == counts_s


def test_clipping_matches_torch_in_a_constant_number_of_operations() -> None:
    grads = [torch.randn(5, 3), torch.randn(7), torch.randn(2, 2, 2)]
    mine = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    theirs = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for params in (mine, theirs):
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    total: list[torch.Tensor] = []
    ops = _top_level_ops(lambda: total.append(clip_grad_norm_(mine, 1.0)))
    assert torch.equal(total[0], expected)
    for p, q in zip(mine, theirs, strict=True):
        assert torch.equal(p.grad, q.grad)
    assert len(ops) < 10 and ops.count("aten::to") <= 1, ops


class _RecordOps(TorchDispatchMode):
    """Records every ATen operation and whether it indexed with a boolean mask."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func.overloadpacket.__name__
        if name == "index" and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]
        ):
            name = "index with a boolean mask"
        self.ops.add(name)
        return func(*args, **(kwargs or {}))


#: operations whose result size or value the host must wait for (no CUDA graph can hold them)
_SYNCHRONISING = {
    "_local_scalar_dense",  # .item(), bool(tensor), int(tensor)
    "is_nonzero",  # if tensor:
    "nonzero",
    "masked_select",
    "index with a boolean mask",
    "unique",
    "equal",
}


def test_training_step_never_waits_for_the_device() -> None:
    """The training step (fused dispatch, no value checks) can be captured as one CUDA graph."""
    mae = _fused_mae("XXS")
    _, step = _training_step(mae, _batch(2))
    step()
    with _RecordOps() as recorder:
        step()
    assert not recorder.ops & _SYNCHRONISING, sorted(recorder.ops & _SYNCHRONISING)
