"""Lightning/TorchGeo tasks: masked pre-training and linear probing."""

from .pretrain import MoEMAEPretrainTask

# Linear probing (torchgeo_moemae/trainers/linear_probe.py) is added by its own module's owner:
# from .linear_probe import LinearProbeTask

__all__ = ["MoEMAEPretrainTask"]
