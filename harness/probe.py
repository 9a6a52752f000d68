#!/usr/bin/env python3
"""FOCUS feature probes: which locations a model's penultimate features encode (the paper's Tables 5 and 6).

    focus-probe --data demo/focus --models tf_efficientnet_lite0 --checkpoint tf_efficientnet_lite0=W.pth
    accelerate launch harness/probe.py --data focus --models resnet50.tv_in1k --precision bf16

Kattakinda & Feizi (ICML 2022), Tables 5 and 6. A *probe* is a binary linear classifier trained, for one
class and one location, on the penultimate features of that class's images only, to tell whether the
location is present. Train and test sets each hold as many images with the location as without (30%
of them for test), so chance is 50% (Table 5). The probe's weights with its bias, compared by cosine
similarity with each row of the model's own classifier (weights with bias), name the ImageNet classes
whose evidence the location resembles (Table 6: car/snow -> snowplow, dogsled, snowmobile).

Writes, per model, into the run folder (see harness/runfolder.py):

    <model>/features.parquet     penultimate features per image (file_name, features: float32[d])
    <model>/features.json        what they were computed from: dataset fingerprint, weights sha256, ...
    <model>/features-parts/      features written as they come (a killed run resumes from them)
    <model>/probes.md            Table 5 (accuracy per class x location, with n and interval), Table 6
    <model>/probes.json          the same numbers (no NaN)
    <model>/probes_heatmap.png   Table 5 as a heatmap

Cached features (or parts) are reused only when features.json says they come from the same data and
weights; without a features.json nothing says where they come from, so they are recomputed.

Every cell that a balanced split can hold is trained and shown with its n and Wilson interval, as the
paper's Table 5 shows cells of a few images (ship/indoors has 3 with the location): that takes
MIN_SPLIT_IMAGES (2) images with the location and as many without, one of each to train and one to
test. Cells with fewer than --min-images on either side are marked "small" (shown, in parentheses): a
probe tested on a handful of images says little, and its interval shows it. Only cells that cannot be
split are "too small" and not trained. Images of the class without the location (including those
whose location is "none") are the negatives.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python harness/probe.py, accelerate launch)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import hashlib
import logging
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from accelerate import Accelerator
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from tqdm.auto import tqdm

from focus_tools import statistics
import focus_dataset
from focus_tools import schema
from focus_common import commands as command
from harness import cli, labels, passes, preprocess, runfolder
from harness.cli import (
    add_data_arguments,
    add_model_arguments,
    add_runtime_arguments,
    check_models,
    library_versions,
    now,
    open_dataset,
)

logger = logging.getLogger("focus-probe")

FEATURES_FILE = "features.parquet"
FEATURES_CONFIG_FILE = "features.json"
FEATURES_PARTS_DIR = "features-parts"
PROBES_MD = "probes.md"
PROBES_JSON = "probes.json"
PROBES_HEATMAP = "probes_heatmap.png"
POOLING = "forward_features + forward_head(pre_logits=True)"
# Settings that change the features: cached features are reused only when all of these match.
FEATURE_IDENTITY_KEYS = ("model", "sha256", "dataset_fingerprint", "num_images", "preprocessing", "precision",
                         "pooling")
# The probe targets: every location except "none" (ambiguous, or none of these places).
PROBE_LOCATIONS = [name for name in schema.LOCATION_NAMES if name != "none"]
# The fewest images with the location, and without, that a balanced split holds: one of each to train, one to test.
MIN_SPLIT_IMAGES = 2
INTERVAL_CONFIDENCE = 0.95  # of the probe accuracies' Wilson intervals
ACCURACY_DECIMALS = 1  # percent, in probes.md
COSINE_DECIMALS = 2  # as Table 6


def build_parser() -> argparse.ArgumentParser:
    parser = command.parser(None, __doc__.splitlines()[0])
    add_data_arguments(parser)
    cli.add_preprocessing_arguments(parser)
    add_model_arguments(parser)
    add_runtime_arguments(parser)
    probes = parser.add_argument_group("probes")
    probes.add_argument("--min-images", type=int, default=20,
                        help="mark a probe 'small' when its cell has fewer images than this with the location or "
                             "without (it is still trained and shown); cells that cannot be split into a balanced "
                             f"train and test set (fewer than {MIN_SPLIT_IMAGES} on a side) are 'too small'")
    probes.add_argument("--test-size", type=float, default=0.3, help="fraction of the balanced images held out")
    probes.add_argument("--C", type=float, default=1.0, dest="C",
                        help="inverse L2 regularisation of the logistic regression (on standardised features)")
    probes.add_argument("--pairs", nargs="+", metavar="CLASS/LOCATION",
                        help="Table 6 for these pairs only, e.g. car/snow plane/water (default: every trained probe)")
    probes.add_argument("--top-k", type=int, default=3, help="ImageNet classes listed per probe in Table 6 (the "
                                                            "paper lists 3)")
    probes.add_argument("--seed", type=int, default=0,
                        help="seed of everything random in the command: the balanced samples and splits of the "
                             "probes, --subset random/stratified and --random-init weights")

    output = parser.add_argument_group("output")
    output.add_argument("--run", metavar="RUN_DIR",
                        help="a focus-eval run: probe its models (or those of --models) with the weights and "
                             "preprocessing it used, on its data unless --data says otherwise (default: none: the "
                             "models of --models, on --data)")
    output.add_argument("--output", help="the run folder (default: --run, else runs/focus)")
    output.add_argument("--no-resume", action="store_true", help="discard cached features and recompute them")
    output.add_argument("--save-every", type=int, default=1024, help="images per features part file")
    output.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def weights_sha256(model: nn.Module, info: dict[str, Any]) -> str:
    """The weights file's SHA-256, or for random weights the SHA-256 of the state dict's tensors."""
    if info.get("sha256"):
        return info["sha256"]
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Penultimate features: written in parts as they come, merged when the model is done
# --------------------------------------------------------------------------------------------

def features_schema(dim: int) -> pa.Schema:
    """file_name and the features (null for an image that cannot be decoded)."""
    return pa.schema([("file_name", pa.string()), ("features", pa.list_(pa.float32(), dim))])


def feature_rows(file_names: list[str], features: np.ndarray, ok: np.ndarray) -> pa.Table:
    dim = features.shape[1]
    flat = pa.array(features.astype(np.float32, copy=False).reshape(-1))
    column = pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(~ok))
    return pa.table({"file_name": pa.array(file_names, pa.string()), "features": column}, schema=features_schema(dim))


def features_matrix(table: pa.Table) -> np.ndarray:
    """The features column as a (rows, dim) float32 array."""
    column = table.column("features").combine_chunks()
    return column.flatten().to_numpy().reshape(len(column), column.type.list_size)


def check_feature_cache(model_dir: Path, config: dict[str, Any], resume: bool, *, main_process: bool = True) -> None:
    """Keep cached features only when features.json says they come from the same data and weights."""
    cli.check_cache(model_dir / FEATURES_CONFIG_FILE, config, FEATURE_IDENTITY_KEYS, holds="features",
                    stale=[model_dir / FEATURES_FILE, model_dir / FEATURES_PARTS_DIR], resume=resume,
                    is_main=main_process)


def feature_step(model: nn.Module, preprocessing: dict[str, Any], name: str) -> passes.Step:
    """The model on a batch: its pooled penultimate features, float32."""
    dim = model.num_features

    def step(batch: passes.Batch) -> dict[str, torch.Tensor]:
        images = preprocess.normalize(batch.images, preprocessing)
        features = model.forward_head(model.forward_features(images), pre_logits=True)
        if features.ndim != 2 or features.shape[1] != dim:
            raise ValueError(f"{name}: forward_head(pre_logits=True) gave shape {tuple(features.shape)}, "
                             f"expected (batch, {dim}); this architecture has no pooled penultimate features")
        return {"features": features.float()}
    return step


def extract_features(accelerator: Accelerator, dataset: datasets.Dataset, annotations: pa.Table, fingerprint: str,
                     model: nn.Module, info: dict[str, Any], sha256: str, preprocessing: dict[str, Any],
                     args: argparse.Namespace, model_dir: Path) -> pa.Table:
    """Penultimate features of every decodable image (file_name order), from the cache when it matches; `model_dir`
    exists (and is locked, see probe_model)."""
    config = {
        "model": info["model"], "weights": info["weights"], "sha256": sha256,
        "random_init": info["weights"] == "random-init", "pooling": POOLING, "dim": model.num_features,
        "preprocessing": preprocessing, "precision": args.precision, "dataset_fingerprint": fingerprint,
        "num_images": annotations.num_rows,
        "num_processes": accelerator.num_processes, "versions": library_versions(),
    }
    # Every process checks (and raises alike); the main process deletes stale files before any reads them.
    cli.run_shared(accelerator, lambda: check_feature_cache(model_dir, config, resume=not args.no_resume,
                                                            main_process=accelerator.is_main_process))
    features_path = model_dir / FEATURES_FILE
    if features_path.exists():
        logger.info("%s: features from the cache %s", info["model"], features_path)
        return pq.read_table(features_path)

    dim = model.num_features
    file_names = annotations.column("file_name").to_pylist()
    parts_dir = model_dir / FEATURES_PARTS_DIR
    pending = passes.pending_rows(file_names, parts_dir, features_schema(dim))

    def start() -> None:
        config["started"] = now()
        runfolder.write_json(model_dir / FEATURES_CONFIG_FILE, config)
        logger.info("%s: %d-d features, preprocessing %s, %d of %d images to go", info["model"], dim,
                    runfolder.preprocessing_summary(preprocessing), len(pending), len(file_names))
    cli.run_shared(accelerator, start, main_only=True)

    def to_rows(gathered: dict[str, np.ndarray]) -> pa.Table:
        # Checked before the rows reach a part file: NaN features must never be cached.
        passes.check_finite(np.isfinite(gathered["features"]).all(axis=1), gathered, file_names, info["model"],
                            "features")
        for i in gathered["index"][~gathered["ok"]]:
            logger.warning("%s: %s cannot be decoded; left out of the probes", info["model"], file_names[i])
        return feature_rows([file_names[i] for i in gathered["index"]], gathered["features"], gathered["ok"])

    result = passes.run_pass(
        accelerator, dataset, pending, preprocess.geometry_transform(preprocessing), preprocessing["input_size"],
        feature_step(model.to(accelerator.device), preprocessing, info["model"]), to_rows, schema=features_schema(dim),
        parts_dir=parts_dir, save_every=args.save_every, batch_size=args.batch_size, workers=args.workers,
        desc=f"{info['model']} features", quiet=args.quiet)

    def finish() -> None:
        failed_images = merge_feature_parts(result.rows, model_dir, file_names)
        config.update(finished=now(), seconds=round(result.seconds, 1), failed_images=failed_images)
        runfolder.write_json(model_dir / FEATURES_CONFIG_FILE, config)
    cli.run_shared(accelerator, finish, main_only=True)
    return pq.read_table(features_path)


def merge_feature_parts(parts: pa.Table, model_dir: Path, file_names: list[str]) -> list[str]:
    """The part rows as features.parquet (decodable images, file_name order); the images left out."""
    # A part rewritten after a kill between write and bookkeeping would repeat rows: keep one.
    parts = parts.take(pa.array(np.unique(parts.column("file_name").to_numpy(zero_copy_only=False),
                                          return_index=True)[1]))
    if parts.num_rows != len(file_names):
        raise RuntimeError(f"{model_dir}: features for {parts.num_rows} of {len(file_names)} images; "
                           f"{passes.rerun_advice(parts.num_rows, len(file_names))}")
    valid = parts.filter(parts.column("features").is_valid()).sort_by("file_name")
    runfolder.write_parquet(model_dir / FEATURES_FILE, valid)
    return sorted(set(file_names) - set(valid.column("file_name").to_pylist()))


# --------------------------------------------------------------------------------------------
# Probes and their statistics: pure functions of arrays
# --------------------------------------------------------------------------------------------

def location_presence(locations: list[list[int]], num_locations: int = len(schema.LOCATION_NAMES)) -> np.ndarray:
    """(images, locations) bool matrix: whether each image's location set holds each location id.

    >>> location_presence([[1], [6, 7], []], 9).nonzero()
    (array([0, 1, 1]), array([1, 6, 7]))
    """
    lengths = np.fromiter((len(v) for v in locations), dtype=np.int64, count=len(locations))
    rows = np.repeat(np.arange(len(locations)), lengths)
    ids = np.fromiter((i for v in locations for i in v), dtype=np.int64, count=int(lengths.sum()))
    presence = np.zeros((len(locations), num_locations), dtype=bool)
    presence[rows, ids] = True
    return presence


def balanced_split(present: np.ndarray, *, test_size: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train and a test set, each with exactly as many positives as negatives.

    As many images without the location as with it (the smaller side whole, the larger sampled), then
    a stratified split holding out `test_size` of each side (at least one image).
    """
    present = np.asarray(present, dtype=bool)
    positives, negatives = np.flatnonzero(present), np.flatnonzero(~present)
    n = min(len(positives), len(negatives))
    if n < MIN_SPLIT_IMAGES:
        raise ValueError(f"a balanced split needs at least {MIN_SPLIT_IMAGES} images with and {MIN_SPLIT_IMAGES} "
                         f"without the location, got {len(positives)} with and {len(negatives)} without")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size}")
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(positives, n, replace=False), rng.choice(negatives, n, replace=False)])
    n_test_side = min(max(1, round(test_size * n)), n - 1)
    train, test = train_test_split(chosen, test_size=2 * n_test_side, stratify=present[chosen],
                                   random_state=int(rng.integers(2**31)))
    return np.sort(train), np.sort(test)


