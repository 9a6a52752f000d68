"""The FOCUS leaderboard: pack a run into a submission, verify it by recomputation, render, push to the Hub.

    focus-leaderboard pack RUN_DIR --model NAME [--output DIR]
    focus-leaderboard verify SUBMISSION --data DATASET
    focus-leaderboard render SUBMISSIONS_DIR OUT --data DATASET [--strict]
    focus-leaderboard push SUBMISSION --repo REPO_ID --data DATASET [--dry-run]

A submission is one folder:

    SUBMISSION/
      submission.json      what was evaluated, how and on which data (schemas/submission.schema.json)
      predictions.parquet  one row per image: file_name, prediction (FOCUS id, -1 for none), top5_ids, top5_probs
      metrics.json         the metrics the submitter claims: the run's metrics.json without n_failed_images (0)
      model_index.yaml     written by push: the model-index block for the model's card (verify ignores it)

Nothing in a submission is taken on trust. `verify` joins the predictions to the ground-truth dataset by
file_name (labels, attributes and uncommon flags always come from the dataset), recomputes every metric
with `runfolder.compute_metrics` (the harness's own implementation) and the recorded bootstrap settings,
and compares the claims field by field. The leaderboard shows only recomputed numbers, in one ranked table
per label space and mapping (PROTOCOLS): accuracies scored under different mappings do not compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import math
import os
import re
import shutil
import string
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import datasets
import jsonschema
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCardData, metadata_update

import focus_dataset
from harness import runfolder

SUBMISSION_FILE = "submission.json"
PREDICTIONS_FILE = runfolder.PREDICTIONS_FILE
METRICS_FILE = runfolder.METRICS_FILE
MODEL_INDEX_FILE = "model_index.yaml"
SUBMITTED_FILES = (SUBMISSION_FILE, PREDICTIONS_FILE, METRICS_FILE)
FAILED_COUNT = "n_failed_images"  # the harness's count in metrics.json; 0 in a submission, which drops it
HASHED_FILES = (PREDICTIONS_FILE, METRICS_FILE)  # submission.json records their size and SHA-256

SCHEMA_PATH = Path(__file__).with_name("schemas") / "submission.schema.json"
TEMPLATE_PATH = Path(__file__).with_name("templates") / "leaderboard.html"
SCHEMA_VERSION = 1

# The submitted predictions: the harness's columns that do not come from the dataset.
SUBMISSION_SCHEMA = pa.schema([
    ("file_name", pa.string()),
    ("prediction", pa.int64()),
    ("top5_ids", pa.list_(pa.int32())),
    ("top5_probs", pa.list_(pa.float32())),
])
TOP_K = 5
NUM_CLASSES = {"imagenet": 1000, "focus": len(focus_dataset.CLASS_NAMES)}

# The headline numbers of a row: accuracy on all images, on P0 (no uncommon attribute) and on P1, P2, P3
# (images with 1, 2, 3 uncommon attributes), and the gaps.
COUNT_PARTITIONS = ("P0", *focus_dataset.PARTITION_GROUPS)
UNCOMMON_PARTITIONS = tuple(focus_dataset.PARTITION_GROUPS)
GAPS = ("G_t", "G_w", "G_l", "gap_overall")

# Claims match when point values agree to POINT_TOLERANCE; intervals are recomputed with the recorded
# seed, so they must agree exactly (INTERVAL_TOLERANCE). Counts and labels always agree exactly.
POINT_TOLERANCE = 1e-9
INTERVAL_TOLERANCE = 0.0
INTERVAL_FIELDS = frozenset({"ci_low", "ci_high"})

# Dates outside [EARLIEST_DATE, now + CLOCK_SKEW] are absurd: FOCUS appeared in 2022, and a naive
# date (no time zone, read as UTC) may run up to a day ahead of UTC.
EARLIEST_DATE = datetime(2022, 1, 1, tzinfo=timezone.utc)
CLOCK_SKEW = timedelta(days=1)

FOCUS_DATASET_NAME = "FOCUS"
DEFAULT_DATASET_ID = "focus"
SHOWN = 5  # file names quoted per kind of problem


@dataclasses.dataclass(frozen=True)
class Limits:
    """Sizes checked before a file is parsed (a submission comes from anyone)."""

    predictions_bytes: int = 50 * 2**20
    json_bytes: int = 2**20
    rows: int = 1_000_000
    uncompressed_bytes: int = 512 * 2**20  # the Parquet file's own account of its decoded size


class LeaderboardError(ValueError):
    """A command cannot run: a missing run or model, an output in the way, an unreadable dataset."""


class SubmissionError(ValueError):
    """One problem with one submitted file."""


class StrictRenderError(LeaderboardError):
    """render --strict found submissions that fail verification, and wrote nothing."""

    def __init__(self, skipped: list[Verification]):
        self.skipped = skipped
        names = ", ".join(v.submission.name for v in skipped)
        super().__init__(f"{len(skipped)} submission(s) failed verification ({names}); nothing was written "
                         f"(--strict)")


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """The dataset that predictions are scored against: its annotation columns and fingerprint."""

    table: pa.Table
    fingerprint: str
    source: str

    @property
    def num_images(self) -> int:
        return self.table.num_rows


@dataclasses.dataclass
class Verification:
    """What verify found: every problem, and the recomputed metrics when they could be computed."""

    submission: Path
    problems: list[str]
    metadata: dict | None = None
    claimed: dict | None = None
    recomputed: dict | None = None
    compared_fields: int = 0

    @property
    def accepted(self) -> bool:
        return not self.problems and self.recomputed is not None


def ground_truth(data: str | os.PathLike) -> GroundTruth:
    """Load the ground truth once: a converted folder, a raw release (folder or zip) or a Hub id."""
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        table = focus_dataset.annotation_table(focus_dataset.load_focus(data))
    except Exception as err:  # any loader failure becomes one clear message at the command line
        raise LeaderboardError(
            f"--data {data}: cannot load the FOCUS dataset ({type(err).__name__}: {err}). Pass a converted "
            f"folder (focus-dataset convert), a release folder or focus.zip, or a Hub dataset id."
        ) from err
    return GroundTruth(table, focus_dataset.dataset_fingerprint(table), str(data))


# --------------------------------------------------------------------------------------------
# Strict reading
# --------------------------------------------------------------------------------------------

def _reject_constant(name: str) -> float:
    raise SubmissionError(f"{name} is not a number in JSON (NaN and infinities are not allowed)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise SubmissionError(f"{text} overflows to infinity (NaN and infinities are not allowed)")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    result = dict(pairs)
    if len(result) < len(pairs):
        seen = set()
        duplicated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise SubmissionError(f"the key {_shown(duplicated)} appears twice in one object")
    return result


def loads_strict(data: bytes | str) -> Any:
    """JSON as RFC 8259 has it: no NaN or infinities (also none by overflow like 1e999), no duplicate keys.

    >>> loads_strict('{"a": [1, 2.5, null]}')
    {'a': [1, 2.5, None]}
    >>> for text in ('{"a": NaN}', '{"a": 1e999}', '{"a": 1, "a": 2}'):
    ...     try:
    ...         loads_strict(text)
    ...     except SubmissionError as err:
    ...         print(err)
    NaN is not a number in JSON (NaN and infinities are not allowed)
    1e999 overflows to infinity (NaN and infinities are not allowed)
    the key 'a' appears twice in one object
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                      object_pairs_hook=_unique_keys)


def read_json_strict(path: Path, max_bytes: int) -> Any:
    """A submitted JSON file, its size checked before it is read; every failure is a SubmissionError."""
    size = path.stat().st_size
    if size > max_bytes:
        raise SubmissionError(f"{path.name}: {size:,} bytes is over the limit of {max_bytes:,} bytes; "
                              f"a submission's JSON files are small (raise the limit with --max-json-mb)")
    try:
        return loads_strict(path.read_bytes())
    except UnicodeDecodeError as err:
        raise SubmissionError(f"{path.name} is not valid JSON: it is not UTF-8 text ({err.reason} at byte "
                              f"{err.start})") from err
    except json.JSONDecodeError as err:
        raise SubmissionError(f"{path.name} is not valid JSON: {err}") from err
    except SubmissionError as err:
        raise SubmissionError(f"{path.name} is not valid JSON: {err}") from err
    except (ValueError, RecursionError) as err:  # e.g. an integer of more than 4300 digits
        raise SubmissionError(f"{path.name} is not valid JSON: {err}") from err


