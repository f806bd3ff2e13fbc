"""What the classification tasks share (``ClassificationBase``)."""

from __future__ import annotations

import pytest
import torch

from torchgeo_moemae.trainers import FineTuneTask, LinearProbeTask


@pytest.mark.parametrize("task_class", [FineTuneTask, LinearProbeTask])
def test_task_names_the_loss(task_class: type[FineTuneTask | LinearProbeTask]) -> None:
    with pytest.raises(ValueError, match="task must be 'multilabel' or 'multiclass', got 'binary'"):
        task_class(model="XXS", task="binary")  # type: ignore[arg-type]
    multilabel = task_class(model="XXS", num_classes=3, task="multilabel")
    multiclass = task_class(model="XXS", num_classes=3, task="multiclass")
    assert isinstance(multilabel.criterion, torch.nn.BCEWithLogitsLoss)
    assert isinstance(multiclass.criterion, torch.nn.CrossEntropyLoss)
