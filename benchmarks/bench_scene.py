"""Embedding a whole Landsat scene: windows/s, minutes per scene and peak memory of ``embed_scene``.

Writes a synthetic, georeferenced Collection 2 Level-2 product (default full size: 7,800 x 7,600 px,
7 uint16 bands, deflate-tiled like USGS's) to a temporary folder, then measures separately:

* reading: the strip reader (one 40-row strip of all 7 bands per grid row) against TorchGeo's
  ``GridGeoSampler`` + ``RasterDataset`` (one query per window) on the same windows;
* reprojection: the window centres' lat/lon (pyproj, one vectorised call per grid row);
* model: ``forward_features`` on one batch, per MoE dispatch (``routed``/``fused``);
* the whole ``embed_scene`` (read, reproject, embed, write the COG and the quicklook), in wall
  time and in CPU time (all threads): on a machine shared with other jobs (see the load average
  printed) wall time overstates what an idle machine needs, CPU time does not,

and prints a table and writes JSON. Peak RSS is the process maximum (``getrusage``).

``--crop`` instead times ``embed_scene`` on the committed real crop (``docs/data/landsat8-l2-scene``)
in child processes, one per round (model built and warmed up once, then ``--repeats`` timed runs);
with ``--baseline REV`` the rounds alternate between this checkout and the package as it was at git
revision ``REV`` (extracted with ``git archive``), so both are measured in one run, interleaved, on
the same machine load.

``--scenes N --devices D`` instead writes N synthetic scenes (``--size``, default 600 x 800 px) and
embeds them all with ``moemae embed-scene`` (Lightning's predict loop) in 1 process and in D DDP
processes (gloo on the CPU, ``--threads`` torch threads each), alternating over ``--rounds``; the
windows/s are each run's summary (embedded windows over the predict loop's wall time, process
start-up and model loading excluded). On a GPU machine ``--device cuda`` runs the same on GPUs.

Examples::

    python benchmarks/bench_scene.py                   # full scene, stride 40 (~37,000 windows)
    python benchmarks/bench_scene.py --quick           # 200 x 240 px, seconds (used by the tests)
    python benchmarks/bench_scene.py --threads 2 --dispatch fused --json scene.json
    python benchmarks/bench_scene.py --crop --baseline d8423fa --threads 1 --json crop.json
    python benchmarks/bench_scene.py --scenes 4 --devices 2 --threads 1 --json ddp.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from torch import Tensor

import torchgeo_moemae  # noqa: F401  (registers the timm models)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, also when loaded by path
from _common import dense_kernel_seconds, set_dispatch

from torchgeo_moemae.scene import (
    LandsatProduct,
    WindowGrid,
    embed_scene,
    make_synthetic_landsat_product,
)
from torchgeo_moemae.scene.windows import scene_blocks

FULL = (7800, 7600)
QUICK = (200, 240)
REPO = Path(__file__).resolve().parents[1]
#: the committed real crop (267 x 433 px, UTM 30N)
CROP = REPO / "docs" / "data" / "landsat8-l2-scene"

#: a child timing ``embed_scene`` on the crop: argv = package root or "", model, stride, batch size,
#: threads, repeats; prints one JSON line {"package": file, "windows": n, "seconds": [...]}
_CROP_CHILD = """
import json, sys, tempfile, time
from pathlib import Path
root, model, stride, batch, threads, repeats = sys.argv[1:7]
if root:
    sys.path.insert(0, root)
import rasterio, timm, torch
import torchgeo_moemae
from torchgeo_moemae.scene import embed_scene
assert not root or torchgeo_moemae.__file__.startswith(root), torchgeo_moemae.__file__
torch.set_num_threads(int(threads))
torch.manual_seed(0)
encoder = timm.create_model(model).eval()
crop = Path(sys.argv[7])
seconds = []
with tempfile.TemporaryDirectory() as tmp:
    for run in range(int(repeats) + 1):  # the first run warms up
        out = Path(tmp) / f"emb{run}.tif"
        start = time.perf_counter()
        embed_scene(crop, out, encoder, stride=int(stride), batch_size=int(batch),
                    progress=False, quicklook=False)
        seconds.append(time.perf_counter() - start)
    with rasterio.open(out) as src:
        windows = src.width * src.height