def file_records(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The `files` block of submission.json: size and SHA-256 of each hashed file."""

    folder = Path(folder)
    return {name: {"size": (folder / name).stat().st_size, "sha256": runfolder.sha256_file(folder / name)}
            for name in HASHED_FILES}


# --------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def submission_schema() -> dict:
    """The JSON Schema of submission.json (harness/schemas/submission.schema.json)."""
    return json.loads(SCHEMA_PATH.read_text())


def _json_path(parts: Sequence[Any], root: str = "$") -> str:
    """`$.a.b[0]["P(t)"]`: where a value sits in a JSON document."""
    path = root
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            path += f".{part}"
        else:
            path += f"[{json.dumps(part[:60])}]"
    return path


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _shown(value: Any, width: int = 80) -> str:
    """A value as Python writes it, clipped: submitted strings can be long, and lists deep."""
    try:
        return _clip(repr(value), width)
    except RecursionError:
        return f"a deeply nested {type(value).__name__}"


def _parse_date(value: Any, where: str, problems: list[str]) -> datetime | None:
    if not isinstance(value, str):
        return None  # the schema reports a wrong type
    try:
        date = datetime.fromisoformat(value)
    except ValueError:
        problems.append(f"{SUBMISSION_FILE} {where}: {_shown(value)} is not an ISO 8601 date and time, "
                        f"e.g. 2026-11-02T09:30:00+00:00")
        return None
    return date if date.tzinfo else date.replace(tzinfo=timezone.utc)


def metadata_problems(metadata: Any, *, now: datetime | None = None) -> list[str]:
    """Schema violations and absurd values in submission.json, each with its JSON path.

    Beyond the schema: dates must lie between 2022-01-01 and now (a day of clock skew allowed) and in
    the order started <= finished <= submitted; a model with random weights is not ranked.
    """
    validator = jsonschema.Draft202012Validator(submission_schema())
    errors = sorted(validator.iter_errors(metadata), key=lambda e: [str(p) for p in e.absolute_path])
    problems = [f"{SUBMISSION_FILE} {_json_path(list(e.absolute_path))}: {_clip(e.message, 300)}" for e in errors]
    if not isinstance(metadata, dict):
        return problems
    if metadata.get("random_init") is True:
        problems.append(f"{SUBMISSION_FILE} $.random_init: the model was evaluated with random weights; the "
                        f"leaderboard ranks trained models only (evaluate without --random-init)")
    now = now or datetime.now(timezone.utc)
    evaluated = metadata.get("evaluated") if isinstance(metadata.get("evaluated"), dict) else {}
    dates = {
        "$.evaluated.started": _parse_date(evaluated.get("started"), "$.evaluated.started", problems),
        "$.evaluated.finished": _parse_date(evaluated.get("finished"), "$.evaluated.finished", problems),
        "$.submitted": _parse_date(metadata.get("submitted"), "$.submitted", problems),
    }
    for where, date in dates.items():
        if date is not None and date > now + CLOCK_SKEW:
            problems.append(f"{SUBMISSION_FILE} {where}: {date.isoformat()} is in the future (now is "
                            f"{now.isoformat(timespec='seconds')})")
        if date is not None and date < EARLIEST_DATE:
            problems.append(f"{SUBMISSION_FILE} {where}: {date.isoformat()} is before FOCUS was published "
                            f"({EARLIEST_DATE.date().isoformat()})")
    ordered = [(where, date) for where, date in dates.items() if date is not None]
    for (earlier, first), (later, second) in zip(ordered, ordered[1:]):
        if first > second:
            problems.append(f"{SUBMISSION_FILE} {later}: {second.isoformat()} comes before {earlier} "
                            f"({first.isoformat()})")
    return problems


def submission_id(metadata: dict) -> str:
    """A folder name for a submission, unique per model, weights, precision and mapping.

    >>> submission_id({"model": "hf-hub:timm/resnet50.tv_in1k", "precision": "bf16", "mapping": "paper",
    ...                "weights": {"sha256": "0123456789abcdef" * 4}})
    'hf-hub_timm_resnet50.tv_in1k-bf16-01234567'
    """
    name = f"{runfolder.model_slug(metadata['model'])}-{metadata['precision']}-{metadata['weights']['sha256'][:8]}"
    return name + ("-restricted" if metadata.get("mapping") == "restricted" else "")


def display_name(metadata: dict) -> str:
    paper_name = metadata.get("paper_name")
    return f"{paper_name} ({metadata['model']})" if paper_name else metadata["model"]


# --------------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------------

def _examples(names: Sequence[str]) -> str:
    quoted = ", ".join(_shown(name, 60) for name in names[:SHOWN])
    return quoted + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _is_list_of(type_: pa.DataType, predicate) -> bool:
    return (pa.types.is_list(type_) or pa.types.is_large_list(type_)) and predicate(type_.value_type)


# Any integer or float width is read; values are range-checked after a widening cast.
_COLUMN_TYPES = {
    "file_name": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "prediction": pa.types.is_integer,
    "top5_ids": lambda t: _is_list_of(t, pa.types.is_integer),
    "top5_probs": lambda t: _is_list_of(t, pa.types.is_floating),
}
_READ_SCHEMA = pa.schema([("file_name", pa.string()), ("prediction", pa.int64()),
                          ("top5_ids", pa.list_(pa.int64())), ("top5_probs", pa.list_(pa.float64()))])


def read_submitted_predictions(path: Path, limits: Limits) -> pa.Table:
    """predictions.parquet with the submission's four columns and types; sizes checked before reading."""
    size = path.stat().st_size
    if size > limits.predictions_bytes:
        raise SubmissionError(f"{path.name}: {size:,} bytes is over the limit of {limits.predictions_bytes:,} "
                              f"bytes (raise it with --max-predictions-mb)")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise SubmissionError(f"{path.name} is not a Parquet file ({err}); write it with pyarrow, as pack "
                              f"does") from err
    rows, decoded = parquet.metadata.num_rows, sum(
        parquet.metadata.row_group(i).total_byte_size for i in range(parquet.metadata.num_row_groups))
    if rows > limits.rows or decoded > limits.uncompressed_bytes:
        raise SubmissionError(f"{path.name}: {rows:,} rows and {decoded:,} bytes decoded are over the limits of "
                              f"{limits.rows:,} rows and {limits.uncompressed_bytes:,} bytes")
    schema = parquet.schema_arrow
    repeated = sorted({name for name in schema.names if schema.names.count(name) > 1})
    if repeated:
        raise SubmissionError(f"{path.name}: column(s) {repeated} appear more than once")
    problems = []
    missing = [name for name in _COLUMN_TYPES if name not in schema.names]
    if missing:
        problems.append(f"{path.name}: missing column(s) {missing}; a submission holds {SUBMISSION_SCHEMA.names}")
    unexpected = [name for name in schema.names if name not in _COLUMN_TYPES]
    if unexpected:
        problems.append(f"{path.name}: unexpected column(s) {unexpected}; a submission holds only "
                        f"{SUBMISSION_SCHEMA.names} (labels and attributes come from the dataset)")
    for name, accepts in _COLUMN_TYPES.items():
        if name in schema.names and not accepts(schema.field(name).type):
            problems.append(f"{path.name}: column {name!r} has type {schema.field(name).type}, expected "
                            f"{SUBMISSION_SCHEMA.field(name).type}")
    if problems:
        raise SubmissionError("; ".join(problems))
    try:
        table = parquet.read(columns=SUBMISSION_SCHEMA.names)
    except (pa.ArrowException, OSError) as err:
        raise SubmissionError(f"{path.name}: cannot be read ({err})") from err
    return table.cast(_READ_SCHEMA, safe=False).combine_chunks()


def _first(mask: np.ndarray, names: np.ndarray, values: np.ndarray | None = None) -> str:
    row = int(np.flatnonzero(mask)[0])
    shown = f"{_shown(names[row], 60)}"
    return shown + (f": {values[row].tolist()}" if values is not None else "")


def _top5_focus_ids(top5_ids: np.ndarray, label_space: str) -> np.ndarray:
    """The FOCUS class of each top-5 class: the paper's mapping for ImageNet-1k ids, -1 where unmapped."""
    if label_space == "focus":
        return top5_ids
    from harness.labels import imagenet_to_focus_index  # imports torch: only scoring needs it

    return imagenet_to_focus_index()[top5_ids]


def value_problems(predictions: pa.Table, label_space: str | None) -> list[str]:
    """Missing values, ids out of range, top-5 lists of the wrong length: predictions that cannot be scored.

    `label_space` comes from submission.json; with None, ids are checked against 1000 classes.
    """
    name = PREDICTIONS_FILE
    nulls = [column for column in predictions.column_names if predictions.column(column).null_count]
    nulls += [column for column in ("top5_ids", "top5_probs")
              if column not in nulls and pc.list_flatten(predictions.column(column)).null_count]
    if nulls:
        return [f"{name}: column(s) {nulls} hold missing values; every image needs a prediction and a full top-5"]
    files = predictions.column("file_name").to_numpy(zero_copy_only=False)
    prediction = predictions.column("prediction").to_numpy()
    problems = []
    bad = (prediction < -1) | (prediction >= NUM_CLASSES["focus"])
    if bad.any():
        problems.append(f"{name}: {bad.sum()} prediction(s) outside -1..{NUM_CLASSES['focus'] - 1} (a FOCUS class id, "
                        f"or -1 for none of them); first at {_first(bad, files, prediction)}")
    lengths = {column: pc.list_value_length(predictions.column(column)).to_numpy(zero_copy_only=False)
               for column in ("top5_ids", "top5_probs")}
    short = (lengths["top5_ids"] != TOP_K) | (lengths["top5_probs"] != TOP_K)
    if short.any():
        problems.append(f"{name}: {short.sum()} row(s) without exactly {TOP_K} top5_ids and {TOP_K} top5_probs; "
                        f"first at {_first(short, files)}")
        return problems
    ids = _top5(predictions, "top5_ids")
    num_classes = NUM_CLASSES.get(label_space, max(NUM_CLASSES.values()))
    bad = ((ids < 0) | (ids >= num_classes)).any(axis=1)
    if bad.any():
        problems.append(f"{name}: {bad.sum()} row(s) with top5_ids outside 0..{num_classes - 1} (label_space="
                        f"{label_space!r}); first at {_first(bad, files, ids)}")
    return problems


def _top5(predictions: pa.Table, column: str) -> np.ndarray:
    return pc.list_flatten(predictions.column(column)).to_numpy().reshape(predictions.num_rows, TOP_K)


def top5_problems(predictions: pa.Table, label_space: str | None, mapping: str | None) -> list[str]:
    """Top-5 lists that are not a top-5, and predictions that their top-5 contradicts.

    Run on predictions without value problems; with `label_space` None the agreement is not checked.
    """
    name = PREDICTIONS_FILE
    files = predictions.column("file_name").to_numpy(zero_copy_only=False)
    prediction = predictions.column("prediction").to_numpy()
    ids, probs = _top5(predictions, "top5_ids"), _top5(predictions, "top5_probs")
    problems = []
    bad = (np.diff(np.sort(ids, axis=1), axis=1) == 0).any(axis=1)
    if bad.any():
        problems.append(f"{name}: {bad.sum()} row(s) list a class twice in top5_ids; first at "
                        f"{_first(bad, files, ids)}")
    # float32 softmax probabilities: allow rounding in their sum, never NaN, negative or unsorted values.
    bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1) | (probs.sum(axis=1) > 1 + 1e-3) | (
        np.diff(probs, axis=1) > 0).any(axis=1)
    if bad.any():
        problems.append(f"{name}: {bad.sum()} row(s) whose top5_probs are not probabilities in decreasing order "
                        f"summing to at most 1; first at {_first(bad, files, probs)}")
    if label_space is None:
        return problems
    disagree = ~_agrees_with_top5(prediction, _top5_focus_ids(ids, label_space), probs, mapping)
    if disagree.any():
        rule = ("the FOCUS class of the top-1 (paper's mapping)" if label_space == "imagenet" and mapping == "paper"
                else "the best-ranked mapped class of the top-5" if label_space == "imagenet" else "the top-1 class")
        problems.append(f"{name}: {disagree.sum()} prediction(s) are not {rule} (label_space={label_space!r}, "
                        f"mapping={mapping!r}); first at {_first(disagree, files)}: prediction "
                        f"{prediction[disagree][0]}, top5_ids {ids[disagree][0].tolist()}")
    return problems