def fit_probe(features: np.ndarray, present: np.ndarray, *, test_size: float = 0.3, seed: int = 0,
              C: float = 1.0) -> dict[str, Any]:
    """Train one probe on a balanced split; its test accuracy and its weights [w, b] on the raw features.

    The logistic regression sees standardised features (for a well-conditioned fit); the scaling is
    folded back into the weights, so that `weights` is the probe on the features themselves and can be
    compared with the model's classifier rows (Table 6).
    """
    train, test = balanced_split(present, test_size=test_size, seed=seed)
    scaler = StandardScaler().fit(features[train])
    classifier = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(features[train]), present[train])
    n_correct = int((classifier.predict(scaler.transform(features[test])) == present[test]).sum())
    w = classifier.coef_[0] / scaler.scale_
    b = classifier.intercept_[0] - w @ scaler.mean_
    return {"accuracy": n_correct / len(test), "n_correct": n_correct, "n_train": len(train), "n_test": len(test),
            "weights": np.append(w, b)}


def check_probe_options(min_images: int, test_size: float) -> None:
    if min_images < MIN_SPLIT_IMAGES:
        raise ValueError(f"--min-images must be at least {MIN_SPLIT_IMAGES} (one image each side to train and to "
                         f"test), "
                         f"got {min_images}")
    if not 0 < test_size < 1:
        raise ValueError(f"--test-size must be a fraction in (0, 1), got {test_size}")