print(json.dumps({"package": torchgeo_moemae.__file__, "windows": windows, "seconds": seconds[1:]}))
"""


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_reading(product: Path, stride: int, max_rows: int) -> dict[str, float]:
    """Windows/s of the strip reader and of GridGeoSampler queries on the first ``max_rows`` rows."""
    from torchgeo.datasets import RasterDataset
    from torchgeo.samplers import GridGeoSampler

    from torchgeo_moemae.bands import BANDS

    reader = LandsatProduct(product)
    grid = WindowGrid(reader.height, reader.width, reader.transform, reader.crs, stride=stride)
    rows = min(max_rows, grid.rows)

    class Rows(WindowGrid):  # the first `rows` grid rows only
        @property
        def rows(self) -> int:
            return rows

    start = time.perf_counter()
    strip = sum(len(b.index) for b in scene_blocks(reader, Rows(**vars(grid)), 256))
    strip_s = time.perf_counter() - start
    start = time.perf_counter()
    for row in range(grid.rows):
        grid.latlon(row)
    lat_s = time.perf_counter() - start

    class LandsatSR(RasterDataset):
        filename_glob = "LC08_*_SR_B1.TIF"
        filename_regex = r"^LC08_L2SP_\d{6}_(?P<date>\d{8})_\d{8}_\d{2}_T1_(?P<band>SR_B\d)\.TIF$"
        separate_files = True
        all_bands = BANDS

    dataset = LandsatSR(paths=product)
    sampler = GridGeoSampler(dataset, size=40, stride=stride)
    start = time.perf_counter()
    n = 0
    for query in sampler:
        dataset[query]
        n += 1
        if n == strip:
            break
    grid_s = time.perf_counter() - start
    reader.close()
    return {
        "windows": strip,
        "strip_reader_windows_per_s": strip / strip_s,
        "gridgeosampler_windows_per_s": n / grid_s,
        "latlon_all_rows_s": lat_s,
    }


def model_step(model: str, batch_size: int, dispatch: str) -> Callable[[], Tensor]:
    """One ``forward_features`` call of ``model`` (eval, ``dispatch``) on a random batch of windows."""
    encoder = timm.create_model(model).eval()
    set_dispatch(encoder, dispatch)
    x = torch.randn(batch_size, 7, 40, 40)
    meta = dict(
        lat=torch.full((batch_size,), 53.0),
        lon=torch.full((batch_size,), -3.0),
        time=torch.full((batch_size,), 1.6e9, dtype=torch.float64),
    )

    def step() -> Tensor:
        with torch.inference_mode():
            return encoder.forward_features(x, **meta)

    return step


def bench_model(model: str, batch_size: int, dispatch: str) -> float:
    """Windows/s of ``forward_features`` on one random batch (median of 3)."""
    step = model_step(model, batch_size, dispatch)
    step()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return batch_size / sorted(times)[1]


def model_kernel_floor(model: str, batch_size: int) -> float:
    """Windows/s that the matmul/attention kernels of ``forward_features`` alone would allow
    (routed dispatch: the fewest multiply-adds; see ``_common.dense_kernel_seconds``)."""
    return batch_size / dense_kernel_seconds(model_step(model, batch_size, "routed"))


def extract_revision(rev: str, into: Path) -> Path:
    """The package as it was at git revision ``rev``, extracted under ``into``; returns its root."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "torchgeo_moemae"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def crop_round(root: Path | None, args: argparse.Namespace) -> dict:
    """One child process timing ``embed_scene`` on the crop (``root``: another package tree)."""
    argv = [str(root or ""), args.model, str(args.stride), str(args.batch_size)]
    argv += [str(args.threads), str(args.repeats), str(CROP)]
    proc = subprocess.run(
        [sys.executable, "-c", _CROP_CHILD, *argv], check=True, capture_output=True, text=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_crop(args: argparse.Namespace) -> dict:
    """Windows/s of ``embed_scene`` on the real crop, this checkout (and ``--baseline``)."""
    trees = {"this checkout": None}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        if args.baseline:
            trees[f"baseline {args.baseline}"] = extract_revision(args.baseline, Path(tmp))
        loads, seconds, windows = [], {name: [] for name in trees}, {}
        for _ in range(args.rounds):
            for name, root in trees.items():
                loads.append(os.getloadavg()[0])
                result = crop_round(root, args)
                seconds[name] += result["seconds"]
                windows[name] = result["windows"]
    rates = {name: windows[name] / statistics.median(s) for name, s in seconds.items()}
    result = {
        "crop": str(CROP.relative_to(REPO)),
        "model": args.model,
        "stride": args.stride,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "windows": windows,
        "seconds": seconds,
        "windows_per_s": rates,
        "load_average_1min": loads,
        "cpu_count": os.cpu_count(),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
    }
    rows = [
        (name, f"{rate:.1f} windows/s (median of {len(seconds[name])} runs)")
        for name, rate in rates.items()
    ]
    if args.baseline:
        ratio = rates["this checkout"] / rates[f"baseline {args.baseline}"]
        result["ratio_to_baseline"] = ratio
        rows.append(("this checkout / baseline", f"{ratio:.3f}"))
    rows.append(("load average", f"{min(loads):.1f}..{max(loads):.1f} on {os.cpu_count()} cores"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return result


def bench_devices(args: argparse.Namespace) -> dict:
    """Windows/s of ``moemae embed-scene`` over ``--scenes`` scenes in 1 and ``--devices`` processes."""
    height, width = args.size or (600, 800)
    moemae = str(Path(sys.executable).parent / "moemae")
    counts = sorted({1, args.devices})
    runs: dict[int, list[dict]] = {d: [] for d in counts}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        scenes = [
            str(
                make_synthetic_landsat_product(Path(tmp) / "in", height, width, path_row=f"{i:06d}")
            )
            for i in range(args.scenes)
        ]
        for r in range(args.rounds):
            for devices in counts:
                out = Path(tmp) / f"out{devices}_{r}"
                cmd = [moemae, "embed-scene", *scenes, "--out", str(out), "--random-init"]
                cmd += ["--model", args.model, "--batch-size", str(args.batch_size)]
                cmd += ["--stride", str(args.stride), "--device", args.device]
                cmd += ["--devices", str(devices), "--threads", str(args.threads * devices)]
                cmd += ["--no-progress", "--no-quicklook"]
                load = os.getloadavg()[0]
                env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
                subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
                summary = json.loads((out / "summary.json").read_text())
                runs[devices].append(
                    {
                        "windows": summary["windows_embedded"],
                        "seconds": summary["seconds"],
                        "windows_per_s": summary["windows_per_s"],
                        "load_average_1min": load,
                    }
                )
    rates = {d: statistics.median(run["windows_per_s"] for run in runs[d]) for d in counts}
    result = {
        "scenes": args.scenes,
        "scene_px": [height, width],
        "model": args.model,
        "stride": args.stride,
        "batch_size": args.batch_size,
        "device": args.device,
        "threads_per_process": args.threads,
        "rounds": args.rounds,
        "runs": {str(d): runs[d] for d in counts},
        "windows_per_s": {str(d): rates[d] for d in counts},
        "speedup": rates[args.devices] / rates[1],
        "cpu_count": os.cpu_count(),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
    }
    loads = [run["load_average_1min"] for d in counts for run in runs[d]]
    rows = [
        (
            f"{d} process{'es' if d > 1 else ''}",
            f"{rates[d]:.1f} windows/s (median of {args.rounds})",
        )
        for d in counts
    ]
    rows.append((f"{args.devices} / 1", f"{result['speedup']:.2f}x"))
    rows.append(("load average", f"{min(loads):.1f}..{max(loads):.1f} on {os.cpu_count()} cores"))
    width_ = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width_}}  {value}")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"a {QUICK[0]}x{QUICK[1]} px scene")
    parser.add_argument(
        "--size", type=int, nargs=2, metavar=("H", "W"), help="another scene size in px"
    )
    parser.add_argument("--model", default="moemae_landsat", help="default: %(default)s (S)")
    parser.add_argument("--stride", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--dispatch", default="auto", choices=["auto", "routed", "fused"])
    parser.add_argument(
        "--model-batch", type=int, default=64, help="batch of the model-only timing"
    )
    parser.add_argument("--reader-rows", type=int, default=3, help="grid rows for the reader race")
    parser.add_argument("--json", type=Path, default=Path("bench_scene.json"))
    parser.add_argument("--workdir", type=Path, help="keep the scene here (default: temp dir)")
    parser.add_argument("--crop", action="store_true", help="time embed_scene on the real crop")
    parser.add_argument("--baseline", metavar="REV", help="--crop: also time git revision REV")
    parser.add_argument(
        "--rounds", type=int, default=3, help="--crop/--scenes: child processes per variant"
    )
    parser.add_argument("--repeats", type=int, default=3, help="--crop: timed runs per child")
    parser.add_argument("--scenes", type=int, help="time N scenes in 1 and --devices processes")
    parser.add_argument("--devices", type=int, default=2, help="--scenes: DDP processes")
    parser.add_argument("--device", default="cpu", help="--scenes: cpu or cuda")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.crop or args.scenes:
        result = bench_crop(args) if args.crop else bench_devices(args)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"-> {args.json}")
        return result
    height, width = args.size or (QUICK if args.quick else FULL)

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        start = time.perf_counter()
        product = make_synthetic_landsat_product(tmp, height, width)
        write_s = time.perf_counter() - start
        reading = bench_reading(product, args.stride, args.reader_rows)
        model = {d: bench_model(args.model, args.model_batch, d) for d in ("routed", "fused")}
        encoder = timm.create_model(args.model).eval()
        set_dispatch(encoder, args.dispatch)
        load = os.getloadavg()[0]
        start, cpu = time.perf_counter(), time.process_time()
        out = embed_scene(
            product, Path(tmp) / "emb.tif", encoder, stride=args.stride, batch_size=args.batch_size,
            progress=sys.stderr.isatty(),
        )  # fmt: skip
        total_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
        reader = LandsatProduct(product)
        grid = WindowGrid(
            reader.height, reader.width, reader.transform, reader.crs, stride=args.stride
        )
        reader.close()
        n = grid.rows * grid.cols
        size_mb = out.stat().st_size / 2**20
    peak_mb = peak_rss_mb()  # before the kernel floor, whose allocator setting keeps memory
    floor_windows_per_s = model_kernel_floor(args.model, args.model_batch)

    result = {
        "scene_px": [height, width],
        "stride": args.stride,
        "windows": n,
        "model": args.model,
        "dispatch": args.dispatch,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "write_synthetic_scene_s": write_s,
        "reading": reading,
        "model_windows_per_s": model,
        "kernel_floor_windows_per_s": floor_windows_per_s,
        "kernel_floor_minutes_per_scene": FULL[0]
        * FULL[1]
        / (height * width)
        * n
        / floor_windows_per_s
        / 60,
        "embed_scene_s": total_s,
        "windows_per_s": n / total_s,
        "cpu_s": cpu_s,
        "windows_per_cpu_s": n / cpu_s,
        "load_average_1min": load,
        "cpu_count": os.cpu_count(),
        "minutes_per_scene": total_s / 60 * (FULL[0] * FULL[1]) / (height * width),
        "peak_rss_mb": peak_mb,
        "output_mb": size_mb,
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
    }
    rows = [
        ("scene", f"{height} x {width} px, stride {args.stride}: {n} windows"),
        ("strip reader", f"{reading['strip_reader_windows_per_s']:.0f} windows/s"),
        ("GridGeoSampler", f"{reading['gridgeosampler_windows_per_s']:.0f} windows/s"),
        ("lat/lon, all rows", f"{reading['latlon_all_rows_s']:.3f} s"),
        *((f"model ({d})", f"{v:.1f} windows/s") for d, v in model.items()),
        (
            "matmul/attention kernels alone",
            f"{floor_windows_per_s:.1f} windows/s: no faster than "
            f"{result['kernel_floor_minutes_per_scene']:.1f} min per full scene on these kernels",
        ),
        ("embed_scene", f"{total_s:.1f} s, {n / total_s:.1f} windows/s ({args.dispatch})"),
        ("CPU time", f"{cpu_s:.1f} s: {n / cpu_s:.1f} windows per CPU-second"),
        ("load average", f"{load:.1f} on {os.cpu_count()} cores (shared machine: slower)"),
        (
            "minutes per full scene",
            f"{result['minutes_per_scene']:.1f} (extrapolated by area if smaller)",
        ),
        ("peak RSS", f"{result['peak_rss_mb']:.0f} MiB"),
        ("output", f"{size_mb:.1f} MiB"),
    ]
    width_ = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width_}}  {value}")
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.json}")
    return result


if __name__ == "__main__":
    main()
