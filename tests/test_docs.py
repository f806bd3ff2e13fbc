"""The documentation: the Sphinx build (warnings are errors, gallery examples executed) and every
Python code block of README.md and the user guide, run offline.

Code-block conventions (see docs/user_guide/index.rst):

* reStructuredText (``docs/user_guide/*.rst``): ``.. code-block:: python`` blocks run; a block runs
  unless the line before it (blank lines aside) is the comment ``.. skip: next``.
* Markdown (``README.md``): fenced blocks opened with ```` ```python ```` run; a block runs unless the
  line before it (blank lines aside) is ``<!-- skip -->``.

The blocks of one file run in order in one namespace (later blocks may use earlier names), in an
empty temporary working directory, with ``HF_HUB_OFFLINE=1``. Skipping is for what cannot run
offline on one CPU (Hub downloads/uploads, dataset downloads); :data:`MAX_SKIPPED` caps it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
USER_GUIDE = sorted((DOCS / "user_guide").glob("*.rst"))
README = REPO / "README.md"

#: Most code blocks that may opt out of execution, over README.md and the whole user guide.
MAX_SKIPPED = 4
RST_SKIP = ".. skip: next"
MD_SKIP = "<!-- skip -->"

#: Subpackages whose public names (``__all__``) must appear in the API reference.
API_PACKAGES = ("models", "datasets", "datamodules", "trainers", "probe", "analysis", "scene")


@dataclass
class CodeBlock:
    """One code block: where it starts (1-based line of its first code line) and its source."""

    path: Path
    line: int
    source: str
    skip: bool


def _preceded_by(lines: list[str], index: int, marker: str) -> bool:
    """Whether the nearest non-blank line above ``lines[index]`` is ``marker``."""
    for prev in reversed(lines[:index]):
        if prev.strip():
            return prev.strip() == marker
    return False


def rst_code_blocks(path: Path) -> list[CodeBlock]:
    """The ``.. code-block:: python`` blocks of a reStructuredText file."""
    lines = path.read_text().splitlines()
    blocks = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)\.\. code-block:: python\s*$", line)
        if not match:
            continue
        indent = len(match.group(1))
        j = i + 1
        while j < len(lines) and re.match(r"^\s+:[\w-]+:", lines[j]):  # directive options
            j += 1
        body: list[str] = []
        start = None
        for k in range(j, len(lines)):
            text = lines[k]
            if text.strip() and len(text) - len(text.lstrip()) <= indent:
                break
            if start is None and text.strip():
                start = k + 1
            body.append(text)
        source = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        blocks.append(CodeBlock(path, start or i + 1, source, _preceded_by(lines, i, RST_SKIP)))
    return blocks


def md_code_blocks(path: Path) -> list[CodeBlock]:
    """The ```` ```python ```` fenced blocks of a Markdown file."""
    lines = path.read_text().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if re.match(r"^```python\s*$", lines[i].strip()):
            end = next(
                (k for k in range(i + 1, len(lines)) if lines[k].strip() == "```"), len(lines)
            )
            source = textwrap.dedent("\n".join(lines[i + 1 : end])) + "\n"
            blocks.append(CodeBlock(path, i + 2, source, _preceded_by(lines, i, MD_SKIP)))
            i = end
        i += 1
    return blocks


def code_blocks(path: Path) -> list[CodeBlock]:
    """Python code blocks of README.md or a user-guide page."""
    return md_code_blocks(path) if path.suffix == ".md" else rst_code_blocks(path)


DOC_FILES = [README, *USER_GUIDE]
#: The files with at least one Python block to run (pages of shell commands have none).
RUNNABLE_FILES = [p for p in DOC_FILES if p.is_file() and any(not b.skip for b in code_blocks(p))]


def test_code_block_parsers(tmp_path: Path) -> None:
    """The extractors find blocks, their first line, options and skip markers."""
    rst = tmp_path / "page.rst"
    rst.write_text(
        "Title\n=====\n\n.. code-block:: python\n   :caption: x\n\n   a = 1\n\n   b = a + 1\n"
        "text\n\n.. skip: next\n\n.. code-block:: python\n\n   raise SystemExit\n"
        "\n.. code-block:: console\n\n   $ ls\n"
    )
    blocks = rst_code_blocks(rst)
    assert [(b.line, b.source, b.skip) for b in blocks] == [
        (7, "a = 1\n\nb = a + 1\n", False),
        (16, "raise SystemExit\n", True),
    ]
    md = tmp_path / "README.md"
    md.write_text(
        "# x\n\n```python\nx = 1\n```\n\n<!-- skip -->\n```python\ny\n```\n```bash\nls\n```\n"
    )
    assert [(b.line, b.source, b.skip) for b in md_code_blocks(md)] == [
        (4, "x = 1\n", False),
        (9, "y\n", True),
    ]


