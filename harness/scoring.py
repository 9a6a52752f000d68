"""The predictions table and its scoring: one schema, one builder, the metric's one implementation.

focus-eval writes a model's predictions.parquet in PREDICTION_SCHEMA; the leaderboard joins a submission's
predictions to the ground truth into the same table (`prediction_table` builds both), and both score it with
`compute_metrics`, the FOCUS metric's own arithmetic (metrics/focus_generalization/focus_metrics.py, loaded by
path: importing `evaluate` costs seconds).
"""

from __future__ import annotations

import functools
import importlib.util
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harness.runfolder import REPO_ROOT

_METRIC_DIR = Path("metrics") / "focus_generalization"
# A checkout (or editable install) has the metric beside the harness; an installed wheel under share/.
METRIC_DIR = next(
    (path for path in (REPO_ROOT / _METRIC_DIR, Path(sysconfig.get_path("data")) / "share" / "focus-benchmark"
                       / _METRIC_DIR) if path.is_dir()),
    REPO_ROOT / _METRIC_DIR,
)
METRIC_PATH = METRIC_DIR / "focus_generalization.py"  # the evaluate module
METRIC_MATH_PATH = METRIC_DIR / "focus_metrics.py"  # its arithmetic, which imports numpy only

# One row per image. `prediction` is the FOCUS class id, -1 when the model's top-1 maps to no FOCUS
# class; `top5_ids` are the model's own class ids (ImageNet-1k, or FOCUS for a 10-way head).
PREDICTION_SCHEMA = pa.schema([
    ("file_name", pa.string()),
    ("label", pa.int64()),
    ("prediction", pa.int64()),
    ("top5_ids", pa.list_(pa.int32())),
    ("top5_probs", pa.list_(pa.float32())),
    ("top5_correct", pa.bool_()),
    ("correct", pa.bool_()),
    ("time", pa.int64()),
    ("weather", pa.int64()),
    ("locations", pa.list_(pa.int64())),
    ("uncommon_time", pa.bool_()),
    ("uncommon_weather", pa.bool_()),
    ("uncommon_location", pa.bool_()),
    ("uncommon_locations", pa.list_(pa.int64())),
    ("num_uncommon", pa.int64()),
    ("partition", pa.int64()),
])
# The dataset columns copied into every prediction row.
ANNOTATION_COLUMNS = ["file_name", "label", "time", "weather", "locations", "uncommon_time", "uncommon_weather",
                      "uncommon_location", "uncommon_locations", "num_uncommon", "partition"]


def prediction_table(annotations: pa.Table, prediction: np.ndarray, top5_ids: np.ndarray, top5_probs: np.ndarray,
                     top5_focus: np.ndarray, ok: np.ndarray | None = None) -> pa.Table:
    """Rows of PREDICTION_SCHEMA: the images' annotation columns (`annotations`, one row per image) beside their
    predictions. `top5_focus` is the FOCUS class of each top-5 class (-1: none), which top5_correct compares
    with the label; an image not `ok` (it could not be decoded) is wrong whatever it predicts."""
    label = annotations.column("label").to_numpy()
    ok = np.ones(len(label), dtype=bool) if ok is None else ok
    columns = {name: annotations.column(name) for name in ANNOTATION_COLUMNS}
    columns.update(
        prediction=pa.array(prediction, type=pa.int64()),
        top5_ids=pa.array(list(np.asarray(top5_ids, dtype=np.int32)), type=pa.list_(pa.int32())),
        top5_probs=pa.array(list(np.asarray(top5_probs, dtype=np.float32)), type=pa.list_(pa.float32())),
        top5_correct=pa.array((top5_focus == label[:, None]).any(axis=1) & ok),
        correct=pa.array((prediction == label) & ok),
    )
    return pa.table({field.name: columns[field.name].cast(field.type) for field in PREDICTION_SCHEMA},
                    schema=PREDICTION_SCHEMA)


@functools.lru_cache(maxsize=1)
def load_metric_module() -> ModuleType:
    """The metric's arithmetic (compute_focus_metrics, wilson_interval, format_summary), one implementation.

    It is imported from the metric's focus_metrics.py, not through `evaluate`, whose import costs
    seconds (it imports transformers' pipelines when transformers is installed).
    """
    spec = importlib.util.spec_from_file_location("focus_metrics", METRIC_MATH_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_metric(**kwargs: Any):
    """The FOCUS metric as an `evaluate` module, wherever the toolkit is installed (``evaluate.load`` on its folder).

    With a run's predictions: ``load_metric().compute(**metric_inputs(read_predictions(PATH)), seed=0)``.
    """
    import evaluate

    return evaluate.load(str(METRIC_DIR), **kwargs)


def metric_inputs(predictions: pa.Table) -> dict[str, Any]:
    """The metric's input columns from a predictions table (or the dataset's own columns plus predictions)."""
    return {
        "predictions": predictions.column("prediction").to_numpy(),
        "references": predictions.column("label").to_numpy(),
        "time": predictions.column("time").to_numpy(),
        "weather": predictions.column("weather").to_numpy(),
        "locations": predictions.column("locations").to_pylist(),
        "uncommon_time": predictions.column("uncommon_time").to_numpy(zero_copy_only=False),
        "uncommon_weather": predictions.column("uncommon_weather").to_numpy(zero_copy_only=False),
        "uncommon_locations": predictions.column("uncommon_locations").to_pylist(),
    }


def compute_metrics(predictions: pa.Table, *, n_bootstrap: int = 1000, seed: int = 0, **kwargs) -> dict[str, Any]:
    """metrics.json content: the metric's output plus top-1 and top-5 accuracy."""
    metric = load_metric_module()
    results = metric.compute_focus_metrics(**metric_inputs(predictions), n_bootstrap=n_bootstrap, seed=seed, **kwargs)
    n = predictions.num_rows
    results["top1"] = float(np.mean(predictions.column("correct").to_numpy(zero_copy_only=False))) if n else None
    results["top5"] = float(np.mean(predictions.column("top5_correct").to_numpy(zero_copy_only=False))) if n else None
    return results


def read_predictions(path: str | Path) -> pa.Table:
    return pq.read_table(path, schema=PREDICTION_SCHEMA)
