"""The submission format: its files, the metadata schema and the checks beyond it, ids, boards, headline numbers."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import jsonschema

from focus_common import inputs
from focus_tools import schema
from harness import runfolder
from harness.leaderboard.strict import _clip, _json_path, _shown

SUBMISSION_FILE = "submission.json"
PREDICTIONS_FILE = runfolder.PREDICTIONS_FILE
METRICS_FILE = runfolder.METRICS_FILE
MODEL_INDEX_FILE = "model_index.yaml"
SUBMITTED_FILES = (SUBMISSION_FILE, PREDICTIONS_FILE, METRICS_FILE)
FAILED_COUNT = "n_failed_images"  # the harness's count in metrics.json; 0 in a submission, which drops it
HASHED_FILES = (PREDICTIONS_FILE, METRICS_FILE)  # submission.json records their size and SHA-256

SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "submission.schema.json"
# Version 2 records the preprocessing; a version-1 submission predates that and was evaluated with
# timm's data config, the only preprocessing the harness had.
SCHEMA_VERSION = 2
VERSION_1_PREPROCESSING = "timm"
# Metrics the harness added after a schema version: a claim of that version may leave them out.
LATER_METRICS = {1: frozenset({"gap_overall_paper"})}

NUM_CLASSES = {"imagenet": 1000, "focus": len(schema.CLASS_NAMES)}


# Dates outside [EARLIEST_DATE, now + CLOCK_SKEW] are absurd: FOCUS appeared in 2022, and a naive
# date (no time zone, read as UTC) may run up to a day ahead of UTC.
EARLIEST_DATE = datetime(2022, 1, 1, tzinfo=timezone.utc)
CLOCK_SKEW = timedelta(days=1)


def file_records(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The `files` block of submission.json: size and SHA-256 of each hashed file."""

    folder = Path(folder)
    return {name: {"size": (folder / name).stat().st_size, "sha256": inputs.sha256_file(folder / name)}
            for name in HASHED_FILES}


@lru_cache(maxsize=1)
def submission_schema() -> dict:
    """The JSON Schema of submission.json (harness/schemas/submission.schema.json)."""
    return json.loads(SCHEMA_PATH.read_text())


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
    the order started <= finished <= submitted; a model with random weights is not ranked; only version 2
    records the preprocessing, whose input size is the model's.
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
    if metadata.get("schema_version") == 1 and "preprocessing" in metadata:
        problems.append(f"{SUBMISSION_FILE} $.preprocessing: a version-1 submission records no preprocessing (it "
                        f"was made with timm's data config); a submission that records it has $.schema_version 2")
    preprocessing = metadata.get("preprocessing") if isinstance(metadata.get("preprocessing"), dict) else {}
    if "input_size" in preprocessing and preprocessing["input_size"] != metadata.get("input_size"):
        problems.append(f"{SUBMISSION_FILE} $.preprocessing.input_size: {_shown(preprocessing['input_size'])} is not "
                        f"$.input_size ({_shown(metadata.get('input_size'))}); they record one model input")
    ordered = [(where, date) for where, date in dates.items() if date is not None]
    for (earlier, first), (later, second) in zip(ordered, ordered[1:]):
        if first > second:
            problems.append(f"{SUBMISSION_FILE} {later}: {second.isoformat()} comes before {earlier} "
                            f"({first.isoformat()})")
    return problems


def submission_id(metadata: dict) -> str:
    """A folder name for a submission, unique per model, weights, precision, mapping and kind of preprocessing.

    >>> metadata = {"model": "hf-hub:timm/resnet50.tv_in1k", "precision": "bf16", "mapping": "paper",
    ...             "weights": {"sha256": "0123456789abcdef" * 4}, "preprocessing": {"protocol": "paper"}}
    >>> submission_id(metadata)
    'hf-hub_timm_resnet50.tv_in1k~2493498fdc-bf16-01234567'
    >>> submission_id(metadata | {"mapping": "restricted", "preprocessing": {"protocol": "timm"}})
    'hf-hub_timm_resnet50.tv_in1k~2493498fdc-bf16-01234567-restricted-timm'
    """
    name = f"{runfolder.model_slug(metadata['model'])}-{metadata['precision']}-{metadata['weights']['sha256'][:8]}"
    name += "-restricted" if metadata.get("mapping") == "restricted" else ""
    preprocessing = preprocessing_kind(metadata)
    return name + ("" if preprocessing == "paper" else f"-{preprocessing}")


