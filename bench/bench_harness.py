"""focus-eval against plain PyTorch loops, each command timed whole as a user runs it (issue 12's targets).

Same images (a synthetic release of web-photo-sized JPEGs, converted), same models with random weights,
the same timm preprocessing (`--preprocess timm`, so that both decode, resize and crop alike), batch
size and DataLoader workers, all measured in this run, runs alternated and the best of each kept:

- one model (resnet18) on --images: `focus-eval` against a plain loop (PIL decode, timm transform,
  DataLoader, forward, argmax). Target: plain / focus-eval >= 1.0. focus-eval's fixed cost (its wall
  time less its loop over the data: imports, dataset, metrics, report), beyond the plain script's own
  (which also starts Python and imports torch and timm), is printed in seconds and as a share of the
  run; target <= 1.5 s. Its figures, drawn in the background once the results are out, are timed
  apart (`--figures none` in the timed runs, so that drawing does not slow the next command).
- three models of one geometry (mobilenetv3_small_050/075/100) on --shared-images: one `focus-eval`
  command, which decodes every image once for the three, against the three plain loops run one after
  the other. Target: x2 or better.
- the data pipeline alone (decode, resize and crop in the harness's FocusImages), per worker.

    python bench/bench_harness.py [--images 400] [--shared-images 1000] [--batch-size 32] [--workers 2]
"""

from focus_tools import convert, sample
import argparse
import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_gpu import decode_only  # noqa: E402
SINGLE = "resnet18"
SHARED = ("mobilenetv3_small_050", "mobilenetv3_small_075", "mobilenetv3_small_100")
TARGETS = {"single": 1.0, "fixed_seconds": 1.5, "shared": 2.0}

PLAIN_LOOP = textwrap.dedent("""
    import json, sys, time
    import PIL.Image, timm, timm.data, torch
    paths = [line for line in open(sys.argv[1]).read().splitlines() if line]
    model = timm.create_model(sys.argv[2], pretrained=False).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config(model=model))

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            with PIL.Image.open(paths[i]) as image:
                return transform(image.convert("RGB"))

    loader = torch.utils.data.DataLoader(Files(), batch_size=int(sys.argv[3]), num_workers=int(sys.argv[4]))
    start = time.perf_counter()
    with torch.inference_mode():
        for images in loader:
            model(images).argmax(dim=1)
    print(json.dumps({"loop_seconds": time.perf_counter() - start}))
""")

def timed(command: list[str]) -> tuple[float, str]:
    """Wall seconds of a whole command, interpreter start included, and what it printed."""
    start = time.perf_counter()
    result = subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return time.perf_counter() - start, result.stdout


def focus_eval(data: Path, output: Path, models: tuple[str, ...], args) -> tuple[float, float]:
    """(wall seconds, seconds of its loop over the data) of one focus-eval command on a fresh output."""
    shutil.rmtree(output, ignore_errors=True)
    wall, _ = timed([sys.executable, "-m", "harness.run", "--data", str(data), "--output", str(output), "--models",
                     *models, "--random-init", "--preprocess", "timm", "--batch-size", str(args.batch_size),
                     "--workers", str(args.workers), "--quiet", "--figures", "none", *args.harness_options])
    config = json.loads((output / models[0] / "config.json").read_text())
    return wall, config["num_images"] / config["images_per_second"]


def plain_loops(paths: Path, models: tuple[str, ...], args) -> tuple[float, float]:
    """Wall seconds of one plain loop per model, run one after the other, and of their loops alone."""
    walls, loops = [], []
    for model in models:
        wall, printed = timed([sys.executable, "-c", PLAIN_LOOP, str(paths), model, str(args.batch_size),
                               str(args.workers)])
        walls.append(wall)
        loops.append(json.loads(printed.strip().splitlines()[-1])["loop_seconds"])
    return sum(walls), sum(loops)


