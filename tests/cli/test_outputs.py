"""One output policy for every command: outputs checked before any work, kept unless --overwrite,
and no partial file under any name after an interruption (Ctrl-C) or on the next run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.interrupt import sigint_after
from torchgeo_moemae.cli import main
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls
from torchgeo_moemae.export import export_encoder
from torchgeo_moemae.models import create_mae
from torchgeo_moemae.scene import make_synthetic_landsat_product


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> content)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _no_partials(folder: Path) -> None:
    leftovers = [p for p in folder.rglob("*") if "partial" in p.name or p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A synthetic dataset, an XXS export, a Lightning checkpoint and embeddings of a first run."""
    base = tmp_path_factory.mktemp("outputs")
    root = make_synthetic_bigearthnet_ls(base / "ben", num_patches=40, seed=0)
    mae = create_mae("XXS")
    weights = export_encoder(mae, base / "export")
    checkpoint = base / "task.ckpt"
    torch.save(
        {
            "pytorch-lightning_version": "2.4.0",
            "state_dict": {f"model.{k}": v for k, v in mae.state_dict().items()},
            "hyper_parameters": {"model": "XXS", "mask_ratio": 0.75},
        },
        checkpoint,
    )
    emb = base / "emb"
    common = ["--root", str(root), "--num-workers", "0", "--threads", "1"]
    assert main(["embed", "--weights", str(weights), "--out", str(emb), *common]) == 0
    scene = make_synthetic_landsat_product(base / "scene", height=80, width=120)
    return {
        "base": base,
        "root": root,
        "weights": weights,
        "checkpoint": checkpoint,
        "emb": emb,
        "scene": scene,
    }


def _commands(ws: dict[str, Path], out: Path) -> dict[str, list[str]]:
    """Each command writing into ``out``."""
    data = ["--root", str(ws["root"]), "--threads", "1"]
    return {
        "embed": ["embed", "--weights", str(ws["weights"]), "--out", str(out), *data],
        "pack": ["pack", "--split", "test", "--out", str(out), *data],
        "export": ["export", str(ws["checkpoint"]), "--out", str(out)],
        "probe": ["probe", "--embeddings", str(ws["emb"]), "--out", str(out / "r.json")],
        "embed-scene": [
            "embed-scene",
            str(ws["scene"]),
            "--out",
            str(out / "map.tif"),
            "--weights",
            str(ws["weights"]),
            "--batch-size",
            "4",
            "--no-progress",
        ],
    }


def _forbid_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """The heavy work of each command fails: a refusal must come before it."""
    for target in (
        "torchgeo_moemae.models.create_encoder",
        "torchgeo_moemae.datasets.packed._write_images",
        "torchgeo_moemae.export.load_pretrain_checkpoint",
        "torchgeo_moemae.probe.api.fit_predict",
    ):
        monkeypatch.setattr(target, None)


