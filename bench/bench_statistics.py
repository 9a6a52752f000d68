"""Time the leaderboard's statistics on a full board: 50 submissions x FOCUS's 23,902 images x 1000 replicates.

    python bench/bench_statistics.py [--n-submissions 50] [--n-images 23902] [--n-replicates 1000]

What render computes once the submissions are verified, on one core (BLAS and OpenMP limited to one
thread before numpy loads): the group weights, the paired bootstrap resamples, and per table the rank
intervals of every statistical column, the exact McNemar tests and paired gap differences between
neighbours and the effective-robustness fit; then the copy and near-copy checks (pairwise top-1
agreement). The target is 10 s; the script prints the time and its ratio to the target. The images are
FOCUS-like (bench_metric.synthetic_inputs); the submissions are random models of varied accuracy.
"""

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"  # one core, as the target says; before numpy starts its thread pools

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from bench_metric import best_time, synthetic_inputs  # noqa: E402
from harness.leaderboard import comparisons, significance  # noqa: E402
from harness.leaderboard.verification import GroundTruth, Verification  # noqa: E402

TARGET_SECONDS = 10.0


def synthetic_board(n_submissions: int, n_images: int, seed: int) -> tuple[GroundTruth, list[Verification]]:
    """A ground truth of FOCUS-like annotations and verified submissions of accuracies from 40% to 90%."""
    inputs = synthetic_inputs(n_images, seed)
    table = pa.table({
        "file_name": [f"{i:06d}.jpg" for i in range(n_images)],
        "label": inputs["references"], "time": inputs["time"], "weather": inputs["weather"],
        "locations": inputs["locations"], "uncommon_time": inputs["uncommon_time"],
        "uncommon_weather": inputs["uncommon_weather"], "uncommon_locations": inputs["uncommon_locations"],
    })
    truth = GroundTruth(table, "0" * 16, "synthetic")
    rng = np.random.default_rng(seed)
    verifications = []
    for i, accuracy in enumerate(np.linspace(0.4, 0.9, n_submissions)):
        correct = rng.random(n_images) < accuracy
        top1 = np.where(correct, inputs["references"], rng.integers(0, 1000, n_images))
        metadata = {"label_space": "imagenet", "mapping": "paper", "model": f"model_{i}",
                    "weights": {"sha256": f"{i:064x}"}, "submitted": "2026-01-01T00:00:00+00:00"}
        verifications.append(Verification(Path(f"model_{i:02d}"), [], metadata=metadata, recomputed={},
                                          correct=correct, top1=top1))
    return truth, verifications


def rows_of(verifications: list[Verification], weights: dict[str, np.ndarray]) -> list[dict]:
    """The fields of table rows that comparisons.compare reads, with point values from the same groups."""
    correct = np.stack([v.correct for v in verifications])
    points = comparisons._column_values(
        significance.group_accuracies(np.ones((1, correct.shape[1])), correct, np.stack(list(weights.values()))),
        list(weights))
    uncommon = significance.group_accuracies(np.ones((1, correct.shape[1])), correct, weights["P1-P3"][None, :])
    rows = [{"submission": v.submission.name, "correct": v.correct,
             "values": {key: float(values[0, i]) for key, values in points.items()},
             "common": float(points["P0"][0, i]), "uncommon": float(uncommon[0, i, 0])}
            for i, v in enumerate(verifications)]
    return sorted(rows, key=lambda row: -row["values"]["accuracy"])


def board_statistics(truth: GroundTruth, verifications: list[Verification], n_replicates: int) -> None:
    weights = comparisons.group_weights(truth)
    counts = significance.bootstrap_counts(truth.num_images, n_replicates)
    comparisons.compare(rows_of(verifications, weights), weights, counts)
    comparisons.reject_copies(verifications)
    comparisons.flag_near_copies(verifications)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-submissions", type=int, default=50, help="submissions in one table (default: 50)")
    parser.add_argument("--n-images", type=int, default=23902, help="images (default: FOCUS's 23,902)")
    parser.add_argument("--n-replicates", type=int, default=significance.N_REPLICATES,
                        help="bootstrap replicates (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic board (default: 0)")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the best one counts (default: 3)")
    args = parser.parse_args(argv)

    truth, verifications = synthetic_board(args.n_submissions, args.n_images, args.seed)
    start = time.perf_counter()
    counts = significance.bootstrap_counts(truth.num_images, args.n_replicates)
    resample = time.perf_counter() - start
    weights = comparisons.group_weights(truth)
    rows = rows_of(verifications, weights)
    accuracies = best_time(lambda: significance.group_accuracies(
        counts, np.stack([row["correct"] for row in rows]), np.stack(list(weights.values()))), args.repeats)
    total = best_time(lambda: board_statistics(truth, verifications, args.n_replicates), args.repeats)
    print(f"{args.n_submissions} submissions x {args.n_images:,} images x {args.n_replicates} replicates, one core")
    print(f"  paired bootstrap resamples       {resample:6.2f} s")
    print(f"  group accuracies (one product)   {accuracies:6.2f} s")
    print(f"  everything render computes       {total:6.2f} s  ({total / TARGET_SECONDS:.2f} x the "
          f"{TARGET_SECONDS:g} s target)")


if __name__ == "__main__":
    main()
