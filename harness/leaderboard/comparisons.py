"""Submissions compared with each other: copies, near-copies, and the statistics each ranked table shows.

This module turns verified submissions and the ground truth into the arrays that `statistics` works on
(correctness and top-1 per image, the groups of the table's columns) and back into what the pages show:
per table, rank intervals for every statistical column with marks for ties with the leader, the exact
McNemar test and paired bootstrap intervals of the gap differences against the model ranked above, and
effective robustness; across the submissions, copied predictions (rejected) and near-copies (flagged).
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow.compute as pc

from focus_tools import schema
from harness import robustness
from harness.leaderboard import significance
from harness.leaderboard.submission import PREDICTIONS_FILE, board_of, preprocessing_kind
from harness.leaderboard.strict import Limits
from harness.leaderboard.verification import GroundTruth, Verification, submission_folders, verify

NEAR_COPY = 0.995  # top-1 agreement from which two different models are flagged
# The share of images whose top-5 ids and probabilities are bit-identical from which a submission is a copy,
# whatever it claims: two evaluations that differ in anything (model, weights, precision, preprocessing)
# differ in the last bits of nearly every probability.
SAME_TOP5 = 0.99

# Each statistical column of a table as accuracies of groups of images: an accuracy is its group's, a gap
# the first group's minus the second's (Eq. 1; the overall gaps P0 against P1-P3 or P1-P2). The metric
# defines the same groups; a test pins these to its numbers.
COLUMN_GROUPS = {
    "accuracy": ("all",),
    "P0": ("P0",), "P1": ("P1",), "P2": ("P2",), "P3": ("P3",),
    "G_t": ("time:common", "time:uncommon"),
    "G_w": ("weather:common", "weather:uncommon"),
    "G_l": ("locations:common", "locations:uncommon"),
    "gap_overall": ("P0", "P1-P3"),
    "gap_overall_paper": ("P0", "P1-P2"),
}
HIGHER_IS_BETTER = {key: len(groups) == 1 for key, groups in COLUMN_GROUPS.items()}  # accuracies up, gaps down


def group_weights(truth: GroundTruth) -> dict[str, np.ndarray]:
    """How many times each image (in file_name order) counts in each group of COLUMN_GROUPS.

    An image counts once per common (uncommon) value of an attribute, so an image with two common
    locations counts twice in G_l's common group: the metric's "occurrence" unit, which the leaderboard
    requires. "none" values are in neither group.
    """
    table = truth.table.sort_by("file_name")
    counts = {}
    for attribute, names in (("time", schema.TIME_NAMES), ("weather", schema.WEATHER_NAMES)):
        values = table.column(attribute).to_numpy()
        uncommon = table.column(f"uncommon_{attribute}").to_numpy(zero_copy_only=False)
        counts[attribute] = ((values != names.index("none")) & ~uncommon, uncommon)
    locations = table.column("locations")
    flat, parents = pc.list_flatten(locations).to_numpy(), pc.list_parent_indices(locations).to_numpy()
    n_none = np.bincount(parents[flat == schema.LOCATION_NAMES.index("none")], minlength=table.num_rows)
    n_uncommon_locations = pc.list_value_length(table.column("uncommon_locations")).to_numpy(zero_copy_only=False)
    n_locations = pc.list_value_length(locations).to_numpy(zero_copy_only=False)
    counts["locations"] = (n_locations - n_none - n_uncommon_locations, n_uncommon_locations)
    n_uncommon = sum((uncommon > 0).astype(int) for _, uncommon in counts.values())
    weights = {"all": np.ones(table.num_rows), "P1-P3": n_uncommon > 0, "P1-P2": (n_uncommon == 1) | (n_uncommon == 2)}
    weights |= {f"P{k}": n_uncommon == k for k in range(4)}
    for attribute, (common, uncommon) in counts.items():
        weights[f"{attribute}:common"], weights[f"{attribute}:uncommon"] = common, uncommon
    return {name: np.asarray(value, dtype=np.float32) for name, value in weights.items()}


@dataclasses.dataclass
class Comparison:
    """The statistics of one ranked table, rows in the table's order (best accuracy first).

    rank_intervals: per statistical column, each row's (low, high) rank bounds over the bootstrap, and
        whether that interval overlaps the interval of the column's leader (the best point value).
    neighbours: per row, None for the first; otherwise the comparison with the row above: discordant
        counts and the exact McNemar p-value, and per gap the difference (this row minus the one above)
        with its paired bootstrap interval.
    fit: the effective-robustness fit (robustness.effective_robustness) when it can be drawn, else None;
        effective_robustness holds each row's value (None without a fit).
    """

    rank_intervals: dict[str, list[tuple[int, int, bool]]]
    neighbours: list[dict | None]
    fit: dict | None
    effective_robustness: list[float | None]


def _column_values(accuracies: np.ndarray, groups: list[str]) -> dict[str, np.ndarray]:
    """(replicates x rows) values of every statistical column from (replicates x rows x groups) accuracies."""
    index = {name: i for i, name in enumerate(groups)}
    values = {}
    for key, members in COLUMN_GROUPS.items():
        first = accuracies[..., index[members[0]]]
        values[key] = first if len(members) == 1 else first - accuracies[..., index[members[1]]]
    return values


def compare(rows: Sequence[dict], weights: dict[str, np.ndarray], counts: np.ndarray) -> Comparison:
    """Statistics of one table from its rows (each with "correct" and "values"), group weights and bootstrap counts.

    `counts` (replicates x images, significance.bootstrap_counts) is shared by every table and submission:
    the replicates are paired.
    """
    groups = list(weights)
    correct = np.stack([row["correct"] for row in rows])
    replicates = _column_values(significance.group_accuracies(counts, correct, np.stack(list(weights.values()))),
                                groups)
    rank_intervals = {}
    for key, values in replicates.items():
        low, high = significance.rank_intervals(values, HIGHER_IS_BETTER[key])
        points = np.array([np.nan if row["values"][key] is None else row["values"][key] for row in rows])
        leader = int(np.argmin(significance.ranks(points, HIGHER_IS_BETTER[key])))  # ties: the table's order
        tied = significance.tied_with_leader(low, high, leader)
        rank_intervals[key] = [(int(a), int(b), bool(c)) for a, b, c in zip(low, high, tied)]
    neighbours = [None] + [_neighbour(rows, replicates, i) for i in range(1, len(rows))]
    fit, robustness = _effective_robustness(rows)
    return Comparison(rank_intervals, neighbours, fit, robustness)


def _neighbour(rows: Sequence[dict], replicates: dict[str, np.ndarray], i: int) -> dict:
    """Row i against row i - 1: exact McNemar on top-1 correctness, paired intervals of the gap differences."""
    only_this, only_above = significance.discordant(rows[i]["correct"], rows[i - 1]["correct"])
    gaps = {}
    for gap in schema.GAPS:
        this, above = rows[i]["values"][gap], rows[i - 1]["values"][gap]
        low, high = significance.percentile_interval(replicates[gap][:, i] - replicates[gap][:, i - 1])
        gaps[gap] = (None if this is None or above is None else this - above, _number(low), _number(high))
    return {"above": rows[i - 1]["submission"], "only_this": only_this, "only_above": only_above,
            "p_value": float(significance.mcnemar_exact(only_this, only_above)), "gaps": gaps}


def _number(value) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def _effective_robustness(rows: Sequence[dict]) -> tuple[dict | None, list[float | None]]:
    """The fit over the table's models, when there are enough with defined accuracies, and each row's value."""
    defined = [i for i, row in enumerate(rows) if row["common"] is not None and row["uncommon"] is not None]
    if len(defined) < robustness.MIN_FIT_MODELS:
        return None, [None] * len(rows)
    try:
        fit = robustness.effective_robustness(np.array([rows[i]["common"] for i in defined]),
                                              np.array([rows[i]["uncommon"] for i in defined]))
    except ValueError:  # every common accuracy equal: no line
        return None, [None] * len(rows)
    fit["submissions"] = [rows[i]["submission"] for i in defined]
    values = [None] * len(rows)
    for i, value in zip(defined, fit["effective_robustness"]):
        values[i] = value
    return fit, values


_LAST = datetime.max.replace(tzinfo=timezone.utc)  # what an unreadable date sorts as


def _submitted(verification: Verification) -> datetime:
    """When a submission claims it was submitted (unreadable: last)."""
    metadata = verification.metadata if isinstance(verification.metadata, dict) else {}
    try:
        date = datetime.fromisoformat(metadata["submitted"])
    except (KeyError, TypeError, ValueError):
        return _LAST
    return date if date.tzinfo else date.replace(tzinfo=timezone.utc)


def _identity(verification: Verification) -> tuple:
    metadata = verification.metadata
    return metadata["model"], metadata["weights"]["sha256"]


def _evaluation(verification: Verification) -> tuple:
    """What makes a model's probabilities: the model and weights, the precision, the preprocessing, the classes."""
    metadata = verification.metadata
    return (*_identity(verification), metadata["precision"], preprocessing_kind(metadata),
            json.dumps(metadata.get("preprocessing"), sort_keys=True), metadata["label_space"])


