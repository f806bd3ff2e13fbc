"""Sphinx configuration of the torchgeo-moemae documentation.

Builds offline: no intersphinx, no remote images. The gallery (``../examples/plot_*.py``) runs
during the build on the built-in synthetic dataset, so ``sphinx-build -W`` also checks that every
example still works.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

import torchgeo_moemae

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))  # for _ext

from _ext import citation_rst, model_tables_rst, sparsity_rst  # noqa: E402

# The build is offline by design; examples and autodoc must never reach the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# The gallery's models are tiny: one intra-op thread is as fast on an idle machine and several times
# faster on a busy one, where OpenMP threads spin-wait (as measured for `moemae quickstart`).
torch.set_num_threads(1)

project = "torchgeo-moemae"
author = "torchgeo-moemae developers"
copyright = "torchgeo-moemae developers"
version = release = torchgeo_moemae.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "gallery/*.ipynb", "gallery/*.py", "gallery/*.zip", "**.md5"]
templates_path: list[str] = []

# -- autodoc ------------------------------------------------------------------------------------
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_class_signature = "separated"
autodoc_preserve_defaults = True
autosummary_generate = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
nitpicky = False

# -- HTML ---------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"torchgeo-moemae {release}"
html_static_path: list[str] = []
html_theme_options: dict[str, Any] = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars: dict[str, list[str]] = {"index": [], "installation": [], "quickstart": []}
html_show_sourcelink = False

# -- sphinx-gallery -----------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": str(DOCS / "gallery"),
    # examples/ also holds configs of the CLI (e.g. quickstart.yaml): only plot_*.py scripts are
    # gallery examples; every other .py file there is ignored, not rendered.
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"/(?!plot_)[^/]*\.py$",
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "plot_gallery": "True",
    "remove_config_comments": True,
    "matplotlib_animations": False,
    # the package returns pyplot-free figures; _ext collects those as well
    "image_scrapers": ("_ext.scrape_detached_figures", "matplotlib"),
    "reset_modules": ("matplotlib", "seaborn"),
    "show_memory": False,
    "show_signature": False,
    # timings would be written into the source tree (docs/sg_execution_times.rst)
    "write_computation_times": False,
}


def _citation() -> dict[str, Any]:
    with open(ROOT / "CITATION.cff") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


#: Generated text substituted into pages at read time (``.. generated:: NAME`` lines).
_GENERATED = {
    "citation": lambda: citation_rst(_citation()),
    "model-tables": model_tables_rst,
    "sparsity": sparsity_rst,
}


def _substitute(app: Any, docname: str, source: list[str]) -> None:
    """Replace ``.. generated:: NAME`` lines with text computed from the package / CITATION.cff."""
    lines = source[0].splitlines()
    if not any(line.startswith(".. generated:: ") for line in lines):
        return
    out = []
    for line in lines:
        if line.startswith(".. generated:: "):
            out.append(_GENERATED[line.removeprefix(".. generated:: ").strip()]())
        else:
            out.append(line)
    source[0] = "\n".join(out) + "\n"


def setup(app: Any) -> None:
    """Register the read-time substitutions."""
    app.connect("source-read", _substitute)
