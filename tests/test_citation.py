"""CITATION.cff names the paper (arXiv:2509.10919, 2025, DOI) and the docs page renders it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DOI = "10.48550/arXiv.2509.10919"


def _cff() -> dict:
    return yaml.safe_load((REPO / "CITATION.cff").read_text())


def test_preferred_citation_is_the_arxiv_paper() -> None:
    paper = _cff()["preferred-citation"]
    assert paper["doi"] == DOI
    assert paper["year"] == 2025
    assert "arXiv:2509.10919" in paper["journal"]
    assert paper["url"] == "https://arxiv.org/abs/2509.10919"
    assert [(a["given-names"], a["family-names"]) for a in paper["authors"]] == [
        ("Mohanad", "Albughdadi")
    ]


def test_docs_citation_page_shows_doi_and_year() -> None:
    spec = importlib.util.spec_from_file_location("docs_ext", REPO / "docs" / "_ext.py")
    assert spec is not None and spec.loader is not None
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    text = ext.citation_rst(_cff())
    paper_part = text.split("This package")[0]
    assert f"https://doi.org/{DOI}" in paper_part
    assert f"doi = {{{DOI}}}" in paper_part
    assert "year = {2025}" in paper_part
    assert "Mohanad Albughdadi" in paper_part
