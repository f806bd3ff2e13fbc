"""One band normalisation and one set of flips, for every path that normalises or flips."""

from __future__ import annotations

import kornia.augmentation as K
import torch

from torchgeo_moemae.bands import BIGEARTHNET_LS_MEAN, BIGEARTHNET_LS_STD
from torchgeo_moemae.models import MoEMAELandsat_Weights
from torchgeo_moemae.transforms import FLIP_AXES, Normalize, flip_counts, normalize_dn

MEAN, STD = torch.tensor(BIGEARTHNET_LS_MEAN), torch.tensor(BIGEARTHNET_LS_STD)


def _dn(batch: int = 40) -> torch.Tensor:
    return torch.randint(0, 30_000, (batch, 7, 8, 8), generator=torch.Generator().manual_seed(0))


def test_every_normalisation_is_kornias_bit_for_bit() -> None:
    """The weights entries' transforms, the packed path and the scene's normalise as the TIFF
    datamodules' kornia pipeline does (batches, single images, uint16 DN)."""
    dn = _dn()
    expected = K.Normalize(mean=MEAN, std=STD, keepdim=True)(dn.float())
    assert torch.equal(normalize_dn(dn.to(torch.uint16), MEAN, STD), expected)
    assert torch.equal(normalize_dn(dn.float()[3], MEAN, STD), expected[3])
    transforms = MoEMAELandsat_Weights.LANDSAT_OLI_SR_MOEMAE_BEN_LS.transforms
    assert isinstance(transforms, Normalize)
    assert torch.equal(transforms(dn.float()), expected)
    assert torch.equal(transforms({"image": dn.float()[0], "lat": 1.0})["image"], expected[0])


def test_flip_blocks_cover_the_batch() -> None:
    torch.manual_seed(0)
    counts = flip_counts(1000)
    assert len(counts) == len(FLIP_AXES) == 4 and sum(counts) == 1000
    assert all(150 < c < 350 for c in counts)  # each flip about a quarter of the images
    x = torch.arange(4.0).view(1, 1, 2, 2)
    flipped = [x.flip(a) if a else x for a in FLIP_AXES]
    assert [f.flatten().tolist() for f in flipped] == [
        [0, 1, 2, 3],
        [1, 0, 3, 2],
        [2, 3, 0, 1],
        [3, 2, 1, 0],
    ]
