"""Submissions fabricated for the leaderboard's tests, and the edits a tamperer makes to them.

Run folders are fabricated here the way harness/run.py writes them: predictions.parquet in
scoring.PREDICTION_SCHEMA from the dataset's own columns plus synthetic top-5s, config.json, and
metrics.json = scoring.compute_metrics(predictions) plus the count of undecodable images.
"""

import contextlib
import hashlib
import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from focus_common import outputs
from harness.leaderboard import submission as submission_format, verification
from focus_tools import statistics
from focus_tools import schema
from harness import runfolder, scoring
from harness.labels import imagenet_to_focus_index


NOW = datetime.now(timezone.utc)


# Three models whose accuracy order (A, B, C) differs from their parameter order (B, C, A).
MODELS = {
    "model_a.in1k": dict(accuracy=0.8, num_params=50_000_000, paper_name="Model A", seed=1),
    "model_b.in1k": dict(accuracy=0.55, num_params=5_000_000, paper_name=None, seed=2),
    "model_c.in1k": dict(accuracy=0.3, num_params=20_000_000, paper_name="<script>alert('C')</script> | *C*", seed=3),
}


# What focus-eval records under --preprocess paper (the default) for a 224-pixel model.
PAPER_PREPROCESSING = {"protocol": "paper", "custom": False, "input_size": [3, 224, 224], "resize": 224,
                       "crop_pct": 1.0, "crop_mode": "center", "interpolation": "bilinear",
                       "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def fabricate_predictions(truth: pa.Table, accuracy: float, seed: int, label_space: str = "imagenet",
                          mapping: str | None = "paper") -> pa.Table:
    """A model's predictions in scoring.PREDICTION_SCHEMA: top-1 right with `accuracy`.

    `prediction` follows the label space and mapping as harness.labels.focus_predictions does; under the
    restricted mapping, a row without a mapped class in its top-5 predicts class 0 (the argmax lies below).
    """
    rng = np.random.default_rng(seed)
    focus_of = imagenet_to_focus_index() if label_space == "imagenet" else np.arange(len(schema.CLASS_NAMES))
    labels = truth.column("label").to_numpy()
    top5_ids = np.empty((truth.num_rows, 5), dtype=np.int64)
    for row, label in enumerate(labels):
        right = rng.random() < accuracy
        top1 = rng.choice(np.flatnonzero((focus_of == label) == right))
        others = rng.choice(np.setdiff1d(np.arange(len(focus_of)), [top1]), size=4, replace=False)
        top5_ids[row] = [top1, *others]
    top5_probs = -np.sort(-rng.dirichlet(np.ones(6), size=truth.num_rows)[:, :5], axis=1)
    top5_focus = focus_of[top5_ids]
    prediction = top5_focus[:, 0]
    if mapping == "restricted":
        mapped = top5_focus >= 0
        best = top5_focus[np.arange(truth.num_rows), mapped.argmax(axis=1)]
        prediction = np.where(mapped.any(axis=1), best, 0)
    columns = {name: truth.column(name) for name in scoring.ANNOTATION_COLUMNS} | {
        "prediction": pa.array(prediction),
        "top5_ids": pa.array(list(top5_ids)),
        "top5_probs": pa.array(list(top5_probs.astype(np.float32))),
        "top5_correct": pa.array((top5_focus == labels[:, None]).any(axis=1)),
        "correct": pa.array(prediction == labels),
    }
    table_schema = scoring.PREDICTION_SCHEMA
    return pa.table([columns[f.name] for f in table_schema], names=table_schema.names).cast(table_schema).sort_by(
        "file_name")