def probe_cells(features: np.ndarray, label: np.ndarray, presence: np.ndarray, *, min_images: int = 20,
                test_size: float = 0.3, seed: int = 0, C: float = 1.0, progress: bool = False) -> list[dict[str, Any]]:
    """Table 5: one record per (class, location) pair, in CLASS_NAMES x PROBE_LOCATIONS order.

    Every record has class, location, n_with, n_without and status: "trained" for every cell a balanced
    split can hold (MIN_SPLIT_IMAGES a side), "too small" for the others. Trained ones add small
    (fewer than `min_images` on a side), accuracy, n_correct, n_train, n_test, interval (95% Wilson)
    and weights.
    """
    check_probe_options(min_images, test_size)
    cells = []
    pairs = [(c, l) for c in range(len(schema.CLASS_NAMES)) for l in range(len(PROBE_LOCATIONS))]
    for class_id, location_id in tqdm(pairs, desc="probes", disable=not progress):
        rows = np.flatnonzero(label == class_id)
        present = presence[rows, schema.LOCATION_NAMES.index(PROBE_LOCATIONS[location_id])]
        cell = {"class": schema.CLASS_NAMES[class_id], "location": PROBE_LOCATIONS[location_id],
                "n_with": int(present.sum()), "n_without": int((~present).sum())}
        fewest = min(cell["n_with"], cell["n_without"])
        if fewest < MIN_SPLIT_IMAGES:
            cells.append(cell | {"status": "too small"})
            continue
        # One stream per cell: a cell's split does not depend on which other cells were trained.
        cell_seed = int(np.random.default_rng([seed, class_id, location_id]).integers(2**31))
        cells.append(cell | {"status": "trained", "small": fewest < min_images,
                             **fit_probe(features[rows], present, test_size=test_size, seed=cell_seed, C=C)})
    trained = [cell for cell in cells if cell["status"] == "trained"]
    if trained:
        # The metric's Wilson interval (one implementation): the harness uses the metric's code.
        low, high = runfolder.load_metric_module().wilson_interval(
            [cell["n_correct"] for cell in trained], [cell["n_test"] for cell in trained], INTERVAL_CONFIDENCE)
        for cell, cell_low, cell_high in zip(trained, low, high):
            cell["interval"] = [float(cell_low), float(cell_high)]
    return cells


