"""verify: a submission checked file by file, joined to the ground truth, its metrics recomputed and compared."""

from __future__ import annotations

import dataclasses
import heapq
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from focus_tools import statistics
from focus_common import inputs
import focus_dataset
from harness import scoring
from harness.leaderboard.errors import LeaderboardError, SubmissionError
from harness.leaderboard.strict import (
    TOP_K, Limits, _json_path, _shown, kind_of, read_json_strict, read_submitted_predictions,
)
from harness.leaderboard.submission import (
    LATER_METRICS, METRICS_FILE, MODEL_INDEX_FILE, NUM_CLASSES, PREDICTIONS_FILE, SUBMISSION_FILE, SUBMITTED_FILES,
    metadata_problems,
)

# Claims match when point values agree to POINT_TOLERANCE; intervals are recomputed with the recorded
# seed, so they must agree exactly (INTERVAL_TOLERANCE). Counts and labels always agree exactly.
POINT_TOLERANCE = 1e-9
INTERVAL_TOLERANCE = 0.0
INTERVAL_FIELDS = frozenset({"ci_low", "ci_high"})

SHOWN = 5  # file names quoted per kind of problem


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """The dataset that predictions are scored against: its annotation columns and fingerprint."""

    table: pa.Table
    fingerprint: str
    source: str

    @property
    def num_images(self) -> int:
        return self.table.num_rows

    @property
    def longest_name(self) -> int:
        """The longest file_name of its images, in bytes: a submitted name longer than that is none of them."""
        return pc.max(pc.binary_length(self.table.column("file_name"))).as_py() or 0


@dataclasses.dataclass
class Verification:
    """What verify found: every problem, and the recomputed metrics when they could be computed."""

    submission: Path
    problems: list[str]
    metadata: dict | None = None
    claimed: dict | None = None
    recomputed: dict | None = None
    compared_fields: int = 0
    # Per image of the ground truth in file_name order, set with `recomputed`: top-1 correctness and the
    # model's own top-1 class id (what comparisons between submissions pair and compare).
    correct: np.ndarray | None = dataclasses.field(default=None, repr=False)
    top1: np.ndarray | None = dataclasses.field(default=None, repr=False)
    # Per image in file_name order, set with `recomputed`: its top-5 ids and probabilities as one value that
    # equals another's only when both are bit-identical (top5_values); what copies are judged on too.
    top5: np.ndarray | None = dataclasses.field(default=None, repr=False)
    # Set by comparisons.flag_near_copies: other submissions (folder name, share of images) that agree
    # with this one on nearly every top-1 while claiming a different model.
    near_copies: list[tuple[str, float]] = dataclasses.field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.problems and self.recomputed is not None


def submission_folders(submissions_dir: str | os.PathLike, *, exclude: str | os.PathLike | None = None) -> list[Path]:
    """The submission folders of a leaderboard's folder, by name: hidden entries, files and `exclude` left out."""
    submissions_dir = Path(submissions_dir)
    if not submissions_dir.is_dir():
        raise LeaderboardError(f"{submissions_dir}: not a folder; pass the folder that holds the submission folders")
    excluded = Path(exclude).resolve() if exclude is not None else None
    return sorted(path for path in submissions_dir.iterdir()
                  if path.is_dir() and not path.name.startswith(".") and path.resolve() != excluded)


def ground_truth(data: str | os.PathLike) -> GroundTruth:
    """Load the ground truth once: a converted folder, a raw release (folder or zip) or a Hub id."""
    try:
        table = focus_dataset.annotation_table(focus_dataset.load_focus(data))
    except Exception as err:  # any loader failure becomes one clear message at the command line
        raise LeaderboardError(
            f"--data {data}: cannot load the FOCUS dataset ({type(err).__name__}: {err}). Pass a converted "
            f"folder (focus-dataset convert), a release folder or focus.zip, or a Hub dataset id."
        ) from err
    return GroundTruth(table, statistics.dataset_fingerprint(table), str(data))


