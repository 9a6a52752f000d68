"""The run folder: where the harness writes, and where reports and the leaderboard read.

    RUN_DIR/
      run.json                      the command line, versions, dataset source and fingerprint
      report.md, figures/*.png      the paper's tables and figures over every model of the run
      <model>/                      one folder per model (name with "/" and ":" made safe)
        config.json                 model, weights source and hash, data config, options, dataset fingerprint
        parts/part-XXXXX.parquet    predictions written as they come (resume reads these)
        predictions.parquet         all predictions, ordered by file_name, once the model is done
        failed_images.json          images that could not be decoded: left out of the metrics
        metrics.json                the focus_generalization metric's output, plus top1/top5

config.json["preprocessing"] (also in focus-probe's features.json and focus-gradcam's gradcam.json) says
how an image became the model's input (harness/preprocess.py); a resume must match it:

    protocol        "paper" (the authors' resize and centre crop) or "timm" (the model's timm data config)
    custom          true when a timm validate.py override (--img-size, --crop-pct, ...) was given
    input_size      [3, H, W], the crop
    resize          the size resized to before the crop, floor(crop / crop_pct): the shorter side
                    (crop_mode center), the longer (border), or both sides (squash); [h, w] when not square
    crop_pct        crop / resize (1.0 under the paper protocol: no 0.875 crop)
    crop_mode       "center", "squash" or "border"
    interpolation   the resize filter: "bilinear", "bicubic", ...
    mean, std       the normalisation, 3 values each
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import math
import re
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from focus_common import inputs, outputs

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
_METRIC_DIR = Path("metrics") / "focus_generalization"
# A checkout (or editable install) has the metric beside the harness; an installed wheel under share/.
METRIC_DIR = next(
    (path for path in (REPO_ROOT / _METRIC_DIR, Path(sysconfig.get_path("data")) / "share" / "focus-benchmark"
                       / _METRIC_DIR) if path.is_dir()),
    REPO_ROOT / _METRIC_DIR,
)
METRIC_PATH = METRIC_DIR / "focus_generalization.py"  # the evaluate module
METRIC_MATH_PATH = METRIC_DIR / "focus_metrics.py"  # its arithmetic, which imports numpy only

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
PREDICTIONS_FILE = "predictions.parquet"
PARTS_DIR = "parts"
FAILED_FILE = "failed_images.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
FIGURES_DIR = "figures"

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


def preprocessing_summary(preprocessing: dict[str, Any]) -> str:
    """A preprocessing dict in a few words (reports, logs): protocol, resize→crop, filter, what is not usual.

    >>> preprocessing_summary({"protocol": "timm", "custom": False, "input_size": [3, 224, 224], "resize": 256,
    ...                        "crop_pct": 0.875, "crop_mode": "center", "interpolation": "bicubic",
    ...                        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    'timm: 256→224 bicubic'
    """
    height, width = preprocessing["input_size"][-2:]
    resize = preprocessing["resize"]
    words = [f"{_size(resize)}→{_size([height, width])} {preprocessing['interpolation']}"]
    if preprocessing["crop_mode"] != "center":
        words.append(preprocessing["crop_mode"])
    if preprocessing["custom"]:
        words.append(f"mean {_values(preprocessing['mean'])} std {_values(preprocessing['std'])}")
    return f"{preprocessing['protocol']}{' (custom)' if preprocessing['custom'] else ''}: " + ", ".join(words)


def _size(size: int | list[int]) -> str:
    return str(size) if isinstance(size, int) else str(size[0]) if size[0] == size[1] else f"{size[0]}x{size[1]}"


def _values(values: list[float]) -> str:
    return f"{values[0]:g}" if len(set(values)) == 1 else ",".join(f"{v:g}" for v in values)


def model_slug(model_name: str) -> str:
    """A folder name for a model: `hf-hub:timm/x` -> `hf-hub_timm_x`.

    >>> model_slug("hf-hub:timm/resnet50.tv_in1k")
    'hf-hub_timm_resnet50.tv_in1k'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_name)


def model_dir(run_dir: str | Path, model_name: str) -> Path:
    return Path(run_dir) / model_slug(model_name)


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


def write_json(path: str | Path, data: Any) -> None:
    """JSON with no NaN or Infinity (they are not JSON); written to a temporary name, then renamed."""
    outputs.write_atomic(path, json.dumps(_finite(data), indent=2, allow_nan=False) + "\n")


def write_text(path: str | Path, text: str) -> None:
    """A text file of the run folder, replaced whole (focus_common.outputs.write_atomic)."""
    outputs.write_atomic(path, text)


def write_parquet(path: str | Path, table: pa.Table) -> None:
    """A Parquet file of the run folder, replaced whole: written under a fresh name beside it, then renamed."""
    outputs.replace_with(path, lambda staged: pq.write_table(table, staged))


def save_figure(figure: Any, path: str | Path, dpi: int) -> Path:
    """A matplotlib figure as a PNG file of the run folder, replaced whole; returns the path."""
    outputs.replace_with(path, lambda staged: figure.savefig(staged, dpi=dpi, format="png"))
    return Path(path)


def read_json(path: str | Path) -> Any:
    """A JSON file of the run folder, read safely (a regular file, 64 MB at most); a damaged one is a ValueError
    that names it."""
    return inputs.read_json(path)



def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value