def _agrees_with_top5(
    prediction: np.ndarray, top5_focus: np.ndarray, probs: np.ndarray, mapping: str | None
) -> np.ndarray:
    """Whether each prediction is what its top-5 implies; classes tied at the top may go either way."""
    matches = top5_focus == prediction[:, None]
    if mapping != "restricted":
        return (matches & (probs == probs[:, :1])).any(axis=1)
    # Restricted: the argmax over mapped classes, which is the best mapped class in the top-5 if there is
    # one; otherwise a mapped class below the top-5, which cannot be checked beyond "not -1".
    mapped = top5_focus >= 0
    best = np.where(mapped, probs, -np.inf).max(axis=1, keepdims=True)
    in_top5 = (matches & mapped & (probs == best)).any(axis=1)
    return np.where(mapped.any(axis=1), in_top5, prediction >= 0)


def scored_predictions(
    truth: GroundTruth, predictions: pa.Table, label_space: str
) -> tuple[pa.Table | None, list[str]]:
    """Join predictions to the dataset by file_name: a table in runfolder.PREDICTION_SCHEMA, or the problems.

    Each dataset image needs exactly one prediction, and no other image may be predicted.
    """
    name = PREDICTIONS_FILE
    problems = []
    files = predictions.column("file_name")
    counts = pc.value_counts(files)
    duplicated = counts.field("values").filter(pc.greater(counts.field("counts"), 1)).to_pylist()
    if duplicated:
        problems.append(f"{name}: {len(duplicated)} image(s) predicted more than once: "
                        f"{_examples(sorted(duplicated))}; a submission predicts every image once")
    known = pc.is_in(files, value_set=truth.table.column("file_name"))
    unknown = files.filter(pc.invert(known)).to_pylist()
    if unknown:
        problems.append(f"{name}: {len(unknown)} predicted image(s) are not in the dataset: "
                        f"{_examples(sorted(unknown))}; were the predictions made on another dataset?")
    present = pc.is_in(truth.table.column("file_name"), value_set=files)
    missing = truth.table.column("file_name").filter(pc.invert(present)).to_pylist()
    if missing:
        problems.append(f"{name}: {len(missing)} image(s) of the dataset have no prediction: "
                        f"{_examples(sorted(missing))}; a submission predicts every image")
    if problems:
        return None, problems
    aligned = predictions.take(pc.index_in(truth.table.column("file_name"), value_set=files))
    labels = truth.table.column("label").to_numpy()
    prediction = aligned.column("prediction").to_numpy()
    top5 = _top5_focus_ids(_top5(aligned, "top5_ids"), label_space)
    columns = {column: truth.table.column(column) for column in runfolder.ANNOTATION_COLUMNS}
    columns |= {
        "prediction": aligned.column("prediction"),
        "top5_ids": aligned.column("top5_ids"),
        "top5_probs": aligned.column("top5_probs"),
        "correct": pa.array(prediction == labels),
        "top5_correct": pa.array((top5 == labels[:, None]).any(axis=1)),
    }
    schema = runfolder.PREDICTION_SCHEMA
    table = pa.table([columns[field.name] for field in schema], names=schema.names).cast(schema)
    return table.sort_by("file_name"), []


# --------------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------------