def preprocessing_kind(metadata: dict) -> str:
    """How the images were preprocessed, as far as ranking goes: "paper", "timm" or "custom".

    "paper" is the authors' geometry (resize the shorter side, center crop, bilinear), "timm" the model's
    timm data config, "custom" any override of either. A version-1 submission records none: it is "timm".

    >>> preprocessing_kind({"preprocessing": {"protocol": "paper", "custom": True}})
    'custom'
    >>> preprocessing_kind({"schema_version": 1})
    'timm'
    """
    preprocessing = metadata.get("preprocessing")
    if not isinstance(preprocessing, dict):
        return VERSION_1_PREPROCESSING
    return "custom" if preprocessing.get("custom") else preprocessing["protocol"]


def display_name(metadata: dict) -> str:
    paper_name = metadata.get("paper_name")
    return f"{paper_name} ({metadata['model']})" if paper_name else metadata["model"]


def headline(metrics: dict) -> dict[str, float | None]:
    """A row's numbers from a metrics.json: accuracy, the accuracies of P0-P3, and the gaps' values."""
    return ({"accuracy": metrics["accuracy"]}
            | {name: metrics["partitions"][name]["accuracy"] for name in schema.COUNT_PARTITIONS}
            | {name: metrics[name]["value"] for name in schema.GAPS})


class Scoring(NamedTuple):
    """How a model's outputs become FOCUS predictions: its label space and the mapping."""

    key: str
    label_space: str
    mapping: str | None
    title: str
    description: str


SCORINGS = (
    Scoring("paper", "imagenet", "paper", "ImageNet-1k models, the paper's mapping",
            "The paper's scoring (Section 4): the top-1 of all 1000 ImageNet classes is mapped to its FOCUS "
            "class, and a top-1 outside the mapping counts as wrong."),
    Scoring("restricted", "imagenet", "restricted", "ImageNet-1k models, restricted mapping (not comparable)",
            "Submissions with mapping \"restricted\" take the argmax over the mapped ImageNet classes only: "
            "they never predict none of the FOCUS classes, which scores higher than the paper's mapping. Ranked "
            "against each other only, never against the paper's mapping."),
    Scoring("focus-head", "focus", None, "FOCUS heads (10 classes, no mapping)",
            "Submissions with label_space \"focus\" (mapping null): models whose head predicts the ten FOCUS "
            "classes directly. Ranked against each other only, never against ImageNet-1k models."),
)

# The kinds of preprocessing (preprocessing_kind): title and what it means.
PREPROCESSINGS = {
    "paper": ("the paper's preprocessing",
              "Preprocessing as the authors evaluated: the shorter side resized to the model's input size "
              "(bilinear), a center crop of that size, the model's mean and std."),
    "timm": ("timm preprocessing (not comparable)",
             "Preprocessing from each model's timm data config (its resize, crop fraction and interpolation), "
             "which differs from the paper's; version-1 submissions, which record none, were made this way."),
    "custom": ("custom preprocessing (not comparable)",
               "Preprocessing with overrides (input size, crop, interpolation, mean or std): settings differ "
               "from row to row, see each model's."),
}


class Board(NamedTuple):
    """One table of the leaderboard: the label space, mapping and preprocessing its submissions share.

    Accuracies compare only within one board, so each has its own table.
    """

    key: str
    label_space: str
    mapping: str | None
    preprocessing: str
    title: str
    description: str


# The paper's board first (its scoring and preprocessing): its table is the leaderboard, shown even when empty.
BOARDS = tuple(
    Board(scoring.key if kind == "paper" else f"{scoring.key}-{kind}", scoring.label_space, scoring.mapping,
             kind, f"{scoring.title}, {title}", f"{scoring.description} {description}")
    for scoring in SCORINGS for kind, (title, description) in PREPROCESSINGS.items()
)


def board_of(metadata: dict) -> Board:
    """The board of a submission that passed the schema, which allows only these (label_space, mapping) pairs."""
    key = (metadata["label_space"], metadata["mapping"], preprocessing_kind(metadata))
    return next(p for p in BOARDS if (p.label_space, p.mapping, p.preprocessing) == key)