def cosine_similarities(probes: np.ndarray, classifier: np.ndarray) -> np.ndarray:
    """Cosine similarity of each probe [w, b] (rows of `probes`) with each classifier row [W_i, b_i].

    >>> cosine_similarities(np.array([[1.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 1.0]])).round(3)
    array([[ 1.   ,  0.   , -0.707]])
    """
    probes, classifier = np.atleast_2d(probes), np.atleast_2d(classifier)
    norms = np.linalg.norm(probes, axis=1)[:, None] * np.linalg.norm(classifier, axis=1)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, probes @ classifier.T / norms, 0.0)


def top_k(similarities: np.ndarray, k: int) -> np.ndarray:
    """Column ids of the k largest values per row, largest first (ties by lower id)."""
    return np.argsort(-similarities, axis=1, kind="stable")[:, :k]


def classifier_matrix(model: nn.Module) -> np.ndarray:
    """The model's classifier as rows [W_i, b_i] (classes x (features + 1)), from timm's get_classifier()."""
    head = model.get_classifier()
    if isinstance(head, nn.Linear) or (isinstance(head, nn.Conv2d) and head.kernel_size == (1, 1)):
        weight = head.weight.detach().float().reshape(head.weight.shape[0], -1).cpu().numpy()
        bias = (np.zeros(weight.shape[0], np.float32) if head.bias is None
                else head.bias.detach().float().cpu().numpy())
        return np.concatenate([weight, bias[:, None]], axis=1)
    raise ValueError(f"Table 6 needs a linear classifier (nn.Linear or a 1x1 nn.Conv2d); {type(model).__name__}."
                     f"get_classifier() is a {type(head).__name__}. Use a model with a linear head.")


