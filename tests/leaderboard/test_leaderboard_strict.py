"""harness.strict: submitted files read strictly, their sizes checked before they are parsed."""

import doctest
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.leaderboard import errors, strict, submission as submission_format

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
    if name == submission_format.METRICS_FILE:  # the tampered file, its hash recorded
        restamp(submission)
    problems = rejected(submission, truth)
    assert any(problem.startswith(message) for problem in problems), problems


def test_oversized_files_are_rejected_before_parsing(submission, truth):
    size = (submission / submission_format.PREDICTIONS_FILE).stat().st_size
    problems = rejected(submission, truth, limits=strict.Limits(predictions_bytes=100, json_bytes=100))
    assert f"predictions.parquet: {size:,} bytes is over the limit of 100 bytes (raise it with " \
           f"--max-predictions-mb)" in problems
    assert any(p.startswith("submission.json: ") and "over the limit of 100 bytes" in p for p in problems)


def test_parquet_row_count_is_limited_before_reading(submission, truth):
    problems = rejected(submission, truth, limits=strict.Limits(rows=10))
    assert any(p.startswith("predictions.parquet: 48 rows and ") and "over the limits of 10 rows" in p
               for p in problems)


def test_labels_in_the_predictions_file_are_refused(submission, truth):
    edit_predictions(submission, lambda t: t.append_column("label", pa.array(np.zeros(t.num_rows, dtype=np.int64))))
    assert rejected(submission, truth) == [
        "predictions.parquet: unexpected column(s) ['label']; a submission holds only ['file_name', 'prediction', "
        "'top5_ids', 'top5_probs'] (labels and attributes come from the dataset)"]


def test_a_predictions_file_that_is_not_parquet_is_rejected(submission, truth):
    (submission / submission_format.PREDICTIONS_FILE).write_text("file_name,prediction\n")
    restamp(submission)
    assert any(p.startswith("predictions.parquet is not a Parquet file") for p in rejected(submission, truth))


REPO = Path(__file__).resolve().parents[2]

# Reads a predictions file in a fresh process (address space capped at 4 GiB, so that a reader that decodes
# everything fails instead of exhausting the machine) and reports the error and how far its peak RSS rose.
# The peak is Linux's VmHWM, reset first (clear_refs 5): a child starts with its parent's peak.
MEASURE = """
import json, resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
from harness.leaderboard import strict

def kib(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))

with open("/proc/self/clear_refs", "w") as file:
    file.write("5")
before = kib("VmRSS")
try:
    strict.read_submitted_predictions(Path(sys.argv[1]), strict.Limits(**json.loads(sys.argv[2])))
    error = None
except Exception as err:
    error = f"{type(err).__name__}: {err}"
print(json.dumps({"error": error, "growth": (kib("VmHWM") - before) * 1024}))
"""


def _read_in_a_fresh_process(path: Path, **limits) -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path), json.dumps(limits)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _lists(rows: int, row: np.ndarray) -> pa.ListArray:
    offsets = np.arange(0, len(row) * rows + 1, len(row), dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.tile(row, rows)))


@pytest.mark.slow
def test_a_dictionary_encoded_long_file_name_repeated_a_million_times_is_rejected_before_decoding(tmp_path):
    """The sweep's file: 1M rows of one 3 KB file_name, dictionary-encoded. The file is about 330 KB and its
    footer claims 4 MB, but decoding takes 3 GB of strings (9.7 GB with the copies the old reader made)."""
    rows = 1_000_000
    file_name = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array(["x" * 3000]))
    table = pa.table({"file_name": file_name, "prediction": pa.array(np.zeros(rows, dtype=np.int64)),
                      "top5_ids": _lists(rows, np.arange(5)),
                      "top5_probs": _lists(rows, np.float32([0.5, 0.2, 0.1, 0.1, 0.1]))})
    path = tmp_path / submission_format.PREDICTIONS_FILE
    pq.write_table(table, path, compression="zstd", store_schema=False)  # read back as plain strings
    assert path.stat().st_size < 1_000_000
    metadata = pq.ParquetFile(path).metadata
    assert sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)) < 8_000_000
    found = _read_in_a_fresh_process(path, decoded_bytes=64 * 2**20)
    assert found["error"] == (
        "SubmissionError: predictions.parquet: decoding it takes 3,100,000,012 bytes or more (1,000,000 rows; "
        "file_name values up to 3,000 bytes), over the limit of 67,108,864 bytes (raise it with --max-decoded-mb)")
    assert found["growth"] < 150 * 2**20


@pytest.mark.slow
def test_top5_lists_that_decode_to_more_than_the_limit_are_rejected_before_decoding(tmp_path):
    """Long lists of one repeated id compress to almost nothing: 100 row groups of 100 rows of 10,000 ids."""
    path = tmp_path / submission_format.PREDICTIONS_FILE
    rows, length = 100, 10_000
    group = pa.table({"file_name": pa.array([f"cat/{i}.jpg" for i in range(rows)]),
                      "prediction": pa.array(np.zeros(rows, dtype=np.int64)),
                      "top5_ids": _lists(rows, np.zeros(length, dtype=np.int64)),
                      "top5_probs": _lists(rows, np.zeros(length, dtype=np.float32))})
    with pq.ParquetWriter(path, group.schema, compression="zstd") as writer:
        for _ in range(100):
            writer.write_table(group)
    assert path.stat().st_size < 5_000_000
    found = _read_in_a_fresh_process(path, decoded_bytes=64 * 2**20)
    assert found["error"].startswith("SubmissionError: predictions.parquet: decoding it takes ")
    assert "over the limit of 67,108,864 bytes (raise it with --max-decoded-mb)" in found["error"]
    assert found["growth"] < 150 * 2**20


def test_a_valid_predictions_file_reads_within_the_decoded_limit(submission):
    table = strict.read_submitted_predictions(submission / submission_format.PREDICTIONS_FILE, strict.Limits())
    assert table.num_rows == 48 and table.schema.field("file_name").type == pa.string()
    with pytest.raises(errors.SubmissionError, match=r"predictions.parquet: decoding it takes [0-9,]+ bytes or "
                                                          r"more \(48 rows; file_name values up to \d+ bytes\), over "
                                                          r"the limit of 100 bytes"):
        strict.read_submitted_predictions(submission / submission_format.PREDICTIONS_FILE,
                                               strict.Limits(decoded_bytes=100))


def test_doctests_pass():
    assert doctest.testmod(strict, optionflags=doctest.ELLIPSIS).failed == 0
