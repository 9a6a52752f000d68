"""The memory a submitted predictions file makes verify take: the whole verify's peak, measured in a fresh process.

The files are the sweep's and the issue's: a file whose footer understates its decoded size, 900,000 distinct
long names, one long name on every row, long top-5 lists, and distinct long names counted just under the
budget. Each is refused with its message while the process's peak stays under --max-decoded-mb; an honest
file of the size of FOCUS (23,902 images) is accepted within it.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from focus_tools import published, statistics
from harness.leaderboard import packing, strict, submission as submission_format

from .fabricate import fabricate_run, patch_footer_integer, restamp

REPO = Path(__file__).resolve().parents[2]
FOCUS_IMAGES = published.PUBLISHED_TABLE2["total"]  # the images of the FOCUS release
BUDGET = 256 * 2**20

# Verifies a submission (or reads a predictions file) in a fresh process whose address space is capped, so
# that a reader that decodes everything fails instead of exhausting the machine, and reports the problems and
# how far its peak RSS rose. The peak is Linux's VmHWM, reset first (clear_refs 5): a child starts with its
# parent's peak. A first verify of a small valid submission imports and loads what every verify needs (torch
# for the label mapping, the metric), so that what is measured is the submission's own cost.
MEASURE = """
import json, resource, sys
from pathlib import Path
import pyarrow.parquet as pq
resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
from harness.leaderboard import strict, verification

def kib(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))

def truth(record):
    return None if record is None else verification.GroundTruth(pq.read_table(record[0]), record[1], "test")

args = json.loads(sys.argv[1])
if args["warm"]:
    assert verification.verify(args["warm"]["submission"], truth(args["warm"]["truth"])).accepted
limits, ground_truth = strict.Limits(**args["limits"]), truth(args["truth"])
with open("/proc/self/clear_refs", "w") as file:
    file.write("5")
before = kib("VmRSS")
try:
    if args["read"]:
        strict.read_submitted_predictions(Path(args["read"]), limits)
        problems, accepted = [], True
    else:
        result = verification.verify(args["submission"], ground_truth, limits=limits)
        problems, accepted = result.problems, result.accepted
except Exception as err:
    problems, accepted = [f"{type(err).__name__}: {err}"], False
print(json.dumps({"problems": problems, "accepted": accepted, "growth": (kib("VmHWM") - before) * 1024}))
"""


def _measure(**args) -> dict:
    args = {"warm": None, "read": None, "submission": None, "truth": None, "limits": {}} | args
    result = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(args, default=str)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _lists(rows: int, row: np.ndarray) -> pa.ListArray:
    offsets = np.arange(0, len(row) * rows + 1, len(row), dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.tile(row, rows)))


def _predictions(names: pa.Array, length: int = 5) -> pa.Table:
    """Predictions for `names`, every row's top-`length` lists the same (the distinct ids of a top-5 when 5)."""
    rows = len(names)
    ids = np.arange(length) if length == 5 else np.zeros(length, dtype=np.int64)
    return pa.table({"file_name": names, "prediction": pa.array(np.zeros(rows, dtype=np.int64)),
                     "top5_ids": _lists(rows, ids), "top5_probs": _lists(rows, np.zeros(length, dtype=np.float32))})


def _distinct_names(start: int, stop: int, length: int) -> pa.Array:
    """Names of `length` bytes that differ in their first 8: little to store, much to decode."""
    return pa.array([f"{i:08d}".ljust(length, "x") for i in range(start, stop)])


def _write_in_row_groups(path: Path, rows: int, length: int, group_rows: int) -> None:
    """Distinct long names, written a row group at a time so that the test never holds them all."""
    with pq.ParquetWriter(path, _predictions(pa.array([], pa.string())).schema, compression="zstd") as writer:
        for start in range(0, rows, group_rows):
            writer.write_table(_predictions(_distinct_names(start, min(start + group_rows, rows), length)))