def parse_pairs(items: list[str] | None) -> list[tuple[str, str]] | None:
    """`--pairs car/snow plane/water` as [(class, location)], each name checked."""
    if items is None:
        return None
    pairs = []
    for item in items:
        class_name, sep, location = item.partition("/")
        if not sep or class_name not in schema.CLASS_NAMES or location not in PROBE_LOCATIONS:
            raise ValueError(f"--pairs expects CLASS/LOCATION with a class of {schema.CLASS_NAMES} and a "
                             f"location of {PROBE_LOCATIONS}, got {item!r}")
        pairs.append((class_name, location))
    return pairs


def add_similar_classes(cells: list[dict[str, Any]], classifier: np.ndarray, names: list[str], k: int,
                        pairs: list[tuple[str, str]] | None = None) -> None:
    """Table 6: the k classifier rows most similar to each chosen trained probe, into cell["similar_classes"]."""
    chosen = [cell for cell in cells if cell["status"] == "trained"
              and (pairs is None or (cell["class"], cell["location"]) in pairs)]
    if not chosen:
        return
    if classifier.shape[1] != len(chosen[0]["weights"]):
        raise ValueError(f"the classifier takes {classifier.shape[1] - 1} features, the probes "
                         f"{len(chosen[0]['weights']) - 1}: the penultimate features are not the classifier's input")
    similarities = cosine_similarities(np.stack([cell["weights"] for cell in chosen]), classifier)
    for cell, row, ids in zip(chosen, similarities, top_k(similarities, k)):
        cell["similar_classes"] = [{"id": int(i), "name": names[i], "cosine": float(row[i])} for i in ids]