# Which of two submissions came first ("earlier"), strongest evidence first: one that render accepted
# before (its ledger), one of the leaderboard's folder against one arriving from outside it
# (verify --submissions), then the `submitted` date that the submitter wrote, then the folder name.
_ACCEPTED_BEFORE, _IN_FOLDER, _ARRIVING = range(3)


def _arrival(verification: Verification, accepted_before: Mapping[str, datetime],
             arriving: Verification | None) -> tuple[int, datetime, str]:
    """The sort key of "earlier": (rule, time, folder name)."""
    name = verification.submission.name
    if verification is arriving:
        return _ARRIVING, _LAST, name
    if name in accepted_before:
        return _ACCEPTED_BEFORE, accepted_before[name], name
    return _IN_FOLDER, _submitted(verification), name


def _why_earlier(first: tuple[int, datetime, str], later: tuple[int, datetime, str]) -> str:
    """Which rule made `first` the earlier of two submissions, in words."""
    (rule, when, _), (later_rule, later_when, _) = first, later
    if later_rule == _ARRIVING:
        return "earlier: already in the submissions folder, which this submission is not"
    if rule != later_rule:
        return f"earlier: accepted by an earlier render on {when.isoformat()}, as its ledger records; this one was not"
    dates = "dates render's ledger records them accepted" if rule == _ACCEPTED_BEFORE else "claimed submitted dates"
    if when != later_when:
        return f"earlier by the {dates}: {when.isoformat()} against {later_when.isoformat()}"
    return f"earlier by folder name, the {dates} being the same"