def _examples(names: Sequence[str], count: int | None = None) -> str:
    """The first SHOWN of `names` quoted, and how many more of `count` (default: all of `names`) there are."""
    count = len(names) if count is None else count
    quoted = ", ".join(_shown(name, 60) for name in names[:SHOWN])
    return quoted + (f" and {count - SHOWN} more" if count > SHOWN else "")


def _smallest(names: pa.ChunkedArray | pa.Array) -> str:
    """`_examples` of an Arrow column of names: the first in sorted order, picked without a Python list of all."""
    first = names.take(pc.sort_indices(names)[:SHOWN]).to_pylist()
    return _examples(first, len(names))


def _first(mask: np.ndarray, predictions: pa.Table, values: np.ndarray | None = None) -> str:
    """The file name of the first row of `mask`, and its values."""
    row = int(np.flatnonzero(mask)[0])
    shown = _shown(predictions.column("file_name")[row].as_py(), 60)
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
    prediction = predictions.column("prediction").to_numpy()
    problems = []
    bad = (prediction < -1) | (prediction >= NUM_CLASSES["focus"])
    if bad.any():
        problems.append(f"{name}: {bad.sum()} prediction(s) outside -1..{NUM_CLASSES['focus'] - 1} (a FOCUS class id, "
                        f"or -1 for none of them); first at {_first(bad, predictions, prediction)}")
    lengths = {column: pc.list_value_length(predictions.column(column)).to_numpy(zero_copy_only=False)
               for column in ("top5_ids", "top5_probs")}
    short = (lengths["top5_ids"] != TOP_K) | (lengths["top5_probs"] != TOP_K)
    if short.any():
        problems.append(f"{name}: {short.sum()} row(s) without exactly {TOP_K} top5_ids and {TOP_K} top5_probs; "
                        f"first at {_first(short, predictions)}")
        return problems
    ids = _top5(predictions, "top5_ids")
    num_classes = NUM_CLASSES.get(label_space, max(NUM_CLASSES.values()))
    bad = ((ids < 0) | (ids >= num_classes)).any(axis=1)
    if bad.any():
        problems.append(f"{name}: {bad.sum()} row(s) with top5_ids outside 0..{num_classes - 1} (label_space="
                        f"{label_space!r}); first at {_first(bad, predictions, ids)}")
    return problems


def _top5(predictions: pa.Table, column: str) -> np.ndarray:
    return pc.list_flatten(predictions.column(column)).to_numpy().reshape(predictions.num_rows, TOP_K)