# --------------------------------------------------------------------------------------------
# probes.md, probes.json, the heatmap
# --------------------------------------------------------------------------------------------

def format_percent(value: float) -> str:
    return f"{100 * value:.{ACCURACY_DECIMALS}f}"


def accuracy_grid(cells: list[dict[str, Any]]) -> np.ndarray:
    """Table 5 as a (classes, locations) array of accuracies, NaN where too small."""
    grid = np.full((len(schema.CLASS_NAMES), len(PROBE_LOCATIONS)), np.nan)
    for cell in cells:
        if cell["status"] == "trained":
            row = schema.CLASS_NAMES.index(cell["class"])
            grid[row, PROBE_LOCATIONS.index(cell["location"])] = cell["accuracy"]
    return grid


def cell_text(cell: dict[str, Any] | None) -> str:
    """A Table 5 cell: the accuracy in percent, in parentheses when small, — when too small (or absent).

    >>> [cell_text(c) for c in ({"status": "trained", "small": False, "accuracy": 0.75},
    ...                         {"status": "trained", "small": True, "accuracy": 0.5}, {"status": "too small"})]
    ['75.0', '(50.0)', '—']
    """
    if cell is None or cell["status"] != "trained":
        return "—"
    return f"({format_percent(cell['accuracy'])})" if cell["small"] else format_percent(cell["accuracy"])


def cell_status(cell: dict[str, Any]) -> str:
    return "trained (small)" if cell.get("small") else cell["status"]


def text_grid(cells: list[dict[str, Any]]) -> list[list[str]]:
    """Table 5's cells as text, (classes x locations)."""
    by_pair = {(cell["class"], cell["location"]): cell for cell in cells}
    return [[cell_text(by_pair.get((class_name, location))) for location in PROBE_LOCATIONS]
            for class_name in schema.CLASS_NAMES]


