"""`moemae embed-scene` on several scenes: summary and exit status, a real Ctrl-C after the first
scene then a resume, a killed process, and 2 DDP processes (gloo) against 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pystac
import pytest
import rasterio
from safetensors.torch import save_file

from tests.interrupt import sigint_after
from torchgeo_moemae.cli import main
from torchgeo_moemae.scene.stac import multihash_sha256


@pytest.fixture
def scenes(tmp_path: Path, scene_data: ModuleType) -> list[Path]:
    """Three synthetic products (different path/rows), the second with clouds."""
    clouds = [(slice(26, 66), slice(6, 46), 3)]
    return [
        scene_data.make_product(tmp_path / "in", path_row="001001"),
        scene_data.make_product(tmp_path / "in", path_row="002002", qa_flags=clouds),
        scene_data.make_product(tmp_path / "in", path_row="003003"),
    ]


@pytest.fixture
def weights(tmp_path: Path, scene_data: ModuleType) -> Path:
    """Seeded XXS weights as .safetensors (the same model in every process)."""
    path = tmp_path / "xxs.safetensors"
    save_file(scene_data.seeded_encoder("moemae_landsat_xxs").state_dict(), path)
    return path


def _argv(inputs: list[Path] | list[str], out: Path, weights: Path) -> list[str]:
    return ["embed-scene", *map(str, inputs), "--out", str(out), "--weights", str(weights),
            "--model", "XXS", "--no-progress", "--threads", "1"]  # fmt: skip


def _files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


def test_summary_and_exit_status(
    scenes: list[Path], weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    band = next(scenes[1].glob("*_SR_B2.TIF"))
    band.write_bytes(b"not a TIFF")
    out = tmp_path / "maps"
    listing = tmp_path / "scenes.txt"
    listing.write_text("\n".join(str(p) for p in scenes) + "\n")
    assert main(_argv([listing], out, weights)) == 2  # stops at the damaged scene (default)
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and f"{band}" in captured.err
    assert "3 scenes" not in captured.out and "1 done" in captured.out
    assert main([*_argv([listing], out, weights), "--on-error", "skip"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("3 scenes: 1 done, 1 skipped (done before), 1 failed; ")
    assert lines[1].startswith(f"failed: {scenes[1].name}: ") and lines[-1] == str(
        out / "collection.json"
    )
    assert f"scene {scenes[1].name} failed (skipped)" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary["scenes"]] == ["skipped", "failed", "done"]


def test_ctrl_c_after_the_first_scene_then_resume(
    scenes: list[Path], weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real SIGINT once the first scene is finished: exit 130, that scene's outputs whole and
    verified, nothing of the others; the rerun embeds only the other two."""
    out = tmp_path / "maps"
    argv = _argv([str(tmp_path / "in" / "LC08_*")], out, weights)
    code, err = sigint_after(
        "torchgeo_moemae.scene.callback:SceneWriter._finish", argv, tmp_path / "ready"
    )
    assert code == 130, err
    assert err.splitlines()[-1] == "moemae embed-scene: interrupted" and "Traceback" not in err
    first = scenes[0].name
    names = {f"{first}.tif", f"{first}.png", f"{first}.json", "collection.json", "summary.json"}
    assert set(_files(out)) == names  # no partial file, nothing of the other scenes
    item = pystac.Item.from_file(str(out / f"{first}.json"))
    assert item.assets["embedding"].extra_fields["file:checksum"] == multihash_sha256(
        out / f"{first}.tif"
    )
    before = _files(out)
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("3 scenes: 2 done, 1 skipped (done before), 0 failed")
    after = _files(out)
    assert {k: after[k] for k in before if k.startswith(first)} == {
        k: v for k, v in before.items() if k.startswith(first)
    }
    assert len(after) == 3 * 3 + 2


def test_killed_process_leaves_no_partial_under_an_output_name(
    scenes: list[Path], weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "maps"
    argv = _argv(scenes, out, weights)

    def mid_work() -> None:  # the first map is being written
        assert [p for p in out.iterdir() if p.name.endswith(".partial")]

    code, _ = sigint_after(
        "torchgeo_moemae.scene.writer:EmbeddingWriter.write_row",
        argv,
        tmp_path / "ready",
        mid_work,
        sig=signal.SIGKILL,
    )
    assert code == -signal.SIGKILL
    assert all(p.name.startswith(".") for p in out.iterdir())  # only hidden partials remain
    assert main(argv) == 0  # removes them (their process is gone) and embeds every scene
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert len(list(out.glob("*.tif"))) == 3


def test_two_ddp_processes_write_every_scene_once_as_one_process(
    tmp_path: Path, scene_data: ModuleType, weights: Path
) -> None:
    """Lightning DDP (gloo) with 2 CPU processes, as a user launches it: 4 scenes sharded whole,
    each written once, the same maps as one process."""
    scenes = [
        scene_data.make_product(tmp_path / "in", path_row=f"00{i}00{i}", fill=None)
        for i in range(1, 5)
    ]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(_argv(scenes, one, weights)) == 0
    cmd = [
        str(Path(sys.executable).parent / "moemae"),
        *_argv(scenes, two, weights),
        "--device",
        "cpu",
        "--devices",
        "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert proc.stdout.startswith("4 scenes: 4 done, 0 skipped (done before), 0 failed")
    summary = json.loads((two / "summary.json").read_text())
    done = [(s["id"], s["rank"]) for s in summary["scenes"] if s["status"] == "done"]
    assert sorted(i for i, _ in done) == sorted(p.name for p in scenes)  # each once
    assert sorted(r for _, r in done) == [0, 0, 1, 1]  # whole scenes, two per rank
    for scene in scenes:
        with (
            rasterio.open(one / f"{scene.name}.tif") as a,
            rasterio.open(two / f"{scene.name}.tif") as b,
        ):
            assert a.transform == b.transform
            np.testing.assert_allclose(a.read(), b.read(), atol=1e-6, rtol=0)
    collection = pystac.Collection.from_file(str(two / "collection.json"))
    assert {i.id for i in collection.get_items()} == {p.name for p in scenes}
