"""Lightning/TorchGeo tasks: masked pre-training, linear probing and fine-tuning."""

from .finetune import FineTuneTask
from .linear_probe import LinearProbeTask
from .pretrain import MoEMAEPretrainTask

__all__ = ["FineTuneTask", "LinearProbeTask", "MoEMAEPretrainTask"]