def top5_values(ids: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each row's top-5 ids (class ids, < 2**15) and probabilities (as read, float64) as one opaque value: two
    rows' values are equal exactly when their ids and their probabilities' bits are.

    >>> values = top5_values(np.array([[3, 1, 2, 0, 4]] * 3), np.array([[0.5, 0.2, 0.1, 0.1, 0.0]] * 3))
    >>> values[2:] = top5_values(np.array([[3, 1, 2, 0, 4]]), np.array([[0.5, 0.2, 0.1, 0.1, -0.0]]))
    >>> (values == values[0]).tolist()
    [True, True, False]
    """
    rows = np.empty(len(ids), dtype=[("ids", "<i2", TOP_K), ("probs", "<f8", TOP_K)])
    rows["ids"], rows["probs"] = ids, probs
    return rows.view(np.dtype((np.void, rows.dtype.itemsize)))


def _top5_in_file_name_order(predictions: pa.Table) -> np.ndarray:
    """top5_values of predictions joined one to one to the images, in file_name order (as the scored table)."""
    ordered = predictions.select(["top5_ids", "top5_probs"]).take(pc.sort_indices(predictions.column("file_name")))
    return top5_values(_top5(ordered, "top5_ids"), _top5(ordered, "top5_probs"))


def top5_problems(predictions: pa.Table, label_space: str | None, mapping: str | None) -> list[str]:
    """Top-5 lists that are not a top-5, and predictions that their top-5 contradicts.

    Run on predictions without value problems; with `label_space` None the agreement is not checked.
    """
    name = PREDICTIONS_FILE
    prediction = predictions.column("prediction").to_numpy()
    ids, probs = _top5(predictions, "top5_ids"), _top5(predictions, "top5_probs")
    problems = []
    bad = (np.diff(np.sort(ids, axis=1), axis=1) == 0).any(axis=1)
    if bad.any():
        problems.append(f"{name}: {bad.sum()} row(s) list a class twice in top5_ids; first at "
                        f"{_first(bad, predictions, ids)}")
    # float32 softmax probabilities: allow rounding in their sum, never NaN, negative or unsorted values.
    bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1) | (probs.sum(axis=1) > 1 + 1e-3) | (
        np.diff(probs, axis=1) > 0).any(axis=1)
    if bad.any():
        problems.append(f"{name}: {bad.sum()} row(s) whose top5_probs are not probabilities in decreasing order "
                        f"summing to at most 1; first at {_first(bad, predictions, probs)}")
    if label_space is None:
        return problems
    disagree = ~_agrees_with_top5(prediction, _top5_focus_ids(ids, label_space), probs, mapping)
    if disagree.any():
        rule = ("the FOCUS class of the top-1 (paper's mapping)" if label_space == "imagenet" and mapping == "paper"
                else "the best-ranked mapped class of the top-5" if label_space == "imagenet" else "the top-1 class")
        problems.append(f"{name}: {disagree.sum()} prediction(s) are not {rule} (label_space={label_space!r}, "
                        f"mapping={mapping!r}); first at {_first(disagree, predictions)}: prediction "
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
    """Join predictions to the dataset by file_name: a table in scoring.PREDICTION_SCHEMA, or the problems.

    Each dataset image needs exactly one prediction, and no other image may be predicted.
    """
    name = PREDICTIONS_FILE
    problems = []
    files, images = predictions.column("file_name"), truth.table.column("file_name")
    known = pc.is_in(files, value_set=images)
    # Names are hashed and copied only once they are the dataset's (short, and no more than its images):
    # a name not in the dataset, however long or often repeated, is only counted and the first few quoted.
    known_files = files.filter(known)
    duplicated = _duplicated(known_files)
    if len(duplicated):
        problems.append(f"{name}: {len(duplicated)} image(s) predicted more than once: "
                        f"{_smallest(duplicated)}; a submission predicts every image once")
    unknown = files.filter(pc.invert(known))
    if len(unknown):
        problems.append(f"{name}: {len(unknown)} predicted image(s) are not in the dataset: "
                        f"{_smallest(unknown)}; were the predictions made on another dataset?")
    del unknown
    missing = images.filter(pc.invert(pc.is_in(images, value_set=known_files)))
    if len(missing):
        problems.append(f"{name}: {len(missing)} image(s) of the dataset have no prediction: "
                        f"{_smallest(missing)}; a submission predicts every image")
    if problems:
        return None, problems
    numbers = predictions.select(["prediction", "top5_ids", "top5_probs"])
    aligned = numbers.take(pc.index_in(images, value_set=files))
    top5_ids = _top5(aligned, "top5_ids")
    table = scoring.prediction_table(truth.table, aligned.column("prediction").to_numpy(), top5_ids,
                             _top5(aligned, "top5_probs"), _top5_focus_ids(top5_ids, label_space))
    return table.sort_by("file_name"), []


def _duplicated(names: pa.ChunkedArray) -> pa.Array:
    """The names that occur more than once."""
    counts = pc.value_counts(names)
    return counts.field("values").filter(pc.greater(counts.field("counts"), 1))


def recompute_metrics(scored: pa.Table, metric: dict) -> dict:
    """metrics.json as the harness writes it, recomputed with the submission's metric settings."""
    results = scoring.compute_metrics(scored, n_bootstrap=metric["n_bootstrap"], seed=metric["seed"],
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


def _folder_problems(submission: Path) -> list[str]:
    problems = []
    for name in SUBMITTED_FILES:
        kind = kind_of(submission / name)
        if kind == "a symbolic link":
            problems.append(f"{name}: is a symbolic link; a submission holds plain files")
        elif kind == "missing":
            problems.append(f"{name}: missing; a submission holds {list(SUBMITTED_FILES)} (write one with "
                            f"focus-leaderboard pack)")
        elif kind != "a file":  # a FIFO would block a reader, a device never end: neither is opened
            problems.append(f"{name}: {kind}, not a plain file; a submission holds plain files")
    # A folder can hold any number of entries: a few are named, the rest counted.
    unexpected = (p.name for p in submission.iterdir() if p.name not in SUBMITTED_FILES and p.name != MODEL_INDEX_FILE)
    count, first = 0, []
    for name in unexpected:
        count += 1
        first = heapq.nsmallest(SHOWN, [*first, name])
    problems += [f"{_shown(name, 60)}: unexpected in a submission, which holds only {list(SUBMITTED_FILES)} (and "
                 f"{MODEL_INDEX_FILE}); remove it" for name in first]
    if count > SHOWN:
        problems.append(f"{count - SHOWN:,} more unexpected entries in the submission folder; remove them")
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
                path.stat().st_size != record["size"] or inputs.sha256_file(path) != record["sha256"]):
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


def check_submission_folder(submission: str | os.PathLike) -> Path:
    """A submission given to a command is a folder; anything else (nothing, a file, a FIFO) leaves nothing to judge,
    so the command cannot run (LeaderboardError, exit 2), rather than a rejection (exit 1)."""
    submission = Path(submission)
    if not submission.is_dir():
        kind = kind_of(submission)
        raise LeaderboardError(f"{submission}: " + ("no such folder" if kind == "missing" else f"{kind}, not a folder")
                               + "; a submission is the folder that focus-leaderboard pack writes")
    return submission


def verify(
    submission: str | os.PathLike,
    truth: GroundTruth | None,
    *,
    limits: Limits = Limits(),
    now: datetime | None = None,
) -> Verification:
    """Check a submission and recompute its metrics; every problem found is listed.

    With `truth` None only what needs no dataset is checked (files, JSON, schema, hashes, predictions
    on their own), and nothing is recomputed, so the result is never `accepted`. A `submission` that is
    not a folder (a file, a FIFO, a device) cannot be verified: LeaderboardError.
    """
    submission = check_submission_folder(submission)
    problems = _folder_problems(submission)
    metadata = _read_part(submission, SUBMISSION_FILE, lambda p: read_json_strict(p, limits.json_bytes), problems)
    claimed = _read_part(submission, METRICS_FILE, lambda p: read_json_strict(p, limits.json_bytes), problems)
    # The ground truth bounds the predictions before they are decoded: a row per image, names no longer than its.
    shape = {} if truth is None else {"images": truth.num_images, "longest_name": truth.longest_name}
    predictions = _read_part(submission, PREDICTIONS_FILE, lambda p: read_submitted_predictions(p, limits, **shape),
                             problems)
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
    result.correct = scored.column("correct").to_numpy(zero_copy_only=False)
    result.top1 = pc.list_element(scored.column("top5_ids"), 0).to_numpy()
    result.top5 = _top5_in_file_name_order(predictions)
    if isinstance(claimed, dict):
        later = LATER_METRICS.get(metadata["schema_version"], frozenset())
        expected = {key: value for key, value in result.recomputed.items() if key in claimed or key not in later}
        result.compared_fields = _count_fields(expected)
        problems += [f"{METRICS_FILE} {problem}" for problem in compare_claims(claimed, expected)]
    return result