def _copied(verification: Verification, earlier: Verification) -> str | None:
    """How `verification` copies `earlier`, or None.

    The same top-1 on every image is a copy in the same table, and in another table while claiming another
    model or other weights. Bit-identical top-5 ids and probabilities on SAME_TOP5 of the images are a copy
    whatever the predictions and the claims, the same model and weights included (evaluated again the same
    way, it is the same submission); only the same evaluation scored with another mapping is not.
    """
    name, images = earlier.submission.name, len(verification.top1)
    rescored = (board_of(verification.metadata) != board_of(earlier.metadata)
                and _identity(verification) == _identity(earlier))  # the same model, in another table
    if np.array_equal(verification.top1, earlier.top1) and not rescored:
        return f"the same top-1 as the earlier submission {name} for every one of its {images:,} images"
    if verification.top5 is None or earlier.top5 is None:  # built without them (a benchmark): top-1 alone
        return None
    same = int(np.count_nonzero(verification.top5 == earlier.top5))
    if same >= SAME_TOP5 * images and not (_evaluation(verification) == _evaluation(earlier)
                                           and verification.metadata["mapping"] != earlier.metadata["mapping"]):
        return (f"the same top-5 classes and probabilities, bit for bit, as the earlier submission {name} on {same:,} "
                f"of its {images:,} images (a copy from {SAME_TOP5:.0%})")
    return None


