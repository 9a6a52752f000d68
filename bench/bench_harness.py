"""focus-eval against plain PyTorch loops, each command timed whole as a user runs it (issue 12's targets).

Same images (a synthetic release of web-photo-sized JPEGs, converted), same models with random weights,
the same timm preprocessing (`--preprocess timm`, so that both decode, resize and crop alike), batch
size and DataLoader workers, all measured in this run, runs alternated and the best of each kept:

- one model (resnet18) on --images: `focus-eval` against a plain loop (PIL decode, timm transform,
  DataLoader, forward, argmax). Target: plain / focus-eval >= 1.0. focus-eval's fixed cost (its wall
  time less its loop over the data: imports, dataset, report, figures) is printed in seconds and as
  a share of the run; target <= 1.5 s.
- three models of one geometry (mobilenetv3_small_050/075/100) on --shared-images: one `focus-eval`
  command, which decodes every image once for the three, against the three plain loops run one after
  the other. Target: x2 or better.
- the data pipeline alone (decode, resize and crop in the harness's FocusImages), per worker.

    python bench/bench_harness.py [--images 400] [--shared-images 1000] [--batch-size 32] [--workers 2]
"""

import argparse
import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SINGLE = "resnet18"
SHARED = ("mobilenetv3_small_050", "mobilenetv3_small_075", "mobilenetv3_small_100")
TARGETS = {"single": 1.0, "fixed_seconds": 1.5, "shared": 2.0}

PLAIN_LOOP = textwrap.dedent("""
    import sys
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
    with torch.inference_mode():
        for images in loader:
            model(images).argmax(dim=1)
""")

PIPELINE = textwrap.dedent("""
    import json, sys, time
    import torch
    from harness import preprocess
    from harness.data import FocusImages, open_focus
    dataset, _ = open_focus(sys.argv[1])
    preprocessing = {"input_size": [3, 224, 224], "interpolation": "bicubic", "crop_pct": 0.875,
                     "crop_mode": "center", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    images = FocusImages(dataset, preprocess.geometry_transform(preprocessing), range(dataset.num_rows), (3, 224, 224))
    loader = torch.utils.data.DataLoader(images, batch_size=32, num_workers=int(sys.argv[2]))
    start = time.perf_counter()
    for _ in loader:
        pass
    print(json.dumps({"images_per_second": dataset.num_rows / (time.perf_counter() - start)}))
""")


def timed(command: list[str]) -> float:
    """Wall seconds of a whole command, interpreter start included."""
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def focus_eval(data: Path, output: Path, models: tuple[str, ...], args) -> tuple[float, float]:
    """(wall seconds, seconds of its loop over the data) of one focus-eval command on a fresh output."""
    shutil.rmtree(output, ignore_errors=True)
    wall = timed([sys.executable, "-m", "harness.run", "--data", str(data), "--output", str(output), "--models",
                  *models, "--random-init", "--preprocess", "timm", "--batch-size", str(args.batch_size),
                  "--workers", str(args.workers), "--quiet"])
    config = json.loads((output / models[0] / "config.json").read_text())
    return wall, config["num_images"] / config["images_per_second"]


def plain_loops(paths: Path, models: tuple[str, ...], args) -> float:
    """Wall seconds of one plain loop per model, run one after the other."""
    return sum(timed([sys.executable, "-c", PLAIN_LOOP, str(paths), model, str(args.batch_size), str(args.workers)])
               for model in models)


def release(workdir: Path, images: int) -> tuple[Path, Path]:
    """A converted synthetic release of web-photo-sized JPEGs, and a file listing its image paths."""
    sys.path.insert(0, str(REPO))
    import focus_dataset

    folder = workdir / f"release-{images}"
    focus_dataset.write_sample_release(folder, images, seed=3, size_range=(320, 1024))
    focus_dataset.convert(folder, workdir / f"focus-{images}")
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
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    single_data, single_paths = release(args.workdir, args.images)
    shared_data, shared_paths = (single_data, single_paths) if args.shared_images == args.images else release(
        args.workdir, args.shared_images)
    # A first run fills datasets' cache of the converted folder, as a user's first evaluation does.
    focus_eval(single_data, args.workdir / "warm", (SINGLE,), args)
    focus_eval(shared_data, args.workdir / "warm", (SHARED[0],), args)

    best = {"harness": float("inf"), "loop": float("inf"), "plain": float("inf"), "shared": float("inf"),
            "three_plain": float("inf")}
    for _ in range(args.repeats):
        wall, loop = focus_eval(single_data, args.workdir / "single", (SINGLE,), args)
        if wall < best["harness"]:
            best["harness"], best["loop"] = wall, loop
        best["plain"] = min(best["plain"], plain_loops(single_paths, (SINGLE,), args))
        best["shared"] = min(best["shared"], focus_eval(shared_data, args.workdir / "shared", SHARED, args)[0])
        best["three_plain"] = min(best["three_plain"], plain_loops(shared_paths, SHARED, args))
    pipeline = json.loads(subprocess.run([sys.executable, "-c", PIPELINE, str(shared_data), "0"], check=True,
                                         cwd=REPO, capture_output=True, text=True).stdout.strip().splitlines()[-1])

    fixed = best["harness"] - best["loop"]
    single_ratio, shared_ratio = best["plain"] / best["harness"], best["three_plain"] / best["shared"]
    print(f"one model ({SINGLE}, {args.images} images, batch {args.batch_size}, {args.workers} workers, timm "
          f"preprocessing), whole commands, best of {args.repeats}:")
    print(f"  focus-eval {best['harness']:.2f} s (its loop over the data {best['loop']:.2f} s); plain loop "
          f"{best['plain']:.2f} s")
    print(f"  plain / focus-eval: x{single_ratio:.2f} (target >= x{TARGETS['single']:.1f})")
    print(f"  fixed cost of focus-eval: {fixed:.2f} s, {fixed / best['harness']:.0%} of the run (target <= "
          f"{TARGETS['fixed_seconds']:.1f} s)")
    print(f"three models of one geometry ({', '.join(SHARED)}, {args.shared_images} images):")
    print(f"  one focus-eval {best['shared']:.2f} s; three plain loops {best['three_plain']:.2f} s")
    print(f"  three plain loops / focus-eval: x{shared_ratio:.2f} (target >= x{TARGETS['shared']:.1f})")
    print(f"data pipeline alone (decode + resize + crop, FocusImages, 1 process): "
          f"{pipeline['images_per_second']:.0f} images/s")


if __name__ == "__main__":
    main()
