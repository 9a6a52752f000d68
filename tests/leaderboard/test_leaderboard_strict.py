"""harness.strict: submitted files read strictly, their sizes checked before they are parsed."""

import doctest
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.leaderboard import parquet_pages, strict, submission as submission_format, verification

from .fabricate import edit_predictions, patch_footer_integer, patch_integer, rejected, restamp


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
    ("metrics.json", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "metrics.json is not valid JSON: arrays and objects nested 100,001 deep, deeper than the 64 levels allowed"),
    ("submission.json", '{"versions": {"torch": "[[[["}, "model": ' + "[" * 64 + "]" * 64 + "}",
     "submission.json is not valid JSON: arrays and objects nested 65 deep, deeper than the 64 levels allowed"),
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


def test_the_row_limit_applies_without_a_ground_truth(submission):
    result = verification.verify(submission, None, limits=strict.Limits(rows=10))
    assert "predictions.parquet: 48 rows, over the limit of 10 rows" in result.problems


def test_labels_in_the_predictions_file_are_refused(submission, truth):
    edit_predictions(submission, lambda t: t.append_column("label", pa.array(np.zeros(t.num_rows, dtype=np.int64))))
    assert rejected(submission, truth) == [
        "predictions.parquet: unexpected column(s) ['label']; a submission holds only ['file_name', 'prediction', "
        "'top5_ids', 'top5_probs'] (labels and attributes come from the dataset)"]


def test_a_predictions_file_that_is_not_parquet_is_rejected(submission, truth):
    (submission / submission_format.PREDICTIONS_FILE).write_text("file_name,prediction\n")
    restamp(submission)
    assert any(p.startswith("predictions.parquet is not a Parquet file") for p in rejected(submission, truth))


def _predictions(submission: Path) -> Path:
    return submission / submission_format.PREDICTIONS_FILE


def test_the_pages_are_counted_from_their_headers(submission):
    data = _predictions(submission).read_bytes()
    metadata = pq.ParquetFile(_predictions(submission)).metadata
    (group,) = parquet_pages.read_pages(memoryview(data), metadata, max_pages=100)
    names, prediction, ids, probs = group
    assert (names.rows, prediction.rows, ids.values, probs.values) == (48, 48, 240, 240)
    assert names.dictionary_values == 48 and names.dictionary_bytes >= sum(
        4 + len(name.encode()) for name in pq.read_table(_predictions(submission)).column("file_name").to_pylist())


@pytest.mark.parametrize("options", [
    {"compression": "none"}, {"data_page_version": "2.0"}, {"row_group_size": 7, "data_page_size": 64},
    {"use_dictionary": False, "compression": "snappy"}, {"write_statistics": False, "write_page_index": True},
])
def test_a_file_written_with_other_parquet_options_is_read(submission, truth, options):
    path = _predictions(submission)
    pq.write_table(pq.read_table(path), path, **options)
    restamp(submission)
    assert verification.verify(submission, truth).accepted


def test_a_footer_that_lies_about_the_decoded_size_changes_nothing(submission, truth):
    """The footer's total_byte_size sized the old reader's budget; the pages' own headers size it now."""
    path = _predictions(submission)
    patch_footer_integer(path, pq.ParquetFile(path).metadata.row_group(0).total_byte_size, 1)
    restamp(submission)
    assert verification.verify(submission, truth).accepted


def test_a_column_chunk_that_ends_inside_its_last_page_is_refused(submission, truth):
    path = _predictions(submission)
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(1)  # prediction
    patch_footer_integer(path, chunk.total_compressed_size, chunk.total_compressed_size - 1)
    restamp(submission)
    problems = rejected(submission, truth)
    assert len(problems) == 1 and re.fullmatch(
        r"predictions.parquet: row group 0, column prediction: a page runs to byte [0-9,]+, past the end of its "
        r"column chunk \(byte [0-9,]+\) that the footer gives; write it with pyarrow, as pack does", problems[0])


