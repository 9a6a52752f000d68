"""Strict reading of submitted files: sizes checked before parsing, RFC 8259 JSON, typed Parquet columns.

A submission comes from anyone, so nothing here trusts a file's own account of itself; every failure is a
SubmissionError whose message quotes the offending value clipped (`_shown`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.leaderboard.errors import SubmissionError
from harness.leaderboard.parquet_pages import ChunkPages, PageError, read_pages

# The submitted predictions: the harness's columns that do not come from the dataset.
SUBMISSION_SCHEMA = pa.schema([
    ("file_name", pa.string()),
    ("prediction", pa.int64()),
    ("top5_ids", pa.list_(pa.int32())),
    ("top5_probs", pa.list_(pa.float32())),
])
TOP_K = 5


@dataclasses.dataclass(frozen=True)
class Limits:
    """Sizes checked before a file is parsed (a submission comes from anyone)."""

    predictions_bytes: int = 50 * 2**20
    json_bytes: int = 2**20
    rows: int = 1_000_000  # predictions checked without a ground truth; with one, at most its images
    footer_bytes: int = 2**20  # the Parquet footer, which pyarrow parses whole before any page
    pages: int = 100_000  # page headers walked
    decoded_bytes: int = 512 * 2**20  # what reading and checking the predictions hold at once, counted first


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


# How deep the JSON the leaderboard reads may nest: submission.json and metrics.json nest 4 levels, the ledger 3.
# Deeper documents are refused before they are parsed, as the checks that walk them recurse.
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def json_depth(data: bytes) -> int:
    """How deep a JSON text's arrays and objects nest, counted on its brackets outside strings, parsing nothing.

    >>> json_depth(b'{"a": [1, {"b": "[[[{"}], "c": []}')
    3
    """
    brackets = np.frombuffer(_JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS), dtype=np.uint8)
    return int(np.cumsum(np.where(np.isin(brackets, tuple(b"[{")), 1, -1)).max(initial=0))


def loads_strict(data: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON as RFC 8259 has it: no NaN or infinities (also none by overflow like 1e999), no duplicate keys;
    nested at most `max_depth` deep.

    >>> loads_strict('{"a": [1, 2.5, null]}')
    {'a': [1, 2.5, None]}
    >>> for text in ('{"a": NaN}', '{"a": 1e999}', '{"a": 1, "a": 2}', '[' * 65 + ']' * 65):
    ...     try:
    ...         loads_strict(text)
    ...     except SubmissionError as err:
    ...         print(err)
    NaN is not a number in JSON (NaN and infinities are not allowed)
    1e999 overflows to infinity (NaN and infinities are not allowed)
    the key 'a' appears twice in one object
    arrays and objects nested 65 deep, deeper than the 64 levels allowed
    """
    depth = json_depth(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    if depth > max_depth:
        raise SubmissionError(f"arrays and objects nested {depth:,} deep, deeper than the {max_depth} levels allowed")
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                      object_pairs_hook=_unique_keys)


def read_json_strict(path: Path, max_bytes: int) -> Any:
    """A submitted JSON file, a regular file only, its size checked before it is read; every failure is a
    SubmissionError."""
    data = read_regular_file(path, max_bytes, "--max-json-mb")
    try:
        return loads_strict(data)
    except UnicodeDecodeError as err:
        raise SubmissionError(f"{path.name} is not valid JSON: it is not UTF-8 text ({err.reason} at byte "
                              f"{err.start})") from err
    except json.JSONDecodeError as err:
        raise SubmissionError(f"{path.name} is not valid JSON: {err}") from err
    except SubmissionError as err:
        raise SubmissionError(f"{path.name} is not valid JSON: {err}") from err
    except (ValueError, RecursionError) as err:  # e.g. an integer of more than 4300 digits
        raise SubmissionError(f"{path.name} is not valid JSON: {err}") from err


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


