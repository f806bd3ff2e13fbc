"""Messages a user reads say what is wrong in plain, correct words."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import timm

from tests.data.golden.make_golden import authors_state_dict
from torchgeo_moemae.cli import build_parser
from torchgeo_moemae.models import MoEMAEEncoder
from torchgeo_moemae.models.convert import convert_upstream_state_dict
from torchgeo_moemae.models.registry import MODEL_SIZES
from torchgeo_moemae.outputs import check_output


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
    with pytest.raises(FileNotFoundError) as info:
        timm.create_model(
            "moemae_landsat_xxs", pretrained=True, pretrained_cfg_overlay=dict(file=str(missing))
        )
    assert str(info.value).startswith(f"pretrained_cfg_overlay file not found: {missing} (")


def _commented_commands() -> list[tuple[str, str]]:
    """``(file, command line)`` of every ``moemae`` command in the shipped configs' comments."""
    root = Path(__file__).resolve().parents[1]
    files = [*sorted((root / "configs").glob("*.yaml")), root / "examples" / "quickstart.yaml"]
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
