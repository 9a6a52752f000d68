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
how an image became the model's input: harness.preprocess.Preprocessing's record; a resume must match it.
predictions.parquet's rows are harness.scoring.PREDICTION_SCHEMA's.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import importlib.metadata
import json
import logging
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from focus_common import inputs
from focus_common.ownership import Written

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]

# The libraries whose versions config.json and run.json record.
LIBRARIES = ("torch", "torchvision", "timm", "accelerate", "datasets", "evaluate", "pyarrow", "numpy", "pillow")

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
PREDICTIONS_FILE = "predictions.parquet"
PARTS_DIR = "parts"
FAILED_FILE = "failed_images.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
FIGURES_DIR = "figures"

def now() -> str:
    """The time now, as the run folder's records write it (UTC, seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def library_versions() -> dict[str, str]:
    """Python's and the libraries' versions, as config.json and run.json record them."""
    versions = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def model_slug(model_name: str) -> str:
    """A model's folder name, one per spec (an injective encoding): a spec of up to 80 letters, digits, '.', '_'
    and '-' starting with a letter or digit is its own folder name; any other becomes a readable slug, '~' and
    a hash of the whole spec ('~' is never in the first kind, so the two kinds cannot meet).

    >>> model_slug("resnet50.tv_in1k"), model_slug("hf-hub:timm/resnet50.tv_in1k")
    ('resnet50.tv_in1k', 'hf-hub_timm_resnet50.tv_in1k~2493498fdc')
    >>> model_slug("local-dir:/a/b"), model_slug("local-dir:/a_b"), model_slug("..")
    ('local-dir_a_b~a4d283771b', 'local-dir_a_b~158921e36c', 'model~5ec1f7e700')
    """
    if _PLAIN_SPEC.fullmatch(model_name):
        return model_name
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name).strip("._-")[:_READABLE_CHARACTERS] or "model"
    return f"{readable}~{hashlib.sha256(model_name.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


_PLAIN_SPEC = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
_READABLE_CHARACTERS = 60


def model_dir(run_dir: str | Path, model_name: str) -> Path:
    return Path(run_dir) / model_slug(model_name)


# Every file of a run folder is written whole (under a fresh name, then renamed) and recorded in its folder's
# manifest (focus_common.ownership): it replaces only a file the toolkit wrote there, and only such files
# are ever deleted.

def json_text(data: Any) -> str:
    """`data` as the run folder's JSON files hold it: indented, with no NaN or Infinity (they are not JSON)."""
    return json.dumps(_finite(data), indent=2, allow_nan=False) + "\n"


def write_json(path: str | Path, data: Any) -> None:
    """A JSON file of the run folder (json_text)."""
    write_text(path, json_text(data))


def write_text(path: str | Path, text: str) -> None:
    """A text file of the run folder."""
    Written(Path(path).parent).replace(path, text)


def write_parquet(path: str | Path, table: pa.Table) -> None:
    """A Parquet file of the run folder."""
    Written(Path(path).parent).replace(path, lambda staged: pq.write_table(table, staged))


def save_figure(figure: Any, path: str | Path, dpi: int) -> Path:
    """A matplotlib figure as a PNG file of the run folder; returns the path."""
    Written(Path(path).parent).replace(path, lambda staged: figure.savefig(staged, dpi=dpi, format="png"))
    return Path(path)


def read_json(path: str | Path) -> Any:
    """A JSON file of the run folder, read safely (a regular file, 64 MB at most) and checked against the shape the
    harness reads it in (schemas/run_folder.schema.json, by file name): a damaged or tampered one is a ValueError
    that names it and the first field that is wrong."""
    path = Path(path)
    data = inputs.read_json(path)
    schema = _run_folder_schemas().get(path.name)
    if schema is not None:
        import jsonschema  # a dependency of the harness; imported where it is needed

        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
        if error is not None:
            where = "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
            raise ValueError(f"{path}: {where}: {error.message[:200]}; the harness wrote it otherwise. Delete it and "
                             f"rerun the command that wrote it")
    return data


@functools.lru_cache(maxsize=1)
def _run_folder_schemas() -> dict[str, dict[str, Any]]:
    """{file name: its JSON schema}, each with the shared definitions."""
    document = json.loads((Path(__file__).with_name("schemas") / "run_folder.schema.json").read_text())
    definitions = document["$defs"]
    return {name: {"$defs": definitions, **definition} for name, definition in definitions.items()
            if name.endswith(".json")}


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