def _is_string(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def _is_list_of(type_: pa.DataType, predicate) -> bool:
    return (pa.types.is_list(type_) or pa.types.is_large_list(type_)) and predicate(type_.value_type)


# Any integer or float width is read; values are range-checked after a widening cast.
_COLUMN_TYPES = {
    "file_name": lambda t: _is_string(t) or (pa.types.is_dictionary(t) and _is_string(t.value_type)),
    "prediction": pa.types.is_integer,
    "top5_ids": lambda t: _is_list_of(t, pa.types.is_integer),
    "top5_probs": lambda t: _is_list_of(t, pa.types.is_floating),
}
_READ_SCHEMA = pa.schema([("file_name", pa.string()), ("prediction", pa.int64()),
                          ("top5_ids", pa.list_(pa.int64())), ("top5_probs", pa.list_(pa.float64()))])


def read_submitted_predictions(path: Path, limits: Limits, *, images: int | None = None,
                               longest_name: int | None = None) -> pa.Table:
    """predictions.parquet with the submission's four columns and types, read within `limits`.

    Nothing the file says of itself sizes what is allocated. Its size and its footer's length are checked
    first; then every page header is walked (parquet_pages), the rows counted from the pages must not exceed
    `images` (the ground truth's count; `limits.rows` without one) and each top-5 list holds at most five
    values. What decoding takes is counted from the headers before anything is decoded, and again, exactly,
    once file_name is read dictionary-encoded (`_decoded_names`): a small file can hold a long string
    repeated on every row, which is refused there when it is longer than `longest_name`, the longest name
    of the dataset's images.
    """
    data = read_regular_file(path, limits.predictions_bytes, "--max-predictions-mb")
    parquet = _parquet_file(path, data, limits.footer_bytes)
    _check_columns(path, parquet.schema_arrow)
    groups = _pages(path, data, parquet, limits.pages)
    rows = _rows(path, parquet.metadata, groups, images, limits.rows)
    try:
        return _read_within_budget(path, parquet, groups, rows, limits.decoded_bytes, longest_name, len(data))
    except (pa.ArrowException, OSError) as err:
        raise SubmissionError(f"{path.name}: cannot be read ({err})") from err


def kind_of(path: Path) -> str:
    """What is at `path`, in a message's words: "missing", "a folder", "a FIFO", "a character device", ...

    >>> kind_of(Path("/dev/null")), kind_of(Path("/nowhere"))
    ('a character device', 'missing')
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    kinds = ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"),
             (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next(name for test, name in kinds if test(mode))


def read_regular_file(path: Path, max_bytes: int, option: str) -> bytes:
    """A submitted file's bytes, read once: a regular file only (a FIFO would block the reader, a device never
    end), its size checked against `max_bytes` (raised with `option`) before it is read."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as err:
        raise SubmissionError(f"{path.name}: cannot be read ({err.strerror})") from None
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise SubmissionError(f"{path.name}: {kind_of(path)}, not a plain file; a submission holds plain files")
        if status.st_size > max_bytes:
            raise SubmissionError(f"{path.name}: {status.st_size:,} bytes is over the limit of {max_bytes:,} bytes "
                                  f"(raise it with {option})")
        try:
            data = file.read(max_bytes + 1)
        except OSError as err:
            raise SubmissionError(f"{path.name}: cannot be read ({err.strerror})") from None
    if len(data) > max_bytes:  # grown since
        raise SubmissionError(f"{path.name}: over the limit of {max_bytes:,} bytes (raise it with {option})")
    return data


_MAGIC = b"PAR1"


def _parquet_file(path: Path, data: bytes, max_footer: int) -> pq.ParquetFile:
    """The file's footer parsed, its length checked first: pyarrow parses the whole footer into objects."""
    footer = int.from_bytes(data[-8:-4], "little") if data[-4:] == _MAGIC and len(data) >= 8 else None
    if footer is not None and footer > max_footer:
        raise SubmissionError(f"{path.name}: its footer takes {footer:,} bytes, over the limit of {max_footer:,} "
                              f"bytes; a submission's footer takes a few kB (write it with pyarrow, as pack does)")
    try:
        return pq.ParquetFile(pa.BufferReader(data), read_dictionary=["file_name"])
    except (pa.ArrowException, OSError) as err:
        raise SubmissionError(f"{path.name} is not a Parquet file ({err}); write it with pyarrow, as pack "
                              f"does") from err


