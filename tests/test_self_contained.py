"""The repository stands on its own: no citation of documents or issue numbers a user cannot
see, and the fidelity page the code cites is there and in the docs' table of contents."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("torchgeo_moemae", "docs", "tests", "examples", "configs", "benchmarks")
OUTSIDE = re.compile(r"SPEC|[Ii]ssue ?#?[0-9]|the issue")
FIDELITY = "docs/user_guide/fidelity.rst"


def _texts() -> list[Path]:
    files = [REPO / "README.md"]
    for folder in FOLDERS:
        files += [
            p
            for p in (REPO / folder).rglob("*")
            if p.suffix in {".py", ".rst", ".md", ".yaml", ".txt"} and "_build" not in p.parts
        ]
    return files


def test_no_reference_to_documents_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    hits = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in _texts()
        if path.resolve() != this
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert hits == []


def test_cited_docs_pages_exist_and_are_in_the_toctree() -> None:
    cited = {
        match
        for path in _texts()
        for match in re.findall(r"docs/user_guide/\w+\.rst", path.read_text(errors="replace"))
    }
    assert FIDELITY in cited
    for page in cited:
        assert (REPO / page).is_file(), page
    index = (REPO / "docs" / "user_guide" / "index.rst").read_text()
    assert re.search(r"^\s+fidelity$", index, re.M)
