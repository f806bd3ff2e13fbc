"""Lightning/TorchGeo tasks: masked pre-training, linear probing and fine-tuning."""

from ..lightning_noise import silence_lightning_noise
from .finetune import FineTuneTask
from .linear_probe import LinearProbeTask
from .pretrain import MoEMAEPretrainTask

silence_lightning_noise()  # for `torchgeo fit --config ...` of these tasks

__all__ = ["FineTuneTask", "LinearProbeTask", "MoEMAEPretrainTask"]