def fabricate_run(run_dir: Path, truth: pa.Table, model: str, *, accuracy: float, num_params: int,
                  paper_name: str | None, seed: int, **config) -> Path:
    folder = runfolder.model_dir(run_dir, model)
    folder.mkdir(parents=True)
    run_file = run_dir / runfolder.RUN_FILE  # as focus-eval writes it: the run's models and its images (every one)
    record = json.loads(run_file.read_text()) if run_file.is_file() else {
        "dataset_fingerprint": statistics.dataset_fingerprint(truth), "num_images": truth.num_rows, "models": [],
        "selection": {"limit": None, "subset": "stratified", "categories": None, "times": None, "weathers": None,
                      "locations": None, "locations_match": "any", "humans": None, "seed": None}}
    record["models"].append(model)
    runfolder.write_json(run_file, record)
    predictions = fabricate_predictions(truth, accuracy, seed, config.get("label_space", "imagenet"),
                                        config.get("mapping", "paper"))
    pq.write_table(predictions, folder / runfolder.PREDICTIONS_FILE)
    runfolder.write_json(folder / runfolder.METRICS_FILE,
                         scoring.compute_metrics(predictions) | {"n_failed_images": 0})
    runfolder.write_json(folder / runfolder.FAILED_FILE, [])
    runfolder.write_json(folder / runfolder.CONFIG_FILE, {
        "model": model, "paper_name": paper_name,
        "weights": "hub-cache", "sha256": hashlib.sha256(model.encode()).hexdigest(), "random_init": False,
        "num_params": num_params, "input_size": [3, 224, 224],
        "data_config": {"input_size": [3, 224, 224], "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406],
                        "std": [0.229, 0.224, 0.225], "crop_pct": 0.875, "crop_mode": "center"},
        "preprocessing": PAPER_PREPROCESSING,
        "precision": "fp32", "label_space": "imagenet", "mapping": "paper", "harness_version": "0.1.0",
        "dataset_fingerprint": statistics.dataset_fingerprint(truth),
        "started": (NOW - timedelta(hours=2)).isoformat(), "finished": (NOW - timedelta(hours=1)).isoformat(),
        "versions": {"torch": "2.14.1", "timm": "1.0.31"},
    } | config)
    return folder


def restamp(submission: Path) -> None:
    """Record the files' new hashes, as a careful tamperer would, so only the tampering itself shows."""
    metadata = json.loads((submission / submission_format.SUBMISSION_FILE).read_text())
    metadata["files"] = submission_format.file_records(submission)
    write_submitted_json(submission / submission_format.SUBMISSION_FILE, metadata)


def write_submitted_json(path: Path, data) -> None:
    """A JSON file of a submission (which holds its files alone: no manifest of the toolkit's)."""
    outputs.write_atomic(path, runfolder.json_text(data))


def edit_json(submission: Path, name: str, edit) -> None:
    data = json.loads((submission / name).read_text())
    edit(data)
    write_submitted_json(submission / name, data)
    restamp(submission)


def edit_predictions(submission: Path, edit) -> None:
    path = submission / submission_format.PREDICTIONS_FILE
    pq.write_table(edit(pq.read_table(path)), path)
    restamp(submission)


def rejected(submission: Path, truth, **kwargs) -> list[str]:
    result = verification.verify(submission, truth, **kwargs)
    assert not result.accepted
    return result.problems


def as_version_1(submission: Path) -> None:
    """Make a packed submission what pack wrote before schema version 2: no preprocessing recorded, and
    metrics from before the metric returned gap_overall_paper."""
    def edit(metadata):
        metadata["schema_version"] = 1
        del metadata["preprocessing"]

    metrics = json.loads((submission / submission_format.METRICS_FILE).read_text())
    del metrics["gap_overall_paper"]
    write_submitted_json(submission / submission_format.METRICS_FILE, metrics)
    edit_json(submission, submission_format.SUBMISSION_FILE, edit)


def _varint(value: int, width: int | None = None) -> bytes:
    """`value` as a Thrift compact varint, padded to `width` bytes (a reader takes a padded varint)."""
    out = []
    while value >= 0x80 or (width is not None and len(out) < width - 1):
        out.append(value & 0x7F | 0x80)
        value >>= 7
    if value >= 0x80 or (width is not None and len(out) + 1 != width):
        raise ValueError(f"{value} does not fit in {width} bytes")
    return bytes([*out, value])


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


def patch_integer(path: Path, start: int, end: int, old: int, new: int) -> None:
    """Replace the integer field whose value is `old` in bytes start..end of a file by `new`, in place (the
    same number of bytes): how a file is made to lie about itself. `old` must occur there exactly once."""
    data = bytearray(path.read_bytes())
    encoded = _varint(_zigzag(old))
    region = bytes(data[start:end])
    assert region.count(encoded) == 1, f"{old} is encoded {region.count(encoded)} times in bytes {start}..{end}"
    at = start + region.index(encoded)
    data[at: at + len(encoded)] = _varint(_zigzag(new), len(encoded))
    path.write_bytes(bytes(data))


def patch_footer_integer(path: Path, old: int, new: int) -> None:
    """patch_integer in the Parquet footer."""
    size = path.stat().st_size
    footer = pq.ParquetFile(path).metadata.serialized_size
    patch_integer(path, size - 8 - footer, size - 8, old, new)


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` made read-only: its mode for a user, immutable (chattr +i) for root, whom modes do not stop."""
    made = ["chattr", "+i", str(folder)] if os.geteuid() == 0 else ["chmod", "a-w", str(folder)]
    if subprocess.run(made, capture_output=True).returncode:
        pytest.skip(f"{' '.join(made[:2])} is not available here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)] if os.geteuid() == 0 else ["chmod", "u+w", str(folder)],
                       check=True)