def reject_copies(verifications: Sequence[Verification], *, accepted_before: Mapping[str, datetime] | None = None,
                  arriving: Verification | None = None) -> None:
    """Add a problem to every submission that repeats an earlier one; they are then not accepted.

    A folder that is a symbolic link to another submission folder is that submission (the real folder,
    or the first by name, stays). A submission whose top-1 is the same as an earlier accepted submission's
    on every image, or whose top-5 ids and probabilities are bit-identical to its on SAME_TOP5 of the
    images, is a copy of it (_copied), in any table.

    "Earlier" trusts what the submitter does not write first: a submission in `accepted_before` (folder
    name -> when render first accepted it, from render's ledger) is earlier than any other, and
    `arriving` (a submission from outside the folder, verify_among) is later than every one; between the
    rest, the `submitted` date that each submission claims decides, then the folder name. The problem
    says which rule decided.
    """
    accepted_before = accepted_before or {}
    by_target: dict[str, list[Verification]] = {}
    for verification in verifications:
        by_target.setdefault(os.path.realpath(verification.submission), []).append(verification)
    for same in by_target.values():
        original = min(same, key=lambda v: (v.submission.is_symlink(), v.submission.name))
        for verification in same:
            if verification is not original:
                verification.problems.append(f"{verification.submission.name}: a symbolic link to the submission "
                                             f"{original.submission.name}, the same submission; it is ranked once")
    kept: list[tuple[tuple, Verification]] = []
    arrivals = [(_arrival(v, accepted_before, arriving), v) for v in verifications]
    for arrival, verification in sorted(arrivals, key=lambda pair: pair[0]):
        if not verification.accepted:
            continue
        first, how = next(((a, how) for a, v in kept if (how := _copied(verification, v))), (None, None))
        if how is None:
            kept.append((arrival, verification))
        else:
            verification.problems.append(f"{PREDICTIONS_FILE}: {how}; a copied submission is not ranked "
                                         f"({_why_earlier(first, arrival)})")


def flag_near_copies(verifications: Sequence[Verification]) -> None:
    """Record on each accepted submission the others, in any table, of a different model (or weights), whose
    top-1 agrees with its own on at least NEAR_COPY of the images: (folder name, share) in `near_copies`.

    They are flagged, not rejected: fine-tunes of one checkpoint can agree that much. Across tables too: a
    near copy moved to another table (by claiming another preprocessing, say) is still flagged.
    """
    accepted = [v for v in verifications if v.accepted]
    if not accepted:
        return
    shares = significance.agreement(np.stack([v.top1 for v in accepted]))
    for i, j in zip(*np.nonzero(shares >= NEAR_COPY)):
        if i != j and _identity(accepted[i]) != _identity(accepted[j]):
            accepted[i].near_copies.append((accepted[j].submission.name, float(shares[i, j])))


def verify_among(
    submission: str | os.PathLike, truth: GroundTruth, submissions_dir: str | os.PathLike, *,
    limits: Limits = Limits(), now: datetime | None = None,
) -> Verification:
    """verify, and also against a folder of submissions: rejected if it copies an earlier one, near-copies flagged.

    Every submission of the folder is verified too, so that a copy is judged as render judges it. A
    submission that is not one of the folder's entries is arriving: later than each of them, whatever
    its claimed dates.
    """
    submission, folders = Path(submission), submission_folders(submissions_dir)
    # The same folder entry however it is spelled (relative, absolute, through ".."); a symbolic link
    # among the folder's entries stays an entry of its own (reject_copies resolves links).
    entry = next((folder for folder in folders if os.path.abspath(folder) == os.path.abspath(submission)), None)
    # An arriving submission first: one that cannot be verified stops the command before the folder's are.
    arriving = None if entry is not None else verify(submission, truth, limits=limits, now=now)
    others = [verify(folder, truth, limits=limits, now=now) for folder in folders]
    if arriving is not None:
        others.append(arriving)
    verification = arriving if arriving is not None else next(v for v in others if v.submission == entry)
    reject_copies(others, arriving=arriving)
    flag_near_copies(others)
    return verification
