"""``moemae analyze``: reconstruction figures, expert maps, the sparsity table, t-SNE, training curves."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..outputs import atomic_path, check_output
from .common import (
    add_common_arguments,
    add_dataset_arguments,
    add_overwrite_argument,
    add_weights_arguments,
    check_dataset_root,
    check_input,
    check_weights,
    make_datamodule,
    model_from_args,
    sample_time_for,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

EPILOG = """\
examples:
  moemae analyze sparsity --model S --out results/sparsity            # paper Table 9 (.md + .json)
  moemae analyze reconstruction --weights mae.safetensors --root data/ben --out figs/rec.png
  moemae analyze experts --weights export/ --root data/ben --layers 0,14 --out figs/experts
  moemae analyze tsne --embeddings emb/ben/test_cls --out figs/tsne.png
  moemae analyze curves --logs lightning_logs/version_0 --out figs/curves.png
"""


def _add_data(p: argparse.ArgumentParser) -> None:
    add_dataset_arguments(p)
    p.add_argument("--split", default="test")
    p.add_argument("--num-samples", type=int, default=4, help="images to show")
    p.add_argument("--seed", type=int, default=0)


def _analysis(sub: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """One ``moemae analyze`` subcommand; ``--threads``/``--debug`` work after its name too."""
    parser: argparse.ArgumentParser = sub.add_parser(name, **kwargs)
    add_common_arguments(parser, nested=True)
    add_overwrite_argument(parser)
    return parser


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Subcommands of ``moemae analyze``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = "Analysis figures and tables of a MoE-MAE (PNG, Markdown, JSON)."
    parser.epilog = EPILOG
    sub = parser.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)

    p = _analysis(sub, "sparsity", help="per-layer routing sparsity (paper Table 9)")
    p.add_argument("--model", default="S", help="S, XS or XXS (default: S)")
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json")

    p = _analysis(
        sub,
        "reconstruction",
        help="original / full reconstruction / masked input / masked reconstruction",
        description="Rows: samples. Columns: original RGB, reconstruction without masking, masked "
        "input, reconstruction from the visible patches (visible patches pasted from the original).",
    )
    add_weights_arguments(p, mae=True)
    _add_data(p)
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--out", type=Path, required=True, help="PNG path")

    p = _analysis(sub, "experts", help="per-expert contribution and ablation maps")
    add_weights_arguments(p)
    _add_data(p)
    p.add_argument("--layers", default="0", help="comma-separated layers (default: 0)")
    p.add_argument("--out", type=Path, required=True, help="output directory for PNGs")

    p = _analysis(sub, "tsne", help="t-SNE of stored embeddings coloured by class")
    p.add_argument("--embeddings", type=Path, required=True, help="a <split>_<pool> directory")
    p.add_argument("--max-points", type=int, default=3000)
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="PNG path")

    p = _analysis(sub, "curves", help="training curves from Lightning logs (CSV or TensorBoard)")
    p.add_argument(
        "--logs", type=Path, required=True, help="metrics.csv, an events file or a log dir"
    )
    p.add_argument("--out", type=Path, required=True, help="PNG path")


def _outputs(args: argparse.Namespace) -> list[Path]:
    """The files the chosen analysis writes."""
    if args.out is None:
        return []
    if args.analysis == "sparsity":
        return [args.out.with_suffix(".md"), args.out.with_suffix(".json")]
    if args.analysis == "experts":
        return [args.out / name for name in _expert_figures(args.layers)]
    return [args.out]


def _expert_figures(layers: str) -> list[str]:
    return [
        f"layer{int(layer):02d}_{kind}.png"
        for layer in layers.split(",")
        for kind in ("contribution", "ablation")
    ]


def check(args: argparse.Namespace) -> None:
    """Inputs and outputs of the chosen analysis, before anything is loaded."""
    if args.analysis in ("reconstruction", "experts"):
        check_weights(args)
        check_dataset_root(args)
    if args.analysis == "tsne":
        check_input(args.embeddings, "--embeddings", "folder")
    if args.analysis == "curves":
        check_input(args.logs, "--logs")
    if args.analysis == "experts":
        try:
            _expert_figures(args.layers)
        except ValueError as err:
            raise ValueError(
                f"--layers {args.layers!r}: expected comma-separated integers"
            ) from err
        check_output(args.out, folder=True, overwrite=True, what="--out")
    for path in _outputs(args):
        check_output(path, overwrite=args.overwrite, what="--out")


def _batch(args: argparse.Namespace, model: Any) -> tuple[dict[str, Any], str]:
    """The first ``--num-samples`` images of ``--split``, their time read as ``model``'s weights
    need, and what they are, for the caption."""
    from ..probe.embed import split_loader

    data = f"{args.dataset} {args.split} split ({args.root})"
    _status(f"reading {args.num_samples} images of the {data}")
    time = sample_time_for(args, model)
    dm = make_datamodule(args, batch_size=args.num_samples, time_source=time.get("time_source"))
    loader, aug = split_loader(dm, args.split, batch_size=args.num_samples, num_workers=0)
    batch = next(iter(loader))
    n = len(batch["image"])
    return (aug(batch) if aug is not None else batch), f"{data}, its first {n} images"


def _status(text: str) -> None:
    """A step of a long analysis, printed as it starts."""
    print(f"{text} ...", flush=True)


def _save(fig: Figure, path: Path) -> None:
    from ..analysis.figures import save_figure

    save_figure(fig, path)
    print(f"wrote {path}")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen analysis (without autograd)."""
    import torch

    with torch.no_grad():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.analysis == "sparsity":
        from ..analysis.sparsity import sparsity_report
        from ..models import create_encoder

        report = sparsity_report(create_encoder(args.model))
        print(report.to_markdown())
        if args.out is not None:
            with atomic_path(args.out.with_suffix(".md")) as partial:
                partial.write_text(report.to_markdown() + "\n")
            with atomic_path(args.out.with_suffix(".json")) as partial:
                report.save_json(partial)
            print(f"wrote {args.out.with_suffix('.md')} and .json")
        return 0
    if args.analysis == "curves":
        from ..analysis.curves import plot_training_curves

        _save(plot_training_curves(args.logs), args.out)
        return 0
    if args.analysis == "tsne":
        from ..analysis.embeddings_plot import plot_tsne
        from ..probe.embed import load_embeddings

        emb = load_embeddings(args.embeddings)
        shown = min(len(emb), args.max_points)
        _status(
            f"t-SNE of {shown} of {len(emb)} embeddings ({emb.features.shape[1]} dims, "
            f"perplexity {args.perplexity:g})"
        )
        fig = plot_tsne(
            emb.features,
            emb.labels,
            emb.manifest.get("classes"),
            args.max_points,
            args.perplexity,
            args.seed,
            title=f"t-SNE: {emb.manifest.get('dataset', '')} {emb.manifest.get('split', '')} "
            f"{emb.manifest.get('pool', '')}",
        )
        _save(fig, args.out)
        return 0
    from ..analysis.figures import label_figure
    from ..utils import batch_metadata

    _status(f"loading the {'MAE' if args.analysis == 'reconstruction' else 'encoder'}")
    model, weights = model_from_args(args, mae=args.analysis == "reconstruction")
    batch, data = _batch(args, model)
    meta = batch_metadata(batch)
    if args.analysis == "reconstruction":
        from ..analysis.reconstruction import plot_reconstruction

        mae = model
        fig = plot_reconstruction(
            mae,
            batch["image"],
            **meta,
            mask_ratio=args.mask_ratio,
            num_samples=args.num_samples,
            seed=args.seed,
        )
        _save(label_figure(fig, weights, data), args.out)
        return 0
    if args.analysis == "experts":
        from ..analysis.experts import (
            expert_ablation_maps,
            expert_contribution_maps,
            plot_expert_maps,
        )
        from ..models import MoEMAEEncoder

        encoder = model
        if not isinstance(encoder, MoEMAEEncoder):
            raise ValueError(f"expert maps need a MoE-MAE encoder, got model {args.model!r}")
        layers = [int(v) for v in args.layers.split(",")]
        _status(f"expert contribution maps of layers {args.layers}")
        contrib = expert_contribution_maps(encoder, batch["image"], **meta, layers=layers)
        ablation = expert_ablation_maps(
            encoder, batch["image"], **meta, layers=layers, progress=True
        )
        for layer in layers:
            for kind, maps in (("contribution", contrib), ("ablation", ablation)):
                fig = plot_expert_maps(
                    batch["image"], maps[layer], f"layer {layer}: expert {kind}", args.num_samples
                )
                _save(
                    label_figure(fig, weights, data),
                    Path(args.out) / f"layer{layer:02d}_{kind}.png",
                )
        return 0
    raise ValueError(f"unknown analysis {args.analysis!r}")