def release(workdir: Path, images: int) -> tuple[Path, Path]:
    """A converted synthetic release of web-photo-sized JPEGs, and a file listing its image paths."""
    sys.path.insert(0, str(REPO))
    import focus_dataset

    folder = workdir / f"release-{images}"
    sample.write_sample_release(folder, images, seed=3, size_range=(320, 1024))
    convert.convert(folder, workdir / f"focus-{images}")
    paths = workdir / f"paths-{images}.txt"
    paths.write_text("\n".join(str(p) for p in sorted(folder.rglob("*.jpg"))) + "\n")
    return workdir / f"focus-{images}", paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="images of the one-model comparison")
    parser.add_argument("--shared-images", type=int, default=1000, help="images of the three-model comparison")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternated runs of each command; the best is kept")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "out" / "harness")
    parser.add_argument("--harness-options", nargs="*", default=[], metavar="OPTION",
                        help="more focus-eval options, e.g. --no-channels-last to compare like for like")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    single_data, single_paths = release(args.workdir, args.images)
    shared_data, shared_paths = (single_data, single_paths) if args.shared_images == args.images else release(
        args.workdir, args.shared_images)
    # A first run fills datasets' cache of the converted folder, as a user's first evaluation does.
    focus_eval(single_data, args.workdir / "warm", (SINGLE,), args)
    focus_eval(shared_data, args.workdir / "warm", (SHARED[0],), args)

    best = {"harness": (float("inf"), 0.0), "plain": (float("inf"), 0.0), "shared": (float("inf"), 0.0),
            "three_plain": (float("inf"), 0.0)}  # (wall, loop) of the fastest run of each command
    for _ in range(args.repeats):
        best["harness"] = min(best["harness"], focus_eval(single_data, args.workdir / "single", (SINGLE,), args))
        best["plain"] = min(best["plain"], plain_loops(single_paths, (SINGLE,), args))
        best["shared"] = min(best["shared"], focus_eval(shared_data, args.workdir / "shared", SHARED, args))
        best["three_plain"] = min(best["three_plain"], plain_loops(shared_paths, SHARED, args))
    pipeline = decode_only(shared_data, 0, "bicubic", 0.875)  # the shared models' geometry, one process

    (harness, harness_loop), (plain, plain_loop) = best["harness"], best["plain"]
    # Both commands pay for starting Python and importing torch and timm; what focus-eval does besides
    # its loop over the data, beyond what the plain script does besides its own, is its fixed cost.
    fixed = (harness - harness_loop) - (plain - plain_loop)
    single_ratio, shared_ratio = plain / harness, best["three_plain"][0] / best["shared"][0]
    print(f"one model ({SINGLE}, {args.images} images, batch {args.batch_size}, {args.workers} workers, timm "
          f"preprocessing{', ' + ' '.join(args.harness_options) if args.harness_options else ''}), whole commands, "
          f"best of {args.repeats}:")
    print(f"  focus-eval {harness:.2f} s (its loop over the data {harness_loop:.2f} s); plain loop {plain:.2f} s "
          f"(its loop {plain_loop:.2f} s)")
    print(f"  plain / focus-eval: x{single_ratio:.2f} (target >= x{TARGETS['single']:.1f})")
    print(f"  fixed cost of focus-eval beyond the plain script's (imports, dataset, metrics, report): {fixed:.2f} s, "
          f"{fixed / harness:.0%} of the run (target <= {TARGETS['fixed_seconds']:.1f} s)")
    figures, _ = timed([sys.executable, "-m", "harness.report", "--figures-only", "--run",
                        str(args.workdir / "single")])
    print(f"  its figures, which focus-eval draws in a process of its own once the results are out (measured here "
          f"apart, so that they do not slow the next command): {figures:.2f} s")
    print(f"three models of one geometry ({', '.join(SHARED)}, {args.shared_images} images):")
    print(f"  one focus-eval {best['shared'][0]:.2f} s; three plain loops {best['three_plain'][0]:.2f} s")
    print(f"  three plain loops / focus-eval: x{shared_ratio:.2f} (target >= x{TARGETS['shared']:.1f})")
    print(f"data pipeline alone (decode + resize + crop, FocusImages, 1 process): "
          f"{pipeline:.0f} images/s")


if __name__ == "__main__":
    main()
