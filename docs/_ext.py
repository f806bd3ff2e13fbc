"""Text the docs compute at build time: the citation (from CITATION.cff) and model-size tables.

Numbers on the results page come from the installed package, not from hand-typed copies, so the
docs cannot drift from the code.
"""

from __future__ import annotations

import textwrap
from typing import Any


def _authors(people: list[dict[str, str]]) -> list[str]:
    """Display names of CFF persons (given + family names) and entities (``name``)."""
    return [p.get("name") or f"{p['given-names']} {p['family-names']}" for p in people]


def _bibtex_name(person: dict[str, str]) -> str:
    """``Family, Given`` for persons; entities in braces so BibTeX keeps them whole."""
    if "name" in person:
        return "{" + person["name"] + "}"
    return f"{person['family-names']}, {person['given-names']}"


def _bibtex(ref: dict[str, Any], key: str) -> str:
    kind = {"article": "article", "software": "software"}.get(ref.get("type", "misc"), "misc")
    fields = {
        "title": ref.get("title"),
        "author": " and ".join(_bibtex_name(p) for p in ref.get("authors", [])),
        "year": ref.get("year"),
        "journal": ref.get("journal"),
        "version": ref.get("version"),
        "doi": ref.get("doi"),
        "url": ref.get("url") or ref.get("repository-code"),
    }
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields.items() if v)
    return f"@{kind}{{{key},\n{body}\n}}"


def citation_rst(cff: dict[str, Any]) -> str:
    """reStructuredText for the citation page: the paper and the software, as text and BibTeX."""
    paper = cff["preferred-citation"]
    parts = [
        "The paper",
        "---------",
        "",
        f"{', '.join(_authors(paper['authors']))}. *{paper['title']}*."
        + "".join(f" {paper[k]}." for k in ("journal", "year") if paper.get(k))
        + (f" https://doi.org/{paper['doi']}" if paper.get("doi") else "")
        + (f" Code: {paper['repository-code']}" if paper.get("repository-code") else ""),
        "",
        ".. code-block:: bibtex",
        "",
        textwrap.indent(_bibtex(paper, "albughdadi_moemae"), "   "),
        "",
        "This package",
        "------------",
        "",
        f"{cff['title']} {cff['version']} ({cff.get('license', '')} license), by "
        f"{', '.join(_authors(cff['authors']))}.",
        "",
        ".. code-block:: bibtex",
        "",
        textwrap.indent(_bibtex({**cff, "type": "software"}, "torchgeo_moemae"), "   "),
    ]
    return "\n".join(parts) + "\n"


def _count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def model_tables_rst() -> str:
    """Parameter counts of the three sizes, counted on freshly built models."""
    from torchgeo_moemae.models import create_mae
    from torchgeo_moemae.models.registry import MODEL_SIZES

    rows = []
    for size in MODEL_SIZES:
        mae = create_mae(size)
        rows.append(
            f"   * - {size}\n     - {_count(mae.encoder):,}\n     - {_count(mae):,}\n"
            f"     - {mae.encoder.embed_dim}\n     - {len(mae.encoder.blocks)}"
        )
    head = textwrap.dedent(
        """\
        .. list-table:: Parameters of the models built by this package (counted during the docs build)
           :header-rows: 1

           * - Size
             - Encoder
             - MAE (encoder + decoder)
             - Width
             - Blocks
        """
    )
    return head + "\n".join(rows) + "\n"


def sparsity_rst() -> str:
    """Table 9 of the paper next to :func:`torchgeo_moemae.analysis.sparsity_report` of size S."""
    from torchgeo_moemae.analysis import sparsity_report
    from torchgeo_moemae.analysis.sparsity import PAPER_UNIQUE_EXPERT_PARAMS_K
    from torchgeo_moemae.models import create_mae

    report = sparsity_report(create_mae("S").encoder)
    lines = [
        ".. list-table:: Per-layer expert parameters: the paper (Table 9) and this package's S encoder",
        "   :header-rows: 1",
        "",
        "   * - Layer",
        "     - E",
        "     - k",
        "     - k/E",
        "     - Unique expert params, paper (K)",
        "     - Unique expert params, this package (K)",
    ]
    for row, paper in zip(report.layers, PAPER_UNIQUE_EXPERT_PARAMS_K, strict=True):
        lines += [
            f"   * - {row.layer}",
            f"     - {row.num_experts}",
            f"     - {row.top_k}",
            f"     - {row.k_over_e:.2f}",
            f"     - {paper:.1f}",
            f"     - {row.unique_expert_params / 1e3:.1f}",
        ]
    lines += [
        "   * - Total",
        "     -",
        "     -",
        "     -",
        f"     - {sum(PAPER_UNIQUE_EXPERT_PARAMS_K):.1f}",
        f"     - {report.unique_expert_params / 1e3:.1f}",
        "",
        "Computed for this package: a token activates "
        f"**{report.expert_active_fraction:.1%}** of the expert-specific FFN parameters "
        f"(paper: about 52 %) and **{report.encoder_active_fraction:.1%}** of all encoder "
        f"parameters (paper: about 81 %; {report.encoder_active_fraction_inference:.1%} without the "
        "gate-noise layers, which only act in training). ``moemae analyze sparsity`` prints the same "
        "table.",
    ]
    return "\n".join(lines) + "\n"


#: Per example file, the figures already put on its page.
_SCRAPED: dict[str, list[Any]] = {}


def scrape_detached_figures(
    block: Any, block_vars: dict[str, Any], gallery_conf: dict[str, Any]
) -> str:
    """sphinx-gallery scraper for figures that pyplot does not manage.

    The package's plotting functions return ``matplotlib.figure.Figure`` objects detached from
    pyplot (safe on headless servers), which the matplotlib scraper cannot see. This one saves
    every new such figure bound to a name in the example's globals, after each code block.
    """
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    seen = _SCRAPED.setdefault(str(block_vars["src_file"]), [])
    paths = []
    for value in list(block_vars["example_globals"].values()):
        if not isinstance(value, Figure) or any(value is fig for fig in seen):
            continue
        seen.append(value)
        # Runs before the matplotlib scraper, so pyplot's figures still have their manager; they
        # are left to that scraper (and remembered, as pyplot closes them afterwards).
        if value.canvas.manager is None:
            path = next(block_vars["image_path_iterator"])
            value.savefig(path, dpi=100)
            paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])