def test_pages_that_hold_other_counts_than_the_footer_are_refused(submission):
    """A footer whose value count is not its pages' (a stand-in for the file's metadata, one count changed)."""
    path = _predictions(submission)
    metadata = pq.ParquetFile(path).metadata

    class Lying:
        def __init__(self, real, **changed):
            self.real, self.changed = real, changed

        def __getattr__(self, name):
            return self.changed.get(name, getattr(self.real, name))

    group = metadata.row_group(0)
    columns = [Lying(group.column(j), num_values=group.column(j).num_values + (j == 2)) for j in range(4)]
    lying = Lying(metadata, row_group=lambda i: Lying(group, column=lambda j: columns[j]))
    with pytest.raises(parquet_pages.PageError, match=r"^row group 0, column top5_ids.list.element: its pages hold "
                                                      r"240 values, its footer says 241$"):
        parquet_pages.read_pages(memoryview(path.read_bytes()), lying, max_pages=100)


def test_a_page_header_that_runs_past_its_chunk_is_refused(submission, truth):
    path = _predictions(submission)
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(1)
    data = memoryview(path.read_bytes())
    start = min(chunk.dictionary_page_offset or chunk.data_page_offset, chunk.data_page_offset)
    page = parquet_pages.read_header(data, start, start + chunk.total_compressed_size)
    patch_integer(path, start, start + page.header_bytes, page.compressed_bytes, page.compressed_bytes + 7)
    restamp(submission)
    (problem,) = rejected(submission, truth)
    assert problem.startswith("predictions.parquet: row group 0, column prediction: ")
    assert problem.endswith("; write it with pyarrow, as pack does")


def test_page_and_footer_caps(submission, truth):
    problems = rejected(submission, truth, limits=strict.Limits(pages=3))
    assert "predictions.parquet: more than 3 pages; a submission's file holds a few per column; write it with " \
           "pyarrow, as pack does" in problems
    footer = pq.ParquetFile(_predictions(submission)).metadata.serialized_size
    problems = rejected(submission, truth, limits=strict.Limits(footer_bytes=100))
    assert f"predictions.parquet: its footer takes {footer:,} bytes, over the limit of 100 bytes; a submission's " \
           f"footer takes a few kB (write it with pyarrow, as pack does)" in problems


def test_a_header_cut_short_or_malformed_is_a_page_error():
    """Thrift compact bytes: a PageHeader of type 0 whose data_page_header holds 3 values, then variants."""
    whole = bytes([0x15, 0x00, 0x15, 0x08, 0x15, 0x06, 0x2C, 0x15, 0x06, 0x00, 0x00])
    page = parquet_pages.read_header(memoryview(whole), 0, len(whole))
    assert (page.kind, page.uncompressed_bytes, page.compressed_bytes, page.num_values, page.header_bytes) == (
        parquet_pages.DATA_PAGE, 4, 3, 3, len(whole))
    for data, message in ((whole[:5], "runs past the end of its column chunk"),
                          (bytes([0x15, 0x0A, 0x15, 0x08, 0x15, 0x06, 0x00]),
                           "a page of type 5, which Parquet does not define"),
                          (bytes([0x15, 0x00, 0x15, 0x03, 0x15, 0x06, 0x00]), "a negative size"),
                          (bytes([0x15, 0x00, 0x00]), "without its type and sizes"),
                          (bytes([0x1D, 0x00]), "an unknown Thrift type 13"),
                          (bytes([0x1C] * 20), "structs nested more than 8 deep"),
                          (bytes([0x16] + [0xFF] * 11), "more than 10 bytes")):
        with pytest.raises(parquet_pages.PageError, match=message):
            parquet_pages.read_header(memoryview(data), 0, len(data))


@pytest.mark.parametrize("module", [strict, parquet_pages])
def test_doctests_pass(module):
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