def format_probes(cells: list[dict[str, Any]], header: dict[str, Any]) -> str:
    """probes.md: Table 5 (grid and per-cell n and interval) and Table 6."""
    lines = [f"# Feature probes: {header['model']}", "",
             f"Weights: {header['weights']}. Features: {header['dim']}-d, {POOLING}, of {header['num_images']} "
             f"images (dataset fingerprint {header['dataset_fingerprint']}).",
             f"Probes: logistic regression (C={header['C']}) per class and location, as many images with the "
             f"location as without, {header['test_size']:.0%} held out, seed {header['seed']}; chance is 50%. "
             f"Every cell with at least {MIN_SPLIT_IMAGES} images on each side (one to train, one to test) is "
             f"trained; those with fewer than {header['min_images']} on a side are small, shown in parentheses: "
             f"read them with their interval. Cells that cannot be split are not trained (—).", ""]
    if header.get("random_init"):
        lines += ["**Random weights**: these numbers say nothing about the model.", ""]
    lines += ["## Table 5: probe test accuracy (%)", "",
              "| class | " + " | ".join(PROBE_LOCATIONS) + " |", "|---" * (len(PROBE_LOCATIONS) + 1) + "|"]
    for class_name, values in zip(schema.CLASS_NAMES, text_grid(cells)):
        lines.append(f"| {class_name} | " + " | ".join(values) + " |")
    lines += ["", "## Every cell", "",
              "| class | location | with | without | status | n_train | n_test | accuracy (%) "
              "| 95% interval (Wilson) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for cell in cells:
        if cell["status"] == "trained":
            low, high = cell["interval"]
            numbers = (f"{cell['n_train']} | {cell['n_test']} | {format_percent(cell['accuracy'])} | "
                       f"{format_percent(low)}–{format_percent(high)}")
        else:
            numbers = "— | — | — | —"
        lines.append(f"| {cell['class']} | {cell['location']} | {cell['n_with']} | {cell['n_without']} | "
                     f"{cell_status(cell)} | {numbers} |")
    similar = [cell for cell in cells if "similar_classes" in cell]
    lines += ["", "## Table 6: classes closest to each probe", "",
              "Cosine similarity between the probe's weights with its bias and each row of the model's "
              "classifier with its bias.", ""]
    if similar:
        lines += ["| class | location | most similar classes (cosine) |", "|---|---|---|"]
        for cell in similar:
            names = ", ".join(f"{c['name']} {c['cosine']:.{COSINE_DECIMALS}f}" for c in cell["similar_classes"])
            lines.append(f"| {cell['class']} | {cell['location']}{' (small)' if cell['small'] else ''} | {names} |")
    else:
        lines.append(header.get("table6_note") or "No trained probe among the chosen pairs.")
    return "\n".join(lines) + "\n"


def probes_json(cells: list[dict[str, Any]], header: dict[str, Any]) -> dict[str, Any]:
    """probes.json content: the header and every cell (probe weights left out: they are large)."""
    return {**header, "cells": [{k: v for k, v in cell.items() if k != "weights"} for cell in cells]}


def plot_heatmap(cells: list[dict[str, Any]], title: str) -> Figure:
    """Table 5 as a class x location heatmap; small cells hatched, their values in parentheses; too small grey."""
    grid = accuracy_grid(cells)
    figure = Figure(figsize=(1.0 + 0.8 * len(PROBE_LOCATIONS), 1.2 + 0.45 * len(schema.CLASS_NAMES)),
                    layout="constrained")
    axes = figure.subplots()
    axes.set_facecolor("#e6e6e6")
    # Centred on chance (50%): above chance red, below blue.
    image = axes.imshow(np.ma.masked_invalid(100 * grid), cmap="coolwarm", vmin=0, vmax=100, aspect="auto")
    for row, values in enumerate(text_grid(cells)):
        for column, text in enumerate(values):
            axes.text(column, row, text, ha="center", va="center", fontsize=8)
    for cell in cells:
        if cell.get("small"):
            xy = (PROBE_LOCATIONS.index(cell["location"]) - 0.5, schema.CLASS_NAMES.index(cell["class"]) - 0.5)
            axes.add_patch(Rectangle(xy, 1, 1, fill=False, hatch="///", edgecolor="#555555", linewidth=0))
    axes.set_xticks(range(len(PROBE_LOCATIONS)), PROBE_LOCATIONS, rotation=45, ha="right")
    axes.set_yticks(range(len(schema.CLASS_NAMES)), schema.CLASS_NAMES)
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, label="probe test accuracy (%)")
    return figure


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

def probe_model(accelerator: Accelerator, dataset: datasets.Dataset, annotations: pa.Table, fingerprint: str,
                name: str, checkpoint: str | None, args: argparse.Namespace, overrides: dict[str, Any],
                pairs: list[tuple[str, str]] | None, run_config: dict[str, Any] | None = None) -> Path | None:
    """Features (all processes), then probes and their report (main process); the probes.md path there.

    The model folder's lock is held throughout: a second focus-probe (or a focus-eval) of this model into
    the same folder stops at once, naming this one.
    """
    model_dir = runfolder.model_dir(args.output, name)
    with cli.model_folder_lock(accelerator, model_dir, f"focus-probe of {name}"):
        # Built on every process alike (random weights from --seed); with --run, the run's weights and preprocessing.
        model, info, preprocessing = cli.run_shared(accelerator, lambda: cli.prepare_model(
            name, args, checkpoint, overrides, run_config))
        sha256 = weights_sha256(model, info)
        table = extract_features(accelerator, dataset, annotations, fingerprint, model, info, sha256, preprocessing,
                                 args, model_dir)
        return cli.run_shared(accelerator, lambda: write_probes(table, annotations, fingerprint, model, info, sha256,
                                                                args, pairs, model_dir), main_only=True)