def _pages(path: Path, data: bytes, parquet: pq.ParquetFile, max_pages: int) -> list[dict[str, ChunkPages]]:
    """Per row group, each column's pages summed from their headers (one leaf per column, in schema order)."""
    try:
        groups = read_pages(memoryview(data), parquet.metadata, max_pages)
    except PageError as err:
        raise SubmissionError(f"{path.name}: {err}; write it with pyarrow, as pack does") from None
    return [dict(zip(parquet.schema_arrow.names, chunks)) for chunks in groups]


_FLAT_COLUMNS, _LIST_COLUMNS = ("file_name", "prediction"), ("top5_ids", "top5_probs")


def _rows(path: Path, metadata: pq.FileMetaData, groups: list[dict[str, ChunkPages]], images: int | None,
          max_rows: int) -> int:
    """The rows the pages hold, which the footer must agree with, within the limits; top-5 lists of five at most."""
    for i, group in enumerate(groups):
        declared = metadata.row_group(i).num_rows
        for name in _FLAT_COLUMNS:
            if group[name].rows != declared:
                raise SubmissionError(f"{path.name}: row group {i}: the pages of {name} hold {group[name].rows:,} "
                                      f"rows, its footer says {declared:,}; write it with pyarrow, as pack does")
    rows = sum(group["file_name"].rows for group in groups)
    if images is not None and rows > images:
        raise SubmissionError(f"{path.name}: {rows:,} rows, more than the {images:,} images of the ground truth; a "
                              f"submission predicts each image once")
    if rows > max_rows:
        raise SubmissionError(f"{path.name}: {rows:,} rows, over the limit of {max_rows:,} rows")
    for name in _LIST_COLUMNS:
        values = sum(group[name].values for group in groups)
        if values > TOP_K * rows:
            raise SubmissionError(f"{path.name}: {name} holds {values:,} values for {rows:,} rows, more than {TOP_K} "
                                  f"a row; each row lists its top {TOP_K}")
    return rows


def _check_columns(path: Path, schema: pa.Schema) -> None:
    """Exactly the submission's four columns, each of a type that reads as the submission's."""
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


# Bytes per value once read: the widest integer or float, and a list's or string's offset (or an index).
_VALUE_BYTES, _OFFSET_BYTES = 8, 4
# How many times reading holds a page's decompressed bytes: the page, the dictionary pyarrow builds from its
# values, the array it returns, and what the allocator keeps of them. About 3 measured with pyarrow's default
# allocator (mimalloc; tests/leaderboard/test_leaderboard_memory.py), 2 with jemalloc or the system's.
_READ_COPIES = 4
# Copies of the decoded file names that reading and checking hold at once: the column, and the names not in
# the dataset while the first of them are picked for the message (verification.scored_predictions).
_NAME_COPIES = 2


def _read_cost(groups: list[dict[str, ChunkPages]], rows: int) -> int:
    """Bytes that reading the columns takes, from the page headers: every page's decompressed bytes _READ_COPIES
    times, and per value a file_name's dictionary index or a number read, then widened; the lists' offsets."""
    cost = len(_LIST_COLUMNS) * _OFFSET_BYTES * (rows + 1)
    for group in groups:
        for name, pages in group.items():
            per_value = _OFFSET_BYTES if name == "file_name" else 2 * _VALUE_BYTES
            cost += (_READ_COPIES * (pages.dictionary_bytes + pages.data_bytes)
                     + _VALUE_BYTES * pages.dictionary_values + per_value * pages.values)
    return cost