def recompute_metrics(scored: pa.Table, metric: dict) -> dict:
    """metrics.json as the harness writes it, recomputed with the submission's metric settings."""
    results = runfolder.compute_metrics(scored, n_bootstrap=metric["n_bootstrap"], seed=metric["seed"],
                                        gap_unit=metric["gap_unit"], confidence=metric["confidence"])
    return json.loads(json.dumps(results, allow_nan=False))


def compare_claims(claimed: Any, recomputed: Any, path: str = "$", *, interval: bool = False) -> list[str]:
    """Every field where the claims differ from the recomputation, by JSON path.

    >>> compare_claims({"G_t": {"value": 0.2, "ci_low": 0.1}, "n": 4}, {"G_t": {"value": 0.25, "ci_low": 0.1}, "n": 4})
    ['$.G_t.value: claimed 0.2, recomputed 0.25']
    """
    if isinstance(recomputed, dict):
        if not isinstance(claimed, dict):
            return [f"{path}: claimed {_shown(claimed)}, recomputed an object with the fields {sorted(recomputed)[:6]}"]
        problems = []
        for key, value in recomputed.items():
            where = _json_path([key], path)
            if key not in claimed:
                problems.append(f"{where}: missing from the claims (recomputed {_shown(value)})")
            else:
                problems += compare_claims(claimed[key], value, where, interval=key in INTERVAL_FIELDS)
        problems += [f"{_json_path([key], path)}: not a FOCUS metric (claimed {_shown(claimed[key])}); remove it"
                     for key in claimed if key not in recomputed]
        return problems
    if isinstance(recomputed, list):
        if not isinstance(claimed, list) or len(claimed) != len(recomputed):
            return [f"{path}: claimed {_shown(claimed)}, recomputed {_shown(recomputed)}"]
        return [problem for i, (c, r) in enumerate(zip(claimed, recomputed))
                for problem in compare_claims(c, r, f"{path}[{i}]", interval=interval)]
    if isinstance(recomputed, float) and isinstance(claimed, (int, float)) and not isinstance(claimed, bool):
        tolerance = INTERVAL_TOLERANCE if interval else POINT_TOLERANCE
        if abs(claimed - recomputed) <= tolerance:
            return []
    elif type(claimed) is type(recomputed) and claimed == recomputed:
        return []
    return [f"{path}: claimed {_shown(claimed)}, recomputed {_shown(recomputed)}"]