def write_probes(table: pa.Table, annotations: pa.Table, fingerprint: str, model: nn.Module, info: dict[str, Any],
                 sha256: str, args: argparse.Namespace, pairs: list[tuple[str, str]] | None, model_dir: Path) -> Path:
    """The probes on the features `table`, and probes.json, probes.md and the heatmap; the probes.md path."""
    name = info["model"]
    # Features are in file_name order; the annotations are taken in the same order.
    position = {file_name: i for i, file_name in enumerate(annotations.column("file_name").to_pylist())}
    rows = annotations.take(pa.array([position[f] for f in table.column("file_name").to_pylist()], pa.int64()))
    cells = probe_cells(features_matrix(table), rows.column("label").to_numpy(),
                        location_presence(rows.column("locations").to_pylist()), min_images=args.min_images,
                        test_size=args.test_size, seed=args.seed, C=args.C, progress=not args.quiet)
    header = {"model": info["model"], "weights": info["weights"], "sha256": sha256,
              "random_init": info["weights"] == "random-init", "dim": model.num_features,
              "num_images": table.num_rows,
              "dataset_fingerprint": fingerprint, "min_images": args.min_images, "test_size": args.test_size,
              "C": args.C, "seed": args.seed, "top_k": args.top_k, "pairs": None if pairs is None else
              [f"{c}/{l}" for c, l in pairs], "locations": PROBE_LOCATIONS, "date": now()}
    untrained = [f"{c}/{l}" for c, l in pairs or () if next(
        cell["status"] for cell in cells if (cell["class"], cell["location"]) == (c, l)) != "trained"]
    if untrained:
        logger.warning("%s: no Table 6 row for %s: too few images to split (fewer than %d with or without the "
                       "location)", name, ", ".join(untrained), MIN_SPLIT_IMAGES)
    try:
        classifier = classifier_matrix(model)
        add_similar_classes(cells, classifier, labels.class_names(classifier.shape[0]), args.top_k, pairs)
    except ValueError as err:
        logger.warning("%s: no Table 6: %s", name, err)
        header["table6_note"] = f"No Table 6: {err}"
    runfolder.write_json(model_dir / PROBES_JSON, probes_json(cells, header))
    runfolder.write_text(model_dir / PROBES_MD, format_probes(cells, header))
    figure = plot_heatmap(cells, f"{info['model']}: probe accuracy (%) per class and location\n"
                                 f"(in parentheses, hatched: fewer than {args.min_images} images on a side)")
    runfolder.save_figure(figure, model_dir / PROBES_HEATMAP, dpi=120)
    trained = [cell for cell in cells if cell["status"] == "trained"]
    logger.info("%s: %d of %d probes trained, %d of them small; %s", name, len(trained), len(cells),
                sum(cell["small"] for cell in trained), model_dir / PROBES_MD)
    return model_dir / PROBES_MD


def main(argv: list[str] | None = None) -> int:
    return cli.run_with_accelerator(build_parser().parse_args(argv), probe_run)


def probe_run(accelerator: Accelerator, args: argparse.Namespace) -> int:
    """Probe every model of the command line; 0 on success, 2 on bad input."""
    args.output = args.output or args.run or "runs/focus"
    try:
        names, checkpoints, configs = cli.models_of_run(args) if args.run else (*check_models(args), {})
        overrides = cli.preprocessing_overrides(args)
        pairs = parse_pairs(args.pairs)
        check_probe_options(args.min_images, args.test_size)
        dataset, _ = open_dataset(args)
    except cli.COMMAND_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    annotations = focus_dataset.annotation_table(dataset)
    fingerprint = statistics.dataset_fingerprint(annotations)
    try:
        cli.check_data_of_run(args, fingerprint)
    except cli.COMMAND_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name in names:
        try:
            report = probe_model(accelerator, dataset, annotations, fingerprint, name, checkpoints.get(name), args,
                                 overrides, pairs, configs.get(name))
        except cli.COMMAND_ERRORS as err:
            print(f"error: {cli.about(name, str(err))}", file=sys.stderr)
            return 2
        if report is not None:
            print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