def _decoded_names(file_names: list[pa.DictionaryArray]) -> tuple[int, int]:
    """(bytes, longest name) of file_name decoded, every row's name in full: from the dictionary's lengths
    taken by the indices, decoding nothing."""
    decoded, longest = 0, 0
    for chunk in file_names:
        lengths = pc.binary_length(chunk.dictionary)
        decoded += (pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0) + _OFFSET_BYTES * (len(chunk) + 1)
        longest = max(longest, pc.max(lengths).as_py() or 0)
    return decoded, longest


def _over_budget(path: Path, cost: int, rows: int, budget: int, detail: str) -> SubmissionError:
    return SubmissionError(f"{path.name}: decoding it takes {cost:,} bytes or more ({rows:,} rows; {detail}), over "
                           f"the limit of {budget:,} bytes (raise it with --max-decoded-mb)")


def _read_within_budget(path: Path, parquet: pq.ParquetFile, groups: list[dict[str, ChunkPages]], rows: int,
                        budget: int, longest_name: int | None, held: int) -> pa.Table:
    """The file, its cost counted from the page headers before anything is decoded, then exactly once file_name
    is read dictionary-encoded; the names are decoded last, a row group at a time, and never copied again.
    `held` bytes (the file's) count from the start.

    With `longest_name` (the dataset's), a longer name is refused before the names are decoded: it is no
    image of the dataset, and it is what would make decoding them costly.
    """
    read = _read_cost(groups, rows) + held
    if read > budget:
        pages = sum(pages.pages for group in groups for pages in group.values())
        raise _over_budget(path, read, rows, budget, f"{pages:,} pages, by their headers")
    file_names = _dictionary_encoded_names(parquet)
    decoded, longest = _decoded_names(file_names)
    if longest_name is not None and longest > longest_name:
        raise SubmissionError(f"{path.name}: file_name values up to {longest:,} bytes, longer than the name of any "
                              f"image of the dataset ({longest_name:,} bytes at most); were the predictions made on "
                              f"another dataset?")
    # What reading took (the allocator keeps it), then the decoded names and their copies.
    cost = read + _NAME_COPIES * decoded
    if cost > budget:
        raise _over_budget(path, cost, rows, budget, f"file_name values up to {longest:,} bytes")
    if not file_names:
        return _READ_SCHEMA.empty_table()
    columns = _numbers(parquet)
    names = []
    while file_names:  # each row group's dictionary is let go as its names are decoded
        names.append(file_names.pop(0).cast(pa.string()))
    columns["file_name"] = pa.chunked_array(names, type=pa.string())
    return pa.table([columns[name] for name in _READ_SCHEMA.names], schema=_READ_SCHEMA)


def _dictionary_encoded_names(parquet: pq.ParquetFile) -> list[pa.DictionaryArray]:
    """file_name of each row group, dictionary-encoded, its names checked to be UTF-8 and its indices to lie
    within its dictionary (a corrupted page can break either, which a reader of the names would trip over).

    Every column is read on this thread (use_threads=False): the cost counts one page at a time, and with torch
    loaded pyarrow's pool threads made the process abort at exit now and then.
    """
    names = []
    for i in range(parquet.metadata.num_row_groups):
        chunk = parquet.read_row_group(i, columns=["file_name"], use_threads=False).column(0).combine_chunks()
        chunk = chunk if pa.types.is_dictionary(chunk.type) else chunk.dictionary_encode()
        chunk.validate(full=True)
        names.append(chunk)
    return names


def _numbers(parquet: pq.ParquetFile) -> dict[str, pa.ChunkedArray]:
    """The columns other than file_name, widened to the read schema's types, each in one chunk."""
    names = [name for name in _READ_SCHEMA.names if name != "file_name"]
    chunks = {name: [] for name in names}
    for i in range(parquet.metadata.num_row_groups):
        group = parquet.read_row_group(i, columns=names, use_threads=False)
        for name in names:
            chunks[name] += group.column(name).cast(_READ_SCHEMA.field(name).type, safe=False).chunks
    return {name: pa.chunked_array([pa.concat_arrays(chunks[name])]) for name in names}