def test_skipped_code_blocks_are_few() -> None:
    """Only a handful of blocks (uploads, downloads) may opt out of execution."""
    blocks = [b for path in DOC_FILES if path.is_file() for b in code_blocks(path)]
    skipped = [f"{b.path.name}:{b.line}" for b in blocks if b.skip]
    assert sum(not b.skip for b in blocks) >= 10, "the user guide should have runnable examples"
    assert len(skipped) <= MAX_SKIPPED, f"too many skipped code blocks: {skipped}"


def test_readme_and_user_guide_have_runnable_blocks() -> None:
    """README.md and most user-guide pages are covered by :func:`test_code_blocks_run`."""
    assert README in RUNNABLE_FILES, "README.md has no runnable ```python block"
    assert len(RUNNABLE_FILES) >= 6, [p.name for p in RUNNABLE_FILES]


@pytest.mark.parametrize("path", RUNNABLE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_code_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every non-skipped Python block of the file runs, in order, in one namespace, offline."""
    blocks = [b for b in code_blocks(path) if not b.skip]
    import matplotlib.pyplot as plt
    import torch

    monkeypatch.chdir(tmp_path)
    # The blocks' models are tiny: one thread avoids OpenMP spin-waiting on a busy CI machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    try:
        for block in blocks:
            # Line numbers of tracebacks point into the documentation file.
            code = compile("\n" * (block.line - 1) + block.source, str(block.path), "exec")
            exec(code, namespace)
    finally:
        plt.close("all")
        torch.set_num_threads(threads)


def _public_objects() -> list[tuple[str, object]]:
    objects = []
    for pkg in API_PACKAGES:
        module = importlib.import_module(f"torchgeo_moemae.{pkg}")
        for name in module.__all__:
            objects.append((f"torchgeo_moemae.{pkg}.{name}", getattr(module, name)))
    return objects


def test_public_api_has_docstrings() -> None:
    """Every public class and function of the documented subpackages has a docstring."""
    missing = [
        name
        for name, obj in _public_objects()
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and not inspect.getdoc(obj)
    ]
    assert not missing, f"public objects without a docstring: {missing}"


@pytest.mark.slow
def test_docs_build(tmp_path: Path) -> None:
    """``sphinx-build -W`` succeeds on a copy of the docs; API pages, gallery figures are there.

    The copy keeps the build from writing gallery/autosummary output into the working tree.
    """
    for module in ("sphinx", "sphinx_gallery", "pydata_sphinx_theme"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[docs]')")
    src = tmp_path / "repo"
    ignore = shutil.ignore_patterns("_build", "gallery", "generated", "__pycache__")
    shutil.copytree(DOCS, src / "docs", ignore=ignore)
    shutil.copytree(REPO / "examples", src / "examples", ignore=ignore)
    shutil.copy(REPO / "CITATION.cff", src / "CITATION.cff")
    out = tmp_path / "html"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    result = subprocess.run(
        [*cmd, str(src / "docs"), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stderr[-8000:]}"

    # every public object is in the API reference
    from sphinx.util.inventory import InventoryFile

    with open(out / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", os.path.join)
    documented = {name for entries in inventory.values() for name in entries}
    missing = [
        name
        for name, obj in _public_objects()
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and name not in documented
    ]
    assert not missing, f"public classes/functions missing from the API reference: {missing}"
    for name in ("checkpoint.HF_HUB_ID", "metadata.METADATA_FIELDS", "registry.MODEL_SIZES"):
        assert f"torchgeo_moemae.models.{name}" in documented, name

    # every gallery example ran and its figures are on its page
    examples = sorted(p.stem for p in (REPO / "examples").glob("plot_*.py"))
    assert examples
    for stem in examples:
        page = (out / "gallery" / f"{stem}.html").read_text()
        images = re.findall(rf'src="[^"]*sphx_glr_{stem}_\d+\.png"', page)
        assert images, f"{stem}: no figure on its gallery page"
    # the citation page is rendered from CITATION.cff
    citation = (out / "citation.html").read_text()
    assert "Lightweight Metadata-Aware Mixture-of-Experts" in citation
    assert "10.48550/arXiv.2509.10919" in citation


def test_reference_vector_claims_name_the_hour_rule() -> None:
    """The ~2e-6 agreement with the reference vectors holds for one hour rule: the claims say which."""
    for path in (REPO / "README.md", DOCS / "results.rst"):
        text = " ".join(path.read_text().split())
        claim = text.index("2e-6")
        assert 'hour_encoding="utc"' in text[claim - 300 : claim + 300], path


def test_quickstart_page_names_the_config_the_run_uses() -> None:
    """``moemae quickstart`` reads its packaged config; the pages say so, not only the example copy."""
    from torchgeo_moemae.quickstart import DEFAULT_CONFIG

    packaged = DEFAULT_CONFIG.relative_to(REPO).as_posix()
    for path in (DOCS / "quickstart.rst", DOCS / "user_guide" / "pretraining.rst"):
        assert packaged in " ".join(path.read_text().split()), path
