"""harness.leaderboard.strict: submitted files read strictly, their sizes checked before they are parsed."""

import doctest

import numpy as np
import pyarrow as pa
import pytest

from harness import leaderboard

from .fabricate import edit_predictions, rejected, restamp


@pytest.mark.parametrize("name, text, message", [
    ("metrics.json", '{"accuracy": NaN}', "metrics.json is not valid JSON: NaN is not a number in JSON"),
    ("metrics.json", '{"accuracy": 1e999}', "metrics.json is not valid JSON: 1e999 overflows to infinity"),
    ("submission.json", '{"num_params": -Infinity}', "submission.json is not valid JSON: -Infinity is not a number"),
    ("submission.json", '{"model": "a", "model": "b"}',
     "submission.json is not valid JSON: the key 'model' appears twice"),
    ("submission.json", '{"model": "a",', "submission.json is not valid JSON: Expecting property name enclosed in "
                                          "double quotes: line 1 column 15 (char 14)"),
    ("metrics.json", b'{"accuracy": "\xff"}', "metrics.json is not valid JSON: it is not UTF-8 text"),
    ("metrics.json", "[1, 2]", "metrics.json $: [1, 2] is not an object of metrics"),
])
def test_malformed_json_is_rejected_with_its_reason(submission, truth, name, text, message):
    path = submission / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    if name == leaderboard.METRICS_FILE:  # the tampered file, its hash recorded
        restamp(submission)
    problems = rejected(submission, truth)
    assert any(problem.startswith(message) for problem in problems), problems


def test_oversized_files_are_rejected_before_parsing(submission, truth):
    size = (submission / leaderboard.PREDICTIONS_FILE).stat().st_size
    problems = rejected(submission, truth, limits=leaderboard.Limits(predictions_bytes=100, json_bytes=100))
    assert f"predictions.parquet: {size:,} bytes is over the limit of 100 bytes (raise it with " \
           f"--max-predictions-mb)" in problems
    assert any(p.startswith("submission.json: ") and "over the limit of 100 bytes" in p for p in problems)


def test_parquet_row_count_is_limited_before_reading(submission, truth):
    problems = rejected(submission, truth, limits=leaderboard.Limits(rows=10))
    assert any(p.startswith("predictions.parquet: 48 rows and ") and "over the limits of 10 rows" in p
               for p in problems)


def test_labels_in_the_predictions_file_are_refused(submission, truth):
    edit_predictions(submission, lambda t: t.append_column("label", pa.array(np.zeros(t.num_rows, dtype=np.int64))))
    assert rejected(submission, truth) == [
        "predictions.parquet: unexpected column(s) ['label']; a submission holds only ['file_name', 'prediction', "
        "'top5_ids', 'top5_probs'] (labels and attributes come from the dataset)"]


def test_a_predictions_file_that_is_not_parquet_is_rejected(submission, truth):
    (submission / leaderboard.PREDICTIONS_FILE).write_text("file_name,prediction\n")
    restamp(submission)
    assert any(p.startswith("predictions.parquet is not a Parquet file") for p in rejected(submission, truth))


def test_doctests_pass():
    assert doctest.testmod(leaderboard.strict, optionflags=doctest.ELLIPSIS).failed == 0
