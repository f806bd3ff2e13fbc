"""pack_dataset / PackedDataset / `moemae pack`: exact samples, manifest, atomic writes, checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from torchgeo_moemae.cli import main as cli_main
from torchgeo_moemae.datasets import (
    BigEarthNetLS,
    EuroSATLS,
    PackedDataset,
    PackError,
    make_synthetic_bigearthnet_ls,
    pack_dataset,
)
from torchgeo_moemae.datasets.base import LandsatBenchDataset
from torchgeo_moemae.datasets.packed import ARRAYS, MANIFEST


def assert_same_samples(source: LandsatBenchDataset, pack: PackedDataset) -> None:
    """Every sample of the pack equals the source's, bit for bit, with the same dtypes."""
    assert len(pack) == len(source) and pack.ids == source.ids
    for i in range(len(source)):
        expected, got = source[i], pack[i]
        assert expected.keys() == got.keys()
        for key, value in expected.items():
            assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
            # bytes, not values: bit for bit, and NaN metadata (EuroSAT-L) compares equal
            assert got[key].numpy().tobytes() == value.numpy().tobytes(), (i, key)


@pytest.fixture
def synthetic_root(tmp_path: Path) -> Path:
    """A synthetic BigEarthNet-L whose patches need no resize (a uint16 pack)."""
    return make_synthetic_bigearthnet_ls(tmp_path / "syn", num_patches=20, seed=1)


def test_uint16_pack_is_exact(synthetic_root: Path, tmp_path: Path) -> None:
    source = BigEarthNetLS(synthetic_root, split="train")
    out = pack_dataset(source, tmp_path / "pack" / "train", progress=False)
    pack = PackedDataset(tmp_path / "pack", "train", verify=True)
    assert pack.path == out and pack.image.dtype == np.uint16
    assert pack.image.shape == (len(source), 7, 40, 40)
    assert_same_samples(source, pack)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["settings"]["dataset"] == "BigEarthNetLS"
    assert manifest["settings"]["split"] == "train" and manifest["settings"]["patch_size"] == 40
    assert manifest["count"] == len(source) and manifest["skipped"] == {}
    assert set(manifest["arrays"]) == set(ARRAYS)
    assert manifest["arrays"]["time"]["dtype"] == "<f8"
    assert all(len(a["sha256"]) == 64 for a in manifest["arrays"].values())
    # several indices: the collated batch, one slice per array
    batch = pack[[3, 0, 5]]
    assert torch.equal(batch["image"], torch.stack([source[i]["image"] for i in (3, 0, 5)]))
    assert torch.equal(batch["time"], torch.stack([source[i]["time"] for i in (3, 0, 5)]))


def test_resized_samples_make_a_float32_pack(ben_root: Path, tmp_path: Path) -> None:
    # the fake data has a 38x39 patch, resized up to 40 px: non-integral DN
    source = BigEarthNetLS(ben_root, split="val")
    pack_dataset(source, tmp_path / "val", progress=False)
    pack = PackedDataset(tmp_path / "val")
    assert pack.image.dtype == np.float32
    assert "1 sample(s) resized" in pack.manifest["image_dtype_reason"]
    assert_same_samples(source, pack)


def test_eurosat_pack(eurosat_root: Path, tmp_path: Path) -> None:
    out = pack_dataset("eurosat_ls", tmp_path / "test", split="test", root=eurosat_root)
    source = EuroSATLS(eurosat_root, split="test")
    assert_same_samples(source, PackedDataset(out))


def test_skipped_samples_are_recorded(ben_root: Path, tmp_path: Path) -> None:
    first = BigEarthNetLS(ben_root, split="train").ids[0]
    (ben_root / "bigearthnet-l" / "images" / f"{first}.tif").write_bytes(b"not a tiff")
    out = pack_dataset(
        "bigearthnet_ls", tmp_path / "p", root=ben_root, on_error="skip", progress=False
    )
    pack = PackedDataset(out)
    assert len(pack) == 2 and first not in pack.ids
    assert list(pack.skipped) == [first] and "unreadable" in pack.skipped[first]
    assert pack.manifest["settings"]["on_error"] == "skip"


def test_reuse_refuse_and_overwrite(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "val"
    pack_dataset("bigearthnet_ls", out, split="val", root=synthetic_root, progress=False)
    stamp = (out / "image.npy").stat().st_mtime_ns
    # same source, split and settings: kept as it is
    pack_dataset("bigearthnet_ls", out, split="val", root=synthetic_root, progress=False)
    assert (out / "image.npy").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="overwrite=True"):
        pack_dataset("bigearthnet_ls", out, split="test", root=synthetic_root, progress=False)
    pack_dataset(
        "bigearthnet_ls", out, split="test", root=synthetic_root, overwrite=True, progress=False
    )
    assert PackedDataset(out).settings["split"] == "test"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn", "val"]  # no temporaries left
    (tmp_path / "other").mkdir()
    with pytest.raises(FileExistsError, match="is not a pack"):
        pack_dataset("bigearthnet_ls", tmp_path / "other", root=synthetic_root, progress=False)


