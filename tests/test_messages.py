"""Messages a user reads say what is wrong in plain, correct words, and nothing else is printed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import timm

from tests.data.golden.make_golden import authors_state_dict
from torchgeo_moemae.cli import build_parser
from torchgeo_moemae.datasets import make_synthetic_bigearthnet_ls
from torchgeo_moemae.errors import PretrainedWeightsError, reported_in_one_line
from torchgeo_moemae.models import MoEMAEEncoder
from torchgeo_moemae.models.convert import convert_upstream_state_dict
from torchgeo_moemae.models.registry import MODEL_SIZES
from torchgeo_moemae.outputs import check_output

REPO = Path(__file__).resolve().parents[1]


def test_existing_outputs_agree_in_number(tmp_path: Path) -> None:
    names = ("model.safetensors", "config.json")
    for name in names:
        (tmp_path / name).write_text("")
    with pytest.raises(FileExistsError, match=r"config\.json already exist;"):
        check_output(tmp_path, folder=True, contents=names)
    with pytest.raises(FileExistsError, match=r"config\.json already exists;"):
        check_output(tmp_path, folder=True, contents=names[1:])


def test_too_deep_checkpoint_says_both_block_counts() -> None:
    """It said "has encoder.layers.8 but the model has 8 blocks": an index read as a count."""
    shallow = MoEMAEEncoder(**{**MODEL_SIZES["XXS"], "depth": 8})
    with pytest.raises(ValueError) as info:
        convert_upstream_state_dict(authors_state_dict("XXS"), shallow)
    assert str(info.value) == (
        "the checkpoint has 9 encoder.layers blocks (encoder.layers.0 to encoder.layers.8), "
        "the model has 8: wrong model size?"
    )


def test_timm_missing_weights_file_is_named(tmp_path: Path) -> None:
    """timm's FileNotFoundError has no text: the message ended ``from nope.pth: .``."""
    missing = tmp_path / "nope.pth"
    with pytest.raises(PretrainedWeightsError) as info:
        timm.create_model(
            "moemae_landsat_xxs", pretrained=True, pretrained_cfg_overlay=dict(file=str(missing))
        )
    assert str(info.value).startswith(f"pretrained_cfg_overlay file not found: {missing} (")


def _commented_commands() -> list[tuple[str, str]]:
    """``(file, command line)`` of every ``moemae`` command in the shipped configs' comments."""
    files = [*sorted((REPO / "configs").glob("*.yaml")), REPO / "examples" / "quickstart.yaml"]
    return [
        (file.name, line.lstrip("# ").strip())
        for file in files
        for line in file.read_text().splitlines()
        if re.match(r"#\s+moemae ", line)
    ]


@pytest.mark.parametrize(("file", "line"), _commented_commands())
def test_commands_in_config_comments_parse(file: str, line: str) -> None:
    """A config's comment showed ``moemae export CKPT DIR``, a form the command does not take."""
    argv = shlex.split(line, comments=True)[1:]
    try:
        build_parser(argv[0]).parse_args(argv)
    except SystemExit:
        pytest.fail(f"{file}: `{line}` is not a valid moemae command line")


def _torchgeo(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``torchgeo ARGV`` as a user runs it: TorchGeo's command, a fresh process."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("torchgeo")), *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
    )


@pytest.mark.slow  # a torchgeo process: about 20 s on the shared 2-core machine
def test_torchgeo_fit_prints_no_lightning_noise(tmp_path: Path) -> None:
    """Every `torchgeo fit` printed Lightning's notes about itself: TensorBoard not installed,
    a litlogger advertisement, its own use of torch's deprecated LeafSpec."""
    root = make_synthetic_bigearthnet_ls(tmp_path / "data", num_patches=24)
    argv = [
        "fit",
        "--config",
        str(REPO / "examples" / "quickstart.yaml"),
        f"--data.init_args.root={root}",
    ]
    argv += ["--data.init_args.batch_size=2", "--trainer.fast_dev_run=1"]
    done = _torchgeo(argv, tmp_path)
    assert done.returncode == 0, done.stderr
    printed = done.stdout + done.stderr
    for noise in ("tensorboardX", "litlogger", "LeafSpec"):
        assert noise not in printed, printed


@pytest.mark.slow  # a torchgeo process: about 10 s on the shared 2-core machine
def test_offline_fine_tune_error_is_one_line(tmp_path: Path) -> None:
    """jsonargparse buried the clear message in a 100-line traceback ending in "Does not validate
    against any of the Union subtypes"."""
    config = REPO / "configs" / "finetune_bigearthnet_ls.yaml"
    argv = ["fit", "--config", str(config), f"--data.init_args.root={tmp_path}"]
    done = _torchgeo(argv, tmp_path, HF_HOME=str(tmp_path / "empty_hf_cache"))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "torchgeo: error: Could not load pretrained weights for 'moemae_landsat'"
    )
    assert "HF_HUB_OFFLINE" in last and "Traceback" not in done.stderr, done.stderr


def test_uncaught_input_error_of_a_task_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error stays an exception for code that catches it; uncaught (the wrapped error
    jsonargparse raises, caused by it), Python prints one line instead of the traceback."""
    tracebacks: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: tracebacks.append(value))
    monkeypatch.setattr(sys, "argv", ["torchgeo", "fit"])
    with pytest.raises(ValueError, match="Union subtypes") as info:
        try:
            with reported_in_one_line():
                raise FileNotFoundError("weights not found: x.pth")
        except FileNotFoundError as err:
            raise ValueError("Does not validate against any of the Union subtypes") from err
    sys.excepthook(info.type, info.value, None)
    assert capsys.readouterr().err == "torchgeo: error: weights not found: x.pth\n"
    other = RuntimeError("a bug")
    sys.excepthook(RuntimeError, other, None)
    assert tracebacks == [other]
