"""The shared CLI helper: one-line user errors (exit 2), --debug, --threads, dataset options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import torch

from torchgeo_moemae.cli import main
from torchgeo_moemae.cli.common import (
    MAX_DEFAULT_THREADS,
    add_common_arguments,
    add_dataset_arguments,
    default_threads,
    make_datamodule,
    run_command,
)
from torchgeo_moemae.export import export_encoder
from torchgeo_moemae.models import create_mae


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    add_dataset_arguments(parser)
    return parser.parse_args(list(argv))


def _one_line_error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"moemae {command}: error: "), err
    return err


def test_wrong_size_weights_and_missing_files_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xxs = export_encoder(create_mae("XXS"), tmp_path / "xxs")
    out = ["--out", str(tmp_path / "emb"), "--root", str(tmp_path)]
    assert main(["embed", "--model", "S", "--weights", str(xxs), *out]) == 2
    assert "moemae_landsat_xxs (XXS)" in _one_line_error(capsys, "embed")
    assert main(["embed", "--weights", str(tmp_path / "missing.pth"), *out]) == 2
    assert "missing.pth does not exist" in _one_line_error(capsys, "embed")
    assert main(["export", str(tmp_path / "no.ckpt"), "--out", str(tmp_path / "out")]) == 2
    assert "no.ckpt does not exist" in _one_line_error(capsys, "export")
    with pytest.raises(FileNotFoundError):
        main(["export", str(tmp_path / "no.ckpt"), "--out", str(tmp_path / "out"), "--debug"])


def test_read_only_output_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def run(args: argparse.Namespace) -> int:
        raise PermissionError(13, "Permission denied", "/read-only/out/model.safetensors")

    args = _args("--threads", "0")
    args.command = "export"
    assert run_command(run, args) == 2
    assert "Permission denied" in _one_line_error(capsys, "export")
    args.debug = True
    with pytest.raises(PermissionError):
        run_command(run, args)


def test_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    assert 1 <= default_threads() <= MAX_DEFAULT_THREADS
    seen: list[int] = []
    args = _args("--threads", "3")
    args.command = "x"
    assert run_command(lambda a: seen.append(torch.get_num_threads()) or 0, args) == 0
    assert seen == [3]


def test_threads_limit_scikit_learns_openmp_too() -> None:
    """--threads set torch's threads only: scikit-learn's t-SNE kept one OpenMP thread per core,
    spin-waiting on a busy machine (a 6-point t-SNE took 25 s instead of 0.1 s)."""
    import sklearn.manifold  # noqa: F401  (loads scikit-learn's OpenMP runtime)
    from threadpoolctl import threadpool_info

    seen: list[set[int]] = []
    args = _args("--threads", "1")
    args.command = "x"
    assert (
        run_command(lambda a: seen.append({p["num_threads"] for p in threadpool_info()}), args) == 0
    )
    assert seen == [{1}]


def test_dataset_options_reach_the_datamodule(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "torchgeo_moemae.datamodules.BigEarthNetLSDataModule", lambda **kw: made.append(kw)
    )
    make_datamodule(_args("--root", "r", "--on-error", "skip"), batch_size=4)
    make_datamodule(_args("--max-fill-fraction", "0.5"))
    assert made[0] == {
        "root": Path("r"),
        "download": False,
        "on_error": "skip",
        "max_fill_fraction": None,
        "batch_size": 4,
    }
    assert made[1]["max_fill_fraction"] == 0.5 and made[1]["on_error"] == "raise"


@pytest.mark.parametrize("command", ["embed", "analyze"])
def test_dataset_commands_offer_the_options(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [command, "reconstruction", "--help"] if command == "analyze" else [command, "--help"]
    with pytest.raises(SystemExit):
        main(argv)
    out = capsys.readouterr().out
    assert "--on-error {raise,skip}" in out and "--max-fill-fraction F" in out
    assert "--threads" in out and "--debug" in out


def test_ctrl_c_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    args = argparse.Namespace(command="embed", threads=0, debug=False)
    assert run_command(interrupted, args) == 130
    assert capsys.readouterr().err == "moemae embed: interrupted\n"
    with pytest.raises(KeyboardInterrupt):  # --debug shows the traceback
        run_command(interrupted, argparse.Namespace(command="embed", threads=0, debug=True))