def test_failed_pack_leaves_nothing(synthetic_root: Path, tmp_path: Path) -> None:
    source = BigEarthNetLS(synthetic_root, split="train")
    source.ids[3] = "S2A_MSIL2A_20170613T101031_9_9"  # no such file: fails mid-way
    with pytest.raises(FileNotFoundError):
        pack_dataset(source, tmp_path / "out" / "train", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_bad_arguments(synthetic_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected one of bigearthnet_ls, eurosat_ls"):
        pack_dataset("sen12ms", tmp_path / "x", root=synthetic_root)
    with pytest.raises(ValueError, match="root is required"):
        pack_dataset("bigearthnet_ls", tmp_path / "x")
    source = BigEarthNetLS(synthetic_root, transforms=lambda s: s)
    with pytest.raises(ValueError, match="without transforms"):
        pack_dataset(source, tmp_path / "x")


@pytest.fixture
def packed(synthetic_root: Path, tmp_path: Path) -> Path:
    return pack_dataset("bigearthnet_ls", tmp_path / "p", root=synthetic_root, progress=False)


def test_truncated_array_fails_clearly(packed: Path) -> None:
    path = packed / "image.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(PackError, match=r"image\.npy: \d+ bytes, the manifest expects \d+"):
        PackedDataset(packed)


def test_mismatched_array_fails_clearly(packed: Path) -> None:
    lat = np.load(packed / "lat.npy")
    np.save(packed / "lat.npy", lat.astype(np.float64)[: len(lat) // 2])  # same byte count
    with pytest.raises(PackError, match=r"lat\.npy: shape \[\d+\] dtype <f8, the manifest expects"):
        PackedDataset(packed)


def test_checksum_is_verified_on_request(packed: Path) -> None:
    path = packed / "label.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    PackedDataset(packed)  # sizes and shapes still agree
    with pytest.raises(PackError, match=r"label\.npy: SHA-256 differs"):
        PackedDataset(packed, verify=True)


def test_missing_or_foreign_manifest(packed: Path) -> None:
    manifest = json.loads((packed / MANIFEST).read_text())
    (packed / MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(PackError, match="format_version 99, expected 1"):
        PackedDataset(packed)
    (packed / MANIFEST).write_text("{")
    with pytest.raises(PackError, match="unreadable manifest"):
        PackedDataset(packed)
    (packed / MANIFEST).unlink()
    with pytest.raises(FileNotFoundError, match="moemae pack"):
        PackedDataset(packed)
    (packed / MANIFEST).write_text(json.dumps(manifest))
    (packed / "time.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"time\.npy: array file missing"):
        PackedDataset(packed)


def test_cli_packs_each_split(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each pack is named with what happened to it: a rerun said nothing of reused or rewritten
    packs (it printed the same paths)."""
    out = tmp_path / "packs"
    n = {split: len(BigEarthNetLS(synthetic_root, split=split)) for split in ("train", "val")}
    args = ["pack", "--dataset", "bigearthnet_ls", "--root", str(synthetic_root)]
    assert cli_main([*args, "--split", "train,val", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{out / split}: written, {n[split]} samples" for split in ("train", "val")
    ]
    assert PackedDataset(out, "val").settings["split"] == "val"
    assert cli_main([*args, "--split", "val", "--out", str(out)]) == 0
    assert capsys.readouterr().out == (
        f"{out / 'val'}: reused, a pack of the same source and settings ({n['val']} samples)\n"
    )
    # a different pack is refused in one line (exit 2), not overwritten
    assert cli_main([*args, "--split", "train", "--out", str(out), "--patch-size", "32"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert PackedDataset(out, "train").image.shape[-2:] == (40, 40)
    cli_main([*args, "--split", "train", "--out", str(out), "--patch-size", "32", "--overwrite"])
    assert PackedDataset(out, "train").image.shape[-2:] == (32, 32)
    assert capsys.readouterr().out == (
        f"{out / 'train'}: rewritten (the earlier pack replaced), {n['train']} samples\n"
    )


def test_real_sample_pack_is_exact(real_ben_root: Path, tmp_path: Path) -> None:
    source = BigEarthNetLS(real_ben_root, split="test", on_error="skip")
    out = pack_dataset(source, tmp_path / "test", progress=False)
    pack = PackedDataset(out, verify=True)
    assert pack.image.dtype == np.uint16  # the sample's patches are all >= 40 px
    assert pack.skipped == source.skipped and len(pack.skipped) > 0
    assert_same_samples(source, pack)


def test_gather_flips_are_the_shared_flips(packed: Path) -> None:
    """The NumPy gather flips each block along the axes the on-device path uses."""
    from torchgeo_moemae.transforms import FLIP_AXES

    dataset = PackedDataset(packed)
    indices = np.arange(min(8, len(dataset)))
    counts = [len(indices) - 3, 1, 1, 1]
    plain = dataset.raw_batch(indices)["image"].view(torch.int16)
    flipped = dataset.raw_batch(indices, counts)["image"].view(torch.int16)
    blocks = plain.split(counts)
    expected = torch.cat([b.flip(a) if a else b for b, a in zip(blocks, FLIP_AXES, strict=True)])
    assert torch.equal(flipped, expected)