@pytest.fixture(scope="module")
def focus_sized(tmp_path_factory, truth, submissions) -> dict:
    """A ground truth of FOCUS's size (the 48 images' annotations repeated under new names), an honest packed
    submission for it, and what the measuring process needs to warm up."""
    folder = tmp_path_factory.mktemp("focus_sized")
    names = truth.table.column("file_name")
    copies = [truth.table.set_column(0, "file_name", pc.binary_join_element_wise(names, pa.scalar(f"-{k}"), ""))
              for k in range(-(-FOCUS_IMAGES // truth.num_images))]
    table = pa.concat_tables(copies).slice(0, FOCUS_IMAGES)
    table = table.sort_by("file_name")
    pq.write_table(table, folder / "truth.parquet")
    pq.write_table(truth.table, folder / "small_truth.parquet")
    fabricate_run(folder / "run", table, "model_a.in1k", accuracy=0.8, num_params=5_000_000, paper_name=None, seed=1)
    honest = packing.pack(folder / "run", "model_a.in1k", folder / "honest")
    longest = pc.max(pc.binary_length(table.column("file_name"))).as_py()
    return {"folder": folder, "honest": honest, "longest": longest,
            "truth": (folder / "truth.parquet", statistics.dataset_fingerprint(table)),
            "warm": {"submission": submissions / "model_a.in1k",
                     "truth": (folder / "small_truth.parquet", truth.fingerprint)}}


def _replaced(focus_sized: dict, name: str, write) -> Path:
    """The honest submission with other predictions, their hash recorded (only the predictions are at fault)."""
    folder = focus_sized["folder"] / name
    folder.mkdir()
    for part in submission_format.SUBMITTED_FILES:
        (folder / part).write_bytes((focus_sized["honest"] / part).read_bytes())
    write(folder / submission_format.PREDICTIONS_FILE)
    restamp(folder)
    return folder


def _verified(focus_sized: dict, submission: Path, with_truth: bool = True) -> dict:
    return _measure(submission=submission, truth=focus_sized["truth"] if with_truth else None,
                    warm=focus_sized["warm"], limits={"decoded_bytes": BUDGET})


@pytest.mark.slow
def test_an_honest_file_of_focus_size_is_accepted_within_the_budget(focus_sized):
    found = _verified(focus_sized, focus_sized["honest"])
    assert found["accepted"], found["problems"]
    assert found["growth"] < BUDGET / 2


@pytest.mark.slow
def test_900k_distinct_long_names_are_refused_by_their_row_count_before_decoding(focus_sized):
    """The issue's file: 900,000 distinct 490-byte names, 440 MB decoded from a file of a few MB."""
    submission = _replaced(focus_sized, "distinct_names",
                           lambda path: _write_in_row_groups(path, 900_000, 490, 100_000))
    assert (submission / submission_format.PREDICTIONS_FILE).stat().st_size < 10 * 2**20
    found = _verified(focus_sized, submission)
    assert found["problems"] == [f"predictions.parquet: 900,000 rows, more than the {FOCUS_IMAGES:,} images of the "
                                 f"ground truth; a submission predicts each image once"]
    assert found["growth"] < 8 * 2**20


@pytest.mark.slow
def test_a_footer_that_understates_the_decoded_size_is_refused_by_the_page_headers(focus_sized):
    """A row of FOCUS's size each, 6 kB names (143 MB decoded), the footer's total_byte_size patched to 1 kB."""
    def write(path):
        pq.write_table(_predictions(_distinct_names(0, FOCUS_IMAGES, 6_000)), path, compression="zstd")
        patch_footer_integer(path, pq.ParquetFile(path).metadata.row_group(0).total_byte_size, 1_000)

    submission = _replaced(focus_sized, "lying_footer", write)
    metadata = pq.ParquetFile(submission / submission_format.PREDICTIONS_FILE).metadata
    assert metadata.row_group(0).total_byte_size == 1_000
    found = _verified(focus_sized, submission)
    (problem,) = found["problems"]
    assert problem.startswith("predictions.parquet: decoding it takes ") and problem.endswith(
        f" pages, by their headers), over the limit of {BUDGET:,} bytes (raise it with --max-decoded-mb)")
    assert f"({FOCUS_IMAGES:,} rows; " in problem
    assert found["growth"] < 8 * 2**20


# Distinct names whose pages, as counted before they are read, take just under BUDGET (the rest is small).
UNDER_BUDGET_LENGTH = int(0.95 * BUDGET / strict._READ_COPIES / FOCUS_IMAGES)


def _just_under_the_budget(path: Path) -> None:
    _write_in_row_groups(path, FOCUS_IMAGES, UNDER_BUDGET_LENGTH, FOCUS_IMAGES)


@pytest.mark.slow
def test_long_names_counted_just_under_the_budget_are_read_within_it_and_refused(focus_sized):
    submission = _replaced(focus_sized, "under_budget", _just_under_the_budget)
    found = _verified(focus_sized, submission)
    assert found["problems"] == [
        f"predictions.parquet: file_name values up to {UNDER_BUDGET_LENGTH:,} bytes, longer than the name of any "
        f"image of the dataset ({focus_sized['longest']:,} bytes at most); were the predictions made on another "
        f"dataset?"]
    assert found["growth"] < BUDGET
    found = _verified(focus_sized, submission, with_truth=False)  # as pack checks its own output
    assert any(problem.startswith("predictions.parquet: decoding it takes ") and
               f"({FOCUS_IMAGES:,} rows; file_name values up to {UNDER_BUDGET_LENGTH:,} bytes), over the limit of "
               f"{BUDGET:,} bytes" in problem for problem in found["problems"]), found["problems"]
    assert found["growth"] < BUDGET


def _read(path: Path, budget: int) -> dict:
    return _measure(read=path, limits={"decoded_bytes": budget})


@pytest.mark.slow
def test_one_long_name_on_every_row_is_refused_before_the_names_are_decoded(tmp_path):
    """100,000 rows of one 3 kB name, dictionary-encoded: a 100 kB file, 300 MB of names once decoded."""
    rows = 100_000
    path = tmp_path / submission_format.PREDICTIONS_FILE
    names = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array(["x" * 3000]))
    pq.write_table(_predictions(names), path, compression="zstd", store_schema=False)  # read back as plain strings
    assert path.stat().st_size < 1_000_000
    found = _read(path, 64 * 2**20)
    (problem,) = found["problems"]
    cost = re.fullmatch(r"SubmissionError: predictions.parquet: decoding it takes ([0-9,]+) bytes or more \(100,000 "
                        r"rows; file_name values up to 3,000 bytes\), over the limit of 67,108,864 bytes \(raise it "
                        r"with --max-decoded-mb\)", problem)
    assert int(cost[1].replace(",", "")) > 2 * rows * 3000  # the names decoded, and a copy
    assert found["growth"] < 32 * 2**20


@pytest.mark.slow
def test_top5_lists_longer_than_five_are_refused_before_decoding(tmp_path):
    """Long lists of one repeated id compress to almost nothing: 100 row groups of 100 rows of 10,000 ids."""
    path = tmp_path / submission_format.PREDICTIONS_FILE
    group = _predictions(pa.array([f"cat/{i}.jpg" for i in range(100)]), length=10_000)
    with pq.ParquetWriter(path, group.schema, compression="zstd") as writer:
        for _ in range(100):
            writer.write_table(group)
    assert path.stat().st_size < 5_000_000
    found = _read(path, 64 * 2**20)
    assert found["problems"] == ["SubmissionError: predictions.parquet: top5_ids holds 100,000,000 values for 10,000 "
                                 "rows, more than 5 a row; each row lists its top 5"]
    assert found["growth"] < 32 * 2**20
