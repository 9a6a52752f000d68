"""The submission format: its files, the metadata schema and the checks beyond it, ids, protocols, headline numbers."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import jsonschema

import focus_dataset
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
SCHEMA_VERSION = 1

NUM_CLASSES = {"imagenet": 1000, "focus": len(focus_dataset.CLASS_NAMES)}

# The headline numbers of a row: accuracy on all images, on P0 (no uncommon attribute) and on P1, P2, P3
# (images with 1, 2, 3 uncommon attributes), and the gaps.
COUNT_PARTITIONS = ("P0", *focus_dataset.PARTITION_GROUPS)
UNCOMMON_PARTITIONS = tuple(focus_dataset.PARTITION_GROUPS)
GAPS = ("G_t", "G_w", "G_l", "gap_overall")

# Dates outside [EARLIEST_DATE, now + CLOCK_SKEW] are absurd: FOCUS appeared in 2022, and a naive
# date (no time zone, read as UTC) may run up to a day ahead of UTC.
EARLIEST_DATE = datetime(2022, 1, 1, tzinfo=timezone.utc)
CLOCK_SKEW = timedelta(days=1)


def file_records(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The `files` block of submission.json: size and SHA-256 of each hashed file."""

    folder = Path(folder)
    return {name: {"size": (folder / name).stat().st_size, "sha256": runfolder.sha256_file(folder / name)}
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
