"""Lightning/TorchGeo tasks: masked pre-training and linear probing."""

from .linear_probe import LinearProbeTask
from .pretrain import MoEMAEPretrainTask

__all__ = ["LinearProbeTask", "MoEMAEPretrainTask"]