def _count_fields(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_count_fields(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_fields(v) for v in value)
    return 1


# --------------------------------------------------------------------------------------------
# Verify
# --------------------------------------------------------------------------------------------

def _folder_problems(submission: Path) -> list[str]:
    problems = []
    for name in SUBMITTED_FILES:
        path = submission / name
        if path.is_symlink():
            problems.append(f"{name}: is a symbolic link; a submission holds plain files")
        elif not path.is_file():
            problems.append(f"{name}: missing; a submission holds {list(SUBMITTED_FILES)} (write one with "
                            f"focus-leaderboard pack)")
    for path in sorted(submission.iterdir()):
        if path.name not in SUBMITTED_FILES and path.name != MODEL_INDEX_FILE:
            problems.append(f"{_shown(path.name, 60)}: unexpected in a submission, which holds only "
                            f"{list(SUBMITTED_FILES)} (and {MODEL_INDEX_FILE}); remove it")
    return problems


def _read_part(submission: Path, name: str, reader, problems: list[str]) -> Any:
    path = submission / name
    if not path.is_file() or path.is_symlink():
        return None
    try:
        return reader(path)
    except SubmissionError as err:
        problems.append(str(err))
        return None


def _cross_checks(
    submission: Path, metadata: dict, predictions: pa.Table | None, truth: GroundTruth | None
) -> list[str]:
    """submission.json against the files it describes and the ground truth."""

    problems = []
    for name, record in metadata["files"].items():
        path = submission / name
        if path.is_file() and not path.is_symlink() and (
                path.stat().st_size != record["size"] or runfolder.sha256_file(path) != record["sha256"]):
            problems.append(f"{name}: size or SHA-256 differs from the one recorded in {SUBMISSION_FILE} "
                            f"({record['size']:,} bytes, {record['sha256'][:16]}...); the file changed after pack")
    num_images, fingerprint = metadata["dataset"]["num_images"], metadata["dataset"]["fingerprint"]
    if predictions is not None and predictions.num_rows != num_images:
        problems.append(f"{SUBMISSION_FILE} $.dataset.num_images: {num_images}, but {PREDICTIONS_FILE} holds "
                        f"{predictions.num_rows} rows")
    if truth is not None and fingerprint != truth.fingerprint:
        problems.append(f"{SUBMISSION_FILE} $.dataset.fingerprint: {fingerprint!r} is not the fingerprint of the "
                        f"ground truth ({truth.fingerprint!r}, {truth.num_images} images from {truth.source}); the "
                        f"predictions were made on another dataset, or another version of it")
    return problems


def verify(
    submission: str | os.PathLike,
    truth: GroundTruth | None,
    *,
    limits: Limits = Limits(),
    now: datetime | None = None,
) -> Verification:
    """Check a submission and recompute its metrics; every problem found is listed.

    With `truth` None only what needs no dataset is checked (files, JSON, schema, hashes, predictions
    on their own), and nothing is recomputed, so the result is never `accepted`.
    """
    submission = Path(submission)
    if not submission.is_dir():
        return Verification(submission, [f"{submission}: not a folder; a submission is the folder that "
                                         f"focus-leaderboard pack writes"])
    problems = _folder_problems(submission)
    metadata = _read_part(submission, SUBMISSION_FILE, lambda p: read_json_strict(p, limits.json_bytes), problems)
    claimed = _read_part(submission, METRICS_FILE, lambda p: read_json_strict(p, limits.json_bytes), problems)
    predictions = _read_part(submission, PREDICTIONS_FILE, lambda p: read_submitted_predictions(p, limits), problems)
    result = Verification(submission, problems, metadata, claimed)

    metadata_ok = False
    if metadata is not None:
        found = metadata_problems(metadata, now=now)
        problems += found
        metadata_ok = not found
    if metadata_ok:
        problems += _cross_checks(submission, metadata, predictions, truth)
    if claimed is not None and not isinstance(claimed, dict):
        problems.append(f"{METRICS_FILE} $: {_shown(claimed)} is not an object of metrics")
    if predictions is None:
        return result
    label_space, mapping = (metadata["label_space"], metadata["mapping"]) if metadata_ok else (None, None)
    unscorable = value_problems(predictions, label_space)
    problems += unscorable
    if unscorable:
        return result
    problems += top5_problems(predictions, label_space, mapping)
    if truth is None or not metadata_ok:
        return result
    scored, join_problems = scored_predictions(truth, predictions, label_space)
    problems += join_problems
    if scored is None:
        return result
    result.recomputed = recompute_metrics(scored, metadata["metric"])
    if isinstance(claimed, dict):
        result.compared_fields = _count_fields(result.recomputed)
        problems += [f"{METRICS_FILE} {problem}" for problem in compare_claims(claimed, result.recomputed)]
    return result


# --------------------------------------------------------------------------------------------
# Pack
# --------------------------------------------------------------------------------------------

def _weights(config: dict) -> dict:
    """{source, sha256} from a run's config, which records `weights` (the source) and `sha256`.

    A checkpoint's source keeps only the file name: the folder it sat in says nothing about the weights.

    >>> _weights({"weights": "checkpoint:/home/me/lite0.pth", "sha256": "ab"})
    {'source': 'checkpoint:lite0.pth', 'sha256': 'ab'}
    """
    source = config.get("weights")
    if isinstance(source, str) and source.startswith("checkpoint:"):
        source = "checkpoint:" + Path(source.removeprefix("checkpoint:")).name
    return {"source": source, "sha256": config.get("sha256")}


def submission_metadata(config: dict, claimed: dict, num_images: int, *, now: datetime | None = None) -> dict:
    """submission.json from the run's config.json and metrics.json (the files block is added by pack)."""
    metric_config = claimed.get("config") if isinstance(claimed.get("config"), dict) else {}
    metadata = {
        "schema_version": SCHEMA_VERSION,
        "model": config.get("model"),
        "paper_name": config.get("paper_name"),
        "weights": _weights(config),
        "random_init": config.get("random_init"),
        "num_params": config.get("num_params"),
        "input_size": config.get("input_size"),
        "data_config": config.get("data_config"),
        "precision": config.get("precision"),
        "label_space": config.get("label_space"),
        "mapping": config.get("mapping"),
        "harness_version": config.get("harness_version"),
        "versions": config.get("versions"),
        "dataset": {"fingerprint": config.get("dataset_fingerprint"), "num_images": num_images},
        "metric": {key: metric_config.get(key) for key in ("gap_unit", "confidence", "n_bootstrap", "seed")},
        "evaluated": {"started": config.get("started"), "finished": config.get("finished")},
        "submitted": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
    }
    # Optional fields the run did not record are left out rather than written as null.
    return {key: value for key, value in metadata.items()
            if value is not None or key not in ("paper_name", "data_config", "versions")}


def pack(
    run_dir: str | os.PathLike,
    model: str,
    output: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    now: datetime | None = None,
) -> Path:
    """Write a submission folder for one model of a run; return its path.

    It appears only when complete and when every check that needs no dataset passes.
    """
    run_dir, folder = Path(run_dir), runfolder.model_dir(run_dir, model)
    if not folder.is_dir():
        available = sorted(p.name for p in run_dir.iterdir() if (p / runfolder.CONFIG_FILE).is_file()) \
            if run_dir.is_dir() else []
        raise LeaderboardError(f"{run_dir}: no model {model!r} (folder {folder.name}); the run holds "
                               f"{available or 'no model'}. Pass --model with a model of this run.")
    for name in (runfolder.CONFIG_FILE, runfolder.PREDICTIONS_FILE, runfolder.METRICS_FILE):
        if not (folder / name).is_file():
            raise LeaderboardError(f"{folder}: no {name}; the model's evaluation has not finished (run the "
                                   f"harness again: it resumes)")
    try:
        failed_file = folder / runfolder.FAILED_FILE
        failed = read_json_strict(failed_file, Limits.json_bytes) if failed_file.is_file() else []
        config = read_json_strict(folder / runfolder.CONFIG_FILE, Limits.json_bytes)
        claimed = read_json_strict(folder / runfolder.METRICS_FILE, Limits.json_bytes)
        predictions = pq.read_table(folder / runfolder.PREDICTIONS_FILE, columns=SUBMISSION_SCHEMA.names)
    except (SubmissionError, pa.ArrowException, OSError) as err:
        raise LeaderboardError(f"{folder}: {err}; is this a finished harness run?") from err
    if failed or (isinstance(claimed, dict) and claimed.get(FAILED_COUNT)):
        raise LeaderboardError(f"{folder}: {len(failed) or claimed.get(FAILED_COUNT)} image(s) could not be decoded "
                               f"in this run ({runfolder.FAILED_FILE}); a submission needs a prediction for every "
                               f"image of the dataset")
    if not isinstance(config, dict) or not isinstance(claimed, dict):
        raise LeaderboardError(f"{folder}: {runfolder.CONFIG_FILE} and {runfolder.METRICS_FILE} must each hold "
                               f"a JSON object; is this a harness run folder?")
    claimed = {key: value for key, value in claimed.items() if key != FAILED_COUNT}
    stale = _stale_claims(folder, claimed)
    if stale:
        raise LeaderboardError(f"{folder}: {runfolder.METRICS_FILE} does not match {runfolder.PREDICTIONS_FILE} "
                               f"(was the run changed after it finished?):\n" + "\n".join(f"  - {p}" for p in stale))
    metadata = submission_metadata(config, claimed, predictions.num_rows, now=now)
    if output is None:
        output = Path("submissions") / (submission_id(metadata) if _has_id_fields(metadata)
                                        else runfolder.model_slug(model))
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not overwrite:
        raise LeaderboardError(f"{output}: already exists; choose another --output or pass --overwrite")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        pq.write_table(predictions.cast(SUBMISSION_SCHEMA).sort_by("file_name"), staging / PREDICTIONS_FILE,
                       compression="zstd")
        runfolder.write_json(staging / METRICS_FILE, claimed)
        metadata["files"] = file_records(staging)
        runfolder.write_json(staging / SUBMISSION_FILE, metadata)
        problems = verify(staging, None, now=now).problems
        if problems:
            raise LeaderboardError(f"{folder}: the run does not make a valid submission:\n" +
                                   "\n".join(f"  - {problem}" for problem in problems))
        if output.exists():
            shutil.rmtree(output) if output.is_dir() else output.unlink()
        os.replace(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


def _stale_claims(folder: Path, claimed: dict) -> list[str]:
    """Where the run's metrics.json differs from its own predictions (labels included), recomputed."""
    metric = claimed.get("config")
    if not isinstance(metric, dict) or not {"gap_unit", "confidence", "n_bootstrap", "seed"} <= metric.keys():
        return [f"{METRICS_FILE} $.config: {_shown(metric)} does not record gap_unit, confidence, n_bootstrap and "
                f"seed, so its intervals cannot be recomputed"]
    try:
        recomputed = recompute_metrics(runfolder.read_predictions(folder / runfolder.PREDICTIONS_FILE), metric)
    except (ValueError, TypeError, pa.ArrowException) as err:
        return [f"{runfolder.PREDICTIONS_FILE}: cannot recompute the metrics ({err})"]
    return [f"{METRICS_FILE} {problem}" for problem in compare_claims(claimed, recomputed)]


def _has_id_fields(metadata: dict) -> bool:
    return (isinstance(metadata.get("model"), str) and isinstance(metadata.get("precision"), str)
            and isinstance(metadata["weights"]["sha256"], str))


# --------------------------------------------------------------------------------------------
# Render
# --------------------------------------------------------------------------------------------

class Column(NamedTuple):
    key: str
    title: str
    kind: str  # text, percent, gap, count
    order: str  # the order a first click sorts in: better first
    help: str


COLUMNS = [
    Column("model", "Model", "text", "asc", "timm model name (and the paper's name)"),
    Column("accuracy", "Accuracy", "percent", "desc", "top-1 accuracy over all images"),
    Column("P0", "P0", "percent", "desc", "accuracy on images with no uncommon attribute"),
    Column("P1", "P1", "percent", "desc", "accuracy on images with one uncommon attribute"),
    Column("P2", "P2", "percent", "desc", "accuracy on images with two uncommon attributes"),
    Column("P3", "P3", "percent", "desc", "accuracy on images with uncommon time, weather and locations"),
    Column("G_t", "G_t", "gap", "asc", "time gap: accuracy at common minus uncommon times (Eq. 1)"),
    Column("G_w", "G_w", "gap", "asc", "weather gap: accuracy in common minus uncommon weather (Eq. 1)"),
    Column("G_l", "G_l", "gap", "asc", "locations gap: accuracy in common minus uncommon locations (Eq. 1)"),
    Column("gap_overall", "gap_overall", "gap", "asc", "A(P0) minus A(P1 or P2 or P3)"),
    Column("num_params", "Parameters", "count", "asc", "number of parameters"),
    Column("precision", "Precision", "text", "asc", "numeric precision of the evaluation"),
    Column("input", "Input", "count", "desc", "input height x width after preprocessing"),
]


def headline(metrics: dict) -> dict[str, float | None]:
    """A row's numbers from a metrics.json: accuracy, the accuracies of P0-P3, and the gaps' values."""
    return ({"accuracy": metrics["accuracy"]}
            | {name: metrics["partitions"][name]["accuracy"] for name in COUNT_PARTITIONS}
            | {name: metrics[name]["value"] for name in GAPS})


class Protocol(NamedTuple):
    """How predictions were scored. Accuracies compare only within one protocol, so each has its own table."""

    key: str
    label_space: str
    mapping: str | None
    title: str
    description: str


PROTOCOLS = (
    Protocol("paper", "imagenet", "paper", "ImageNet-1k models, the paper's mapping",
             "The paper's protocol (Section 4): the top-1 of all 1000 ImageNet classes is mapped to its FOCUS "
             "class, and a top-1 outside the mapping counts as wrong."),
    Protocol("restricted", "imagenet", "restricted", "ImageNet-1k models, restricted mapping (not comparable)",
             "Submissions with mapping \"restricted\" take the argmax over the mapped ImageNet classes only: "
             "they never predict none of the FOCUS classes, which scores higher than the paper's mapping. Ranked "
             "against each other only, never against the paper's mapping."),
    Protocol("focus-head", "focus", None, "FOCUS heads (10 classes, no mapping)",
             "Submissions with label_space \"focus\" (mapping null): models whose head predicts the ten FOCUS "
             "classes directly. Ranked against each other only, never against ImageNet-1k models."),
)


def protocol_of(metadata: dict) -> Protocol:
    """The protocol of a submission that passed the schema, which allows only these (label_space, mapping) pairs."""
    return next(p for p in PROTOCOLS if (p.label_space, p.mapping) == (metadata["label_space"], metadata["mapping"]))


def _uncommon_accuracy(partitions: dict) -> float | None:
    """A(P1 ∪ P2 ∪ P3) from the partitions' counts."""
    n = sum(partitions[name]["n"] for name in UNCOMMON_PARTITIONS)
    return sum(partitions[name]["correct"] for name in UNCOMMON_PARTITIONS) / n if n else None


def leaderboard_rows(accepted: Sequence[Verification]) -> list[dict]:
    """One row per accepted submission, from the recomputed metrics only; best accuracy first."""
    rows = []
    for verification in accepted:
        metadata, metrics = verification.metadata, verification.recomputed
        intervals = {name: (metrics["partitions"][name]["ci_low"], metrics["partitions"][name]["ci_high"])
                     for name in COUNT_PARTITIONS} | {
            name: (metrics[name]["ci_low"], metrics[name]["ci_high"]) for name in GAPS
        }
        _, height, width = metadata["input_size"]
        rows.append({
            "submission": verification.submission.name,
            "model": metadata["model"],
            "paper_name": metadata.get("paper_name"),
            "name": display_name(metadata),
            "protocol": protocol_of(metadata),
            "values": headline(metrics) | {"num_params": metadata["num_params"], "precision": metadata["precision"],
                                           "input": height * width, "model": display_name(metadata)},
            "intervals": intervals,
            "input_size": f"{height}×{width}",
            "mapping": metadata["mapping"] or "FOCUS head",
            "n": metrics["n"],
            "common": metrics["partitions"]["P0"]["accuracy"],
            "uncommon": _uncommon_accuracy(metrics["partitions"]),
        })
    return sorted(rows, key=lambda row: (-(row["values"]["accuracy"] or 0.0), row["name"]))


def ranked_tables(rows: list[dict]) -> list[tuple[Protocol, list[dict]]]:
    """The rows split by protocol, each list ranked on its own; the paper's table is shown even when empty."""
    tables = [(protocol, [row for row in rows if row["protocol"] == protocol]) for protocol in PROTOCOLS]
    return [(protocol, members) for protocol, members in tables if members or protocol == PROTOCOLS[0]]


def _percent(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def _interval(bounds: tuple[float | None, float | None]) -> str:
    low, high = bounds
    return "" if low is None or high is None else f"[{_percent(low, 1)}, {_percent(high, 1)}]"


def _parameters(count: int) -> str:
    return f"{count / 1e6:.2f} M" if count >= 1e5 else f"{count:,}"


def _cell_text(row: dict, column: Column) -> str:
    value = row["values"][column.key]
    if column.kind in ("percent", "gap"):
        return _percent(value)
    if column.key == "num_params":
        return _parameters(value)
    if column.key == "input":
        return row["input_size"]
    return str(value)


def _md(text: str) -> str:
    """Text safe in a Markdown table cell: no HTML, links, emphasis or column breaks."""
    text = html.escape(" ".join(str(text).split()), quote=False)
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", text)


def _lead(rows: list[dict], truth: GroundTruth) -> str:
    return (f"{len(rows)} model(s). Every number is recomputed from the submitted predictions against the "
            f"ground truth: {truth.num_images:,} images, dataset fingerprint {truth.fingerprint}.")


NOTES = ("Accuracies in %; gaps (G_t, G_w, G_l, gap_overall) in percentage points, smaller is better, with 95% "
         "bootstrap intervals; partition accuracies with 95% Wilson intervals. P1, P2, P3: images with 1, 2, 3 "
         "uncommon attributes (time, weather, locations). n/a: no image in that group. "
         "Kattakinda & Feizi, FOCUS: Familiar Objects in Common and Uncommon Settings, ICML 2022.")


def _skipped_lines(skipped: Sequence[Verification], shown: int = 3) -> list[tuple[str, str]]:
    lines = []
    for verification in skipped:
        problems = verification.problems or ["could not be verified"]
        more = f" (and {len(problems) - shown} more)" if len(problems) > shown else ""
        lines.append((verification.submission.name, "; ".join(problems[:shown]) + more))
    return lines


def _markdown_table(rows: list[dict]) -> list[str]:
    lines = ["| # | " + " | ".join(column.title.replace("_", "\\_") for column in COLUMNS) + " |",
             "|---|" + "|".join("---" if column.kind == "text" else "---:" for column in COLUMNS) + "|"]
    for rank, row in enumerate(rows, 1):
        cells = []
        for column in COLUMNS:
            text = _md(_cell_text(row, column))
            if column.kind == "gap" and _interval(row["intervals"][column.key]):
                text += " " + _interval(row["intervals"][column.key])
            cells.append(text)
        lines.append(f"| {rank} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(rows: list[dict], skipped: Sequence[Verification], truth: GroundTruth) -> str:
    """The leaderboard as Markdown: one table per protocol, best accuracy first."""
    lines = ["# FOCUS leaderboard", "", _lead(rows, truth)]
    for protocol, members in ranked_tables(rows):
        lines += ["", f"## {_md(protocol.title)}", "", _md(protocol.description), ""]
        lines += _markdown_table(members) if members else ["No verified submission yet."]
    lines += ["", NOTES]
    if skipped:
        lines += ["", "## Not shown", "", "These submissions failed verification:", ""]
        lines += [f"- {_md(name)}: {_md(reason)}" for name, reason in _skipped_lines(skipped)]
    return "\n".join(lines) + "\n"


def _html_row(rank: int, row: dict) -> str:
    cells = []
    for column in COLUMNS:
        value = row["values"][column.key]
        data = "" if value is None else (value if column.kind == "text" else repr(value))
        text = html.escape(_cell_text(row, column))
        if column.key == "model":
            text = html.escape(row["paper_name"] or row["model"])
            if row["paper_name"]:
                text += f'<span class="sub">{html.escape(row["model"])}</span>'
            text += f'<span class="sub">{row["n"]:,} images, {html.escape(row["mapping"])}</span>'
        elif column.key in row["intervals"] and _interval(row["intervals"][column.key]):
            text += f'<span class="ci">{_interval(row["intervals"][column.key])}</span>'
        cells.append(f'<td data-value="{html.escape(str(data))}">{text}</td>')
    return (f'<tr data-rank="{rank}" data-submission="{html.escape(row["submission"])}">'
            + "".join(cells) + "</tr>")


def common_uncommon_chart(rows: list[dict], width: int = 760) -> str:
    """An inline SVG: per model, accuracy on P0 (common) and on P1 ∪ P2 ∪ P3 (uncommon), joined by the gap."""
    left, right, top, step = 260, 30, 34, 26
    height = top + step * max(len(rows), 1) + 30
    span = width - left - right

    def x(value: float) -> float:
        return left + span * value

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="Accuracy in common and uncommon settings per model">',
             f'<circle class="common" cx="{left}" cy="12" r="5"/><text x="{left + 10}" y="16">common (P0)</text>',
             f'<circle class="uncommon" cx="{left + 120}" cy="12" r="5"/>'
             f'<text x="{left + 130}" y="16">uncommon (P1 &#8746; P2 &#8746; P3)</text>']
    bottom = height - 24
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line class="axis" x1="{x(tick):.1f}" y1="{top - 8}" x2="{x(tick):.1f}" y2="{bottom}"/>'
                     f'<text x="{x(tick):.1f}" y="{bottom + 16}" text-anchor="middle">{tick:.0%}</text>')
    for i, row in enumerate(rows):
        y = top + step * i + step / 2
        label = row["paper_name"] or row["model"]
        label = label if len(label) <= 36 else label[:35] + "…"
        common, uncommon = row["common"], row["uncommon"]
        summary = (f"{row['name']}: common {_percent(common)}%, uncommon {_percent(uncommon)}%, "
                   f"gap_overall {_percent(row['values']['gap_overall'])} points")
        parts.append(f'<g data-submission="{html.escape(row["submission"])}"><title>{html.escape(summary)}</title>'
                     f'<text x="{left - 10}" y="{y + 4:.1f}" text-anchor="end">{html.escape(label)}</text>')
        if common is not None and uncommon is not None:
            parts.append(f'<line class="gap" x1="{x(uncommon):.1f}" y1="{y:.1f}" x2="{x(common):.1f}" y2="{y:.1f}"/>')
        for value, kind in ((uncommon, "uncommon"), (common, "common")):
            if value is not None:
                parts.append(f'<circle class="{kind}" cx="{x(value):.1f}" cy="{y:.1f}" r="6"/>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _html_section(protocol: Protocol, rows: list[dict]) -> str:
    """A protocol's table and chart; the paper's table has the id "leaderboard"."""
    table_id = "leaderboard" if protocol == PROTOCOLS[0] else f"leaderboard-{protocol.key}"
    header = "\n".join(
        f'<th data-key="{column.key}" data-type="{"text" if column.kind == "text" else "number"}" '
        f'data-order="{column.order}" aria-sort="{"descending" if column.key == "accuracy" else "none"}" '
        f'title="{html.escape(column.help)}"><button type="button">{html.escape(column.title)}</button></th>'
        for column in COLUMNS)
    body = "\n".join(_html_row(rank, row) for rank, row in enumerate(rows, 1))
    return (f'<section class="protocol" id="{protocol.key}">\n<h2>{html.escape(protocol.title)}</h2>\n'
            f'<p class="muted">{html.escape(protocol.description)}</p>\n'
            f'<div class="scroll">\n<table id="{table_id}" class="board">\n<thead><tr>\n{header}\n</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody>\n</table>\n</div>\n"
            f"<h3>Common against uncommon settings</h3>\n<p class=\"muted\">Accuracy on P0 (no uncommon attribute) "
            f"and on P1 &cup; P2 &cup; P3 (at least one); the line between them is the overall gap.</p>\n"
            f"{common_uncommon_chart(rows)}\n</section>")


def render_html(rows: list[dict], skipped: Sequence[Verification], truth: GroundTruth) -> str:
    """The leaderboard as one self-contained page (inline CSS, JS and SVG, nothing fetched): a table per protocol."""
    skipped_html = ""
    if skipped:
        items = "\n".join(f"<li><code>{html.escape(name)}</code>: {html.escape(reason)}</li>"
                          for name, reason in _skipped_lines(skipped))
        skipped_html = (f'<section class="skipped" id="skipped"><h2>Not shown</h2>'
                        f"<p>These submissions failed verification:</p><ul>\n{items}\n</ul></section>")
    template = string.Template(TEMPLATE_PATH.read_text())
    return template.substitute(
        lead=html.escape(_lead(rows, truth)),
        sections="\n\n".join(_html_section(protocol, members) for protocol, members in ranked_tables(rows)),
        notes=html.escape(NOTES),
        skipped=skipped_html,
    )


MARKDOWN_FILE = "leaderboard.md"
HTML_FILE = "index.html"


def _write_files(out: Path, files: dict[str, str]) -> None:
    """Each file is complete or absent: written to a temporary name beside it, then renamed."""
    out.mkdir(parents=True, exist_ok=True)
    staged = []
    try:
        for name, text in files.items():
            handle, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out)
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
            staged.append((Path(tmp), out / name))
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def render(
    submissions_dir: str | os.PathLike,
    out: str | os.PathLike,
    truth: GroundTruth,
    *,
    strict: bool = False,
    limits: Limits = Limits(),
    now: datetime | None = None,
) -> list[Verification]:
    """Verify every submission folder and write OUT/leaderboard.md and OUT/index.html; return the verifications.

    Submissions that fail verification are left out and listed under "Not shown". With `strict`, any
    such submission stops the render before anything is written.
    """
    submissions_dir = Path(submissions_dir)
    if not submissions_dir.is_dir():
        raise LeaderboardError(f"{submissions_dir}: not a folder; pass the folder that holds the submission folders")
    # Hidden folders and OUT itself (when it sits among the submissions) are not submissions.
    folders = sorted(p for p in submissions_dir.iterdir()
                     if p.is_dir() and not p.name.startswith(".") and p.resolve() != Path(out).resolve())
    verifications = [verify(folder, truth, limits=limits, now=now) for folder in folders]
    skipped = [v for v in verifications if not v.accepted]
    if strict and skipped:
        raise StrictRenderError(skipped)
    rows = leaderboard_rows([v for v in verifications if v.accepted])
    _write_files(Path(out), {MARKDOWN_FILE: render_markdown(rows, skipped, truth),
                             HTML_FILE: render_html(rows, skipped, truth)})
    return verifications


# --------------------------------------------------------------------------------------------
# Push
# --------------------------------------------------------------------------------------------

MODEL_INDEX_METRICS = [
    ("accuracy", "accuracy", "all", "FOCUS accuracy"),
    ("P0", "accuracy", "P0", "FOCUS accuracy, common settings (P0)"),
    ("P1", "accuracy", "P1", "FOCUS accuracy, one uncommon attribute (P1)"),
    ("P2", "accuracy", "P2", "FOCUS accuracy, two uncommon attributes (P2)"),
    ("P3", "accuracy", "P3", "FOCUS accuracy, three uncommon attributes (P3)"),
    ("G_t", "generalization_gap", "G_t", "FOCUS generalization gap, time"),
    ("G_w", "generalization_gap", "G_w", "FOCUS generalization gap, weather"),
    ("G_l", "generalization_gap", "G_l", "FOCUS generalization gap, locations"),
    ("gap_overall", "generalization_gap", "gap_overall", "FOCUS overall gap A(P0) - A(P1 or P2 or P3)"),
]


def model_index(metadata: dict, metrics: dict, *, dataset_id: str = DEFAULT_DATASET_ID,
                source_url: str | None = None) -> str:
    """The model-index block for the model card's YAML header (percentages, as the paper reports them)."""
    values = headline(metrics)
    results = [
        EvalResult(task_type="image-classification", task_name="Image Classification", dataset_type=dataset_id,
                   dataset_name=FOCUS_DATASET_NAME, dataset_split="test", metric_type=metric_type,
                   metric_name=name, metric_config=config, metric_value=round(100 * values[key], 2),
                   verified=False, source_name="FOCUS leaderboard", source_url=source_url)
        for key, metric_type, config, name in MODEL_INDEX_METRICS if values[key] is not None
    ]
    return ModelCardData(model_name=display_name(metadata), eval_results=results).to_yaml() + "\n"


def push_operations(submission: Path, metadata: dict) -> list[CommitOperationAdd]:
    """The files of a pull request on the leaderboard repository: submissions/<id>/<file>."""
    folder = f"submissions/{submission_id(metadata)}"
    return [CommitOperationAdd(path_in_repo=f"{folder}/{name}", path_or_fileobj=str(submission / name))
            for name in SUBMITTED_FILES]


def push(
    submission: str | os.PathLike,
    repo_id: str,
    truth: GroundTruth,
    *,
    dry_run: bool = False,
    model_repo: str | None = None,
    dataset_id: str = DEFAULT_DATASET_ID,
) -> str | None:
    """Verify the submission, write its model_index.yaml, and open a pull request on the Hub dataset `repo_id`.

    Only a submission that verify accepts is pushed, and the model-index holds the recomputed numbers.
    `dry_run` prints the operations and constructs no Hub client. Returns the pull request's URL (None
    in a dry run).
    """
    submission = Path(submission)
    verification = verify(submission, truth)
    if not verification.accepted:
        raise LeaderboardError(f"{submission}: not pushed, the submission has {len(verification.problems)} "
                               f"problem(s):\n" + "\n".join(f"  - {p}" for p in verification.problems))
    metadata = verification.metadata
    block = model_index(metadata, verification.recomputed, dataset_id=dataset_id,
                        source_url=f"https://huggingface.co/datasets/{repo_id}")
    (submission / MODEL_INDEX_FILE).write_text(block)
    operations = push_operations(submission, metadata)
    title = f"Add FOCUS submission {submission_id(metadata)}"
    if dry_run:
        print(f"dry run, nothing sent: a pull request on the dataset repository {repo_id} would add")
        for op in operations:
            print(f"  {op.path_in_repo}  {op.upload_info.size:,} bytes  sha256 {op.upload_info.sha256.hex()}")
        if model_repo:
            print(f"and a pull request on the model repository {model_repo} would add the model-index block")
        print(f"model-index block for the model card, in {submission / MODEL_INDEX_FILE}:\n{block}", end="")
        return None
    api = HfApi()
    commit = api.create_commit(repo_id, repo_type="dataset", operations=operations, commit_message=title,
                               commit_description=f"{display_name(metadata)} on FOCUS, packed by focus-leaderboard.",
                               create_pr=True)
    print(f"opened {commit.pr_url}")
    if model_repo:
        card_url = metadata_update(model_repo, yaml.safe_load(block), repo_type="model", create_pr=True,
                                   commit_message=f"Add FOCUS results ({repo_id})")
        print(f"opened {card_url}")
    print(f"model-index block for the model card, in {submission / MODEL_INDEX_FILE}:\n{block}", end="")
    return commit.pr_url


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def _limits(args) -> Limits:
    return Limits(predictions_bytes=int(args.max_predictions_mb * 2**20), json_bytes=int(args.max_json_mb * 2**20))


def _summary(metrics: dict) -> str:
    values = headline(metrics)
    return ", ".join(f"{name} {_percent(value)}" + ("" if name in GAPS else "%") for name, value in values.items())


def _print_verification(verification: Verification, truth: GroundTruth) -> None:
    if verification.accepted:
        metadata, metric = verification.metadata, verification.metadata["metric"]
        print(f"{verification.submission}: accepted")
        print(f"  every claimed metric matches the recomputation: {verification.compared_fields:,} fields (points "
              f"within {POINT_TOLERANCE:g}, intervals exact with seed {metric['seed']} and {metric['n_bootstrap']} "
              f"bootstrap replicates)")
        print(f"  {display_name(metadata)} on {truth.num_images:,} images (dataset {truth.fingerprint}): "
              f"{_summary(verification.recomputed)}")
        return
    print(f"{verification.submission}: rejected, {len(verification.problems)} problem(s)")
    for problem in verification.problems:
        print(f"  - {problem}")
    if verification.recomputed is None and verification.problems:
        print("  (the claimed metrics were not compared: fix the problems above first)")


def _cmd_pack(args) -> int:
    output = pack(args.run_dir, args.model, args.output, overwrite=args.overwrite)
    metadata = runfolder.read_json(output / SUBMISSION_FILE)
    print(f"wrote {output}")
    for name in SUBMITTED_FILES:
        print(f"  {name:<20} {(output / name).stat().st_size:>10,} bytes")
    print(f"  {display_name(metadata)}, {metadata['dataset']['num_images']:,} images, dataset "
          f"{metadata['dataset']['fingerprint']}")
    print(f"next: focus-leaderboard verify {output} --data DATASET")
    return 0


def _cmd_verify(args) -> int:
    truth = ground_truth(args.data)
    verification = verify(args.submission, truth, limits=_limits(args))
    _print_verification(verification, truth)
    return 0 if verification.accepted else 1


def _cmd_render(args) -> int:
    truth = ground_truth(args.data)
    try:
        verifications = render(args.submissions_dir, args.out, truth, strict=args.strict, limits=_limits(args))
    except StrictRenderError as err:
        for verification in err.skipped:
            _print_verification(verification, truth)
        print(f"error: {err}", file=sys.stderr)
        return 1
    accepted = [v for v in verifications if v.accepted]
    print(f"wrote {Path(args.out) / MARKDOWN_FILE} and {Path(args.out) / HTML_FILE}: {len(accepted)} model(s)")
    for verification in verifications:
        if not verification.accepted:
            print(f"not shown: {verification.submission.name}, {len(verification.problems)} problem(s)")
            for problem in verification.problems:
                print(f"  - {problem}")
    return 0


def _cmd_push(args) -> int:
    push(args.submission, args.repo, ground_truth(args.data), dry_run=args.dry_run, model_repo=args.model_repo,
         dataset_id=args.dataset_id)
    return 0


def _add_limits(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("size limits (checked before a file is parsed)")
    group.add_argument("--max-predictions-mb", type=float, default=Limits.predictions_bytes / 2**20,
                       help="largest predictions.parquet accepted (default: %(default)g)")
    group.add_argument("--max-json-mb", type=float, default=Limits.json_bytes / 2**20,
                       help="largest submission.json or metrics.json accepted (default: %(default)g)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="focus-leaderboard", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    pack_parser = commands.add_parser("pack", help="run folder -> submission folder")
    pack_parser.add_argument("run_dir", metavar="RUN_DIR", help="the harness's run folder")
    pack_parser.add_argument("--model", required=True, help="the model of the run to submit (timm name)")
    pack_parser.add_argument("--output", metavar="DIR",
                             help="the submission folder to write (default: submissions/<model>-<precision>-<weights>)")
    pack_parser.add_argument("--overwrite", action="store_true", help="replace an existing DIR")
    pack_parser.set_defaults(func=_cmd_pack)

    verify_parser = commands.add_parser("verify", help="recompute a submission's metrics and check its claims")
    verify_parser.add_argument("submission", metavar="SUBMISSION", help="a submission folder")
    verify_parser.add_argument("--data", required=True, metavar="DATASET",
                               help="the ground truth: converted folder, release folder or zip, or Hub id")
    _add_limits(verify_parser)
    verify_parser.set_defaults(func=_cmd_verify)

    render_parser = commands.add_parser("render", help="verified submissions -> leaderboard.md and index.html")
    render_parser.add_argument("submissions_dir", metavar="SUBMISSIONS_DIR", help="a folder of submission folders")
    render_parser.add_argument("out", metavar="OUT", help="the folder to write leaderboard.md and index.html to")
    render_parser.add_argument("--data", required=True, metavar="DATASET", help="the ground truth, as for verify")
    render_parser.add_argument("--strict", action="store_true",
                               help="write nothing and exit 1 if any submission fails verification")
    _add_limits(render_parser)
    render_parser.set_defaults(func=_cmd_render)

    push_parser = commands.add_parser("push", help="open a pull request with the submission on a Hub dataset repo")
    push_parser.add_argument("submission", metavar="SUBMISSION", help="a submission folder")
    push_parser.add_argument("--repo", required=True, metavar="REPO_ID",
                             help="the leaderboard's Hub dataset repository")
    push_parser.add_argument("--data", required=True, metavar="DATASET",
                             help="the ground truth, as for verify: only a verified submission is pushed")
    push_parser.add_argument("--model-repo", metavar="REPO_ID",
                             help="also open a pull request adding the model-index block to this model's card")
    push_parser.add_argument("--dataset-id", default=DEFAULT_DATASET_ID,
                             help="the Hub id of FOCUS that the model-index names (default: %(default)s)")
    push_parser.add_argument("--dry-run", action="store_true", help="print the operations; touch no network")
    push_parser.set_defaults(func=_cmd_push)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The focus-leaderboard command: 0 success, 1 a rejected submission, 2 a command that cannot run."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LeaderboardError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