@pytest.mark.parametrize("command", ["embed", "pack", "export", "probe"])
def test_existing_outputs_are_kept_unless_overwrite(
    command: str,
    workspace: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    argv = _commands(workspace, out)[command]
    assert main(argv) == 0
    before = _tree(out)
    capsys.readouterr()
    if command == "pack":  # a pack of the same content is reused as it is
        assert main(argv) == 0
        assert _tree(out) == before
        argv = [*argv, "--patch-size", "32"]
    _forbid_work(monkeypatch)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err, err
    assert _tree(out) == before


@pytest.mark.parametrize("command", ["embed", "pack", "export", "probe"])
def test_output_under_a_file_fails_before_any_work(
    command: str,
    workspace: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`moemae probe --out afile/r.json` computed the whole probe, then failed."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    _forbid_work(monkeypatch)
    assert main(_commands(workspace, afile / "out")[command]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{afile} is a file" in err, err


def test_embed_scene_existing_folder_fails_before_any_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`moemae embed-scene --out <existing folder>` embedded every window, then failed."""
    folder = tmp_path / "folder.tif"
    folder.mkdir()
    product = tmp_path / "missing-but-unread"
    product.mkdir()
    argv = ["embed-scene", str(product), "--out", str(folder), "--random-init", "--model", "XXS"]
    assert main(argv) == 2
    assert f"--out {folder} is a folder" in capsys.readouterr().err


def test_leftover_partials_are_removed_on_the_next_run(tmp_path: Path) -> None:
    """A killed `moemae embed` left features.partial.npy; a re-run did not remove it."""
    from torchgeo_moemae.outputs import check_output, partial_path

    out = tmp_path / "emb" / "train_cls"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    pid = int(dead.stdout)
    leftover = Path(str(partial_path(out)).replace(f"-{os.getpid()}-", f"-{pid}-"))
    leftover.mkdir(parents=True)
    (leftover / "features.npy").write_bytes(b"\0" * 1024)
    mine = partial_path(out)  # a partial of a live process (this one) is left alone
    mine.mkdir()
    check_output(out, folder=True)
    assert not leftover.exists() and mine.exists()


#: where a real Ctrl-C arrives in each command: after this function returns, partial output exists
SIGINT_AT = {
    "embed": "torchgeo_moemae.probe.embed:_allocate",
    "pack": "torchgeo_moemae.datasets.packed:file_sha256",
    "export": "torchgeo_moemae.export:save_file",
    "probe": "torchgeo_moemae.probe.api:fit_predict",
    "embed-scene": "torchgeo_moemae.scene.writer:EmbeddingWriter.write_row",
}


@pytest.mark.parametrize("command", sorted(SIGINT_AT))
def test_sigint_leaves_no_partial_and_keeps_previous_outputs(
    command: str, workspace: dict[str, Path], tmp_path: Path
) -> None:
    """A real Ctrl-C (SIGINT) in the middle of each command run with ``--overwrite``: no partial
    file under any name afterwards, the previous outputs intact."""
    out = tmp_path / "out"
    argv = _commands(workspace, out)[command]
    assert main(argv) == 0
    before = _tree(out)

    def mid_work() -> None:
        if command != "probe":  # the probe writes its one file only at the end
            assert [p for p in tmp_path.rglob("*") if "partial" in p.name]

    code, err = sigint_after(
        SIGINT_AT[command], [*argv, "--overwrite"], tmp_path / "ready", mid_work
    )
    assert code == 130, err
    assert "Traceback" not in err, err  # one line, not a traceback
    _no_partials(tmp_path)
    assert _tree(out) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["embed", "--weights", "missing.pth", "--out", "o"],
        ["embed-scene", "missing.tar", "--out", "o.tif"],
        ["export", "missing.ckpt", "--out", "o"],
        ["probe", "--embeddings", "missing", "--out", "o.json"],
        ["pack", "--root", "missing", "--out", "o"],
        ["analyze", "tsne", "--embeddings", "missing", "--out", "o.png"],
        ["quickstart", "--config", "missing.yaml"],
    ],
)
def test_wrong_path_is_reported_before_torch_is_imported(argv: list[str], tmp_path: Path) -> None:
    """A wrong path took 9-12 s to report: every command imported torch before reading it."""
    script = (
        "import sys\n"
        "from torchgeo_moemae.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "missing" in done.stderr, done.stderr


def test_quickstart_and_analyze_check_their_outputs_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier quickstart run is kept; an analysis figure under a file fails before any work."""
    monkeypatch.setattr("torchgeo_moemae.quickstart.run_quickstart", None)
    earlier = tmp_path / "qs"
    earlier.mkdir()
    (earlier / "metrics.json").write_text("{}")
    assert main(["quickstart", "--out", str(earlier)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("")
    argv = ["analyze", "sparsity", "--model", "XXS", "--out", str(afile / "table")]
    assert main(argv) == 2
    assert f"{afile} is a file" in capsys.readouterr().err


def test_pack_folders_get_ordinary_permissions(workspace: dict[str, Path], tmp_path: Path) -> None:
    """Pack folders were created 0700 (tempfile.mkdtemp)."""
    previous = os.umask(0o022)
    try:
        assert main(_commands(workspace, tmp_path / "packs")["pack"]) == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "packs" / "test").stat().st_mode & 0o777 == 0o755
