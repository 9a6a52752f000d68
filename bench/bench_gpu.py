"""The GPU run (issue 12): a FOCUS-sized synthetic release, converted, and the paper preset evaluated on it.

On the device machine (one GPU, many cores), from the repository root, after bench/gpu.sh has installed
what the machine lacks:

    python bench/bench_gpu.py                        # 24,000 web-photo-sized JPEGs, the paper's five models
    python bench/bench_gpu.py --images 200 --models test_resnet test_efficientnet --precision fp32   # CPU check

Steps, each timed: write the release (images in a process pool), `focus-dataset convert`, the decode-only
rate (the harness's FocusImages over all cores, no model), then `focus-eval --models paper --random-init`
(random weights are fine for throughput) in bf16 with channels_last, as many DataLoader workers as cores,
its figures off. While focus-eval runs, `nvidia-smi` samples the GPU's utilisation every second. Prints,
per model, images/s (models of one geometry share a decoded pass, so they share its rate), the decode-only
rate, and the mean and median GPU utilisation; and writes the same as bench/out/gpu/summary.json.
Whether decoding is the bottleneck shows as images/s near the decode-only rate with the GPU idle much of
the time.
"""

from focus_tools import sample
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# The data pipeline alone: decode, resize and crop in the harness's FocusImages, no model. Arguments: the
# converted folder, DataLoader workers, interpolation, crop_pct (bench_harness.py runs it too).
DECODE_ONLY = textwrap.dedent("""
    import json, sys, time
    import torch
    from harness import preprocess, transforms
    from harness.data import FocusImages, open_focus
    dataset, _ = open_focus(sys.argv[1])
    preprocessing = preprocess.resolve_preprocessing(
        {"input_size": (3, 224, 224), "interpolation": sys.argv[3], "crop_pct": float(sys.argv[4]),
         "crop_mode": "center", "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}, "timm")
    images = FocusImages(dataset, transforms.geometry_transform(preprocessing), range(dataset.num_rows), (3, 224, 224))
    loader = torch.utils.data.DataLoader(images, batch_size=64, num_workers=int(sys.argv[2]))
    start = time.perf_counter()
    for _ in loader:
        pass
    print(json.dumps({"images_per_second": dataset.num_rows / (time.perf_counter() - start)}))
""")


def decode_only(converted: Path, workers: int, interpolation: str = "bilinear", crop_pct: float = 1.0) -> float:
    """Images per second of the data pipeline alone, in a process of its own."""
    result = subprocess.run([sys.executable, "-c", DECODE_ONLY, str(converted), str(workers), interpolation,
                             str(crop_pct)], check=True, cwd=REPO, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["images_per_second"]


def _image(job: tuple[int, str, tuple[int, int]]) -> None:
    import numpy as np

    from focus_tools.sample import sample_image

    seed, path, size_range = job
    Path(path).write_bytes(sample_image(np.random.default_rng(seed), size_range))


def write_release(folder: Path, images: int, size_range: tuple[int, int], workers: int) -> None:
    """A sample release in the public layout (focus_tools.sample), its images redrawn at web-photo sizes in a pool."""
    import focus_dataset

    sample.write_sample_release(folder, images, seed=0, size_range=(8, 8))
    jobs = [(seed, str(path), size_range) for seed, path in enumerate(sorted(folder.rglob("*.jpg")))]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_image, jobs, chunksize=64))


class GpuSampler:
    """GPU utilisation (%) every second from nvidia-smi while a block runs; empty where there is no nvidia-smi."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                output = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                        capture_output=True, text=True, timeout=5).stdout
                self.samples += [float(line) for line in output.split() if line.strip()]
            except (OSError, subprocess.SubprocessError, ValueError):
                return
            self._stop.wait(1.0)

    def __enter__(self) -> "GpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def timed(command: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24000)
    parser.add_argument("--models", nargs="+", default=["paper"])
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--size-range", type=int, nargs=2, default=(320, 1024), metavar=("MIN", "MAX"),
                        help="image sides in pixels, as web photos")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "out" / "gpu")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    release, converted, run = args.workdir / "release", args.workdir / "focus", args.workdir / "run"
    summary: dict = {"images": args.images, "workers": args.workers, "precision": args.precision,
                     "models": args.models, "machine": os.uname().nodename, "date": time.strftime("%Y-%m-%d")}

    start = time.perf_counter()
    write_release(release, args.images, tuple(args.size_range), args.workers)
    summary["write_release_seconds"] = time.perf_counter() - start
    summary["convert_seconds"] = timed([sys.executable, "-m", "focus_tools", "convert", str(release), "--output",
                                        str(converted)], stdout=subprocess.DEVNULL)
    summary["decode_only_images_per_second"] = decode_only(converted, args.workers)
    command = [sys.executable, "-m", "harness.run", "--data", str(converted), "--output", str(run), "--models",
               *args.models, "--random-init", "--precision", args.precision, "--batch-size", str(args.batch_size),
               "--workers", str(args.workers), "--figures", "none", "--quiet", "--n-bootstrap", "100"]
    if args.precision != "fp32":
        command.append("--channels-last")
    with GpuSampler() as sampler:
        summary["focus_eval_seconds"] = timed(command, stdout=subprocess.DEVNULL)
    summary["gpu_utilisation"] = ({"mean": statistics.fmean(sampler.samples), "median": statistics.median(
        sampler.samples), "samples": len(sampler.samples)} if sampler.samples else None)
    summary["per_model"] = {}
    for model in json.loads((run / "run.json").read_text())["models"]:
        from harness import runfolder

        config = json.loads((runfolder.model_dir(run, model) / "config.json").read_text())
        summary["per_model"][model] = {"images_per_second": config["images_per_second"],
                                       "input_size": config["input_size"], "shared_decode": config["shared_decode"]}
    (args.workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    print(f"{args.images} images ({args.size_range[0]}-{args.size_range[1]} px), {args.workers} workers, "
          f"{args.precision}:")
    print(f"  release written in {summary['write_release_seconds']:.1f} s, converted in "
          f"{summary['convert_seconds']:.1f} s")
    print(f"  decode only (FocusImages, 224 px, {args.workers} workers): "
          f"{summary['decode_only_images_per_second']:.0f} images/s")
    for model, numbers in summary["per_model"].items():
        shared = f", decoded with {len(numbers['shared_decode'])} models" if numbers["shared_decode"] else ""
        print(f"  {model}: {numbers['images_per_second']:.0f} images/s at {numbers['input_size'][-1]} px{shared}")
    utilisation = summary["gpu_utilisation"]
    print("  GPU utilisation: " + ("n/a (no nvidia-smi)" if utilisation is None else
                                   f"mean {utilisation['mean']:.0f}%, median {utilisation['median']:.0f}% over "
                                   f"{utilisation['samples']} samples"))
    print(f"  focus-eval took {summary['focus_eval_seconds']:.1f} s; summary in {args.workdir / 'summary.json'}")


if __name__ == "__main__":
    main()
