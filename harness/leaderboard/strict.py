"""Strict reading of submitted files: sizes checked before parsing, RFC 8259 JSON, typed Parquet columns.

A submission comes from anyone, so nothing here trusts a file's own account of itself; every failure is a
SubmissionError whose message quotes the offending value clipped (`_shown`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.leaderboard.errors import SubmissionError

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
    rows: int = 1_000_000
    uncompressed_bytes: int = 512 * 2**20  # the Parquet footer's account of its pages' size
    decoded_bytes: int = 512 * 2**20  # what the predictions take once decoded, counted before decoding


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


def loads_strict(data: bytes | str) -> Any:
    """JSON as RFC 8259 has it: no NaN or infinities (also none by overflow like 1e999), no duplicate keys.

    >>> loads_strict('{"a": [1, 2.5, null]}')
    {'a': [1, 2.5, None]}
    >>> for text in ('{"a": NaN}', '{"a": 1e999}', '{"a": 1, "a": 2}'):
    ...     try:
    ...         loads_strict(text)
    ...     except SubmissionError as err:
    ...         print(err)
    NaN is not a number in JSON (NaN and infinities are not allowed)
    1e999 overflows to infinity (NaN and infinities are not allowed)
    the key 'a' appears twice in one object
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                      object_pairs_hook=_unique_keys)


def read_json_strict(path: Path, max_bytes: int) -> Any:
    """A submitted JSON file, its size checked before it is read; every failure is a SubmissionError."""
    size = path.stat().st_size
    if size > max_bytes:
        raise SubmissionError(f"{path.name}: {size:,} bytes is over the limit of {max_bytes:,} bytes; "
                              f"a submission's JSON files are small (raise the limit with --max-json-mb)")
    try:
        return loads_strict(path.read_bytes())
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


def read_submitted_predictions(path: Path, limits: Limits) -> pa.Table:
    """predictions.parquet with the submission's four columns and types; sizes checked before reading.

    The file's size and its footer (rows, encoded size) are checked first; then each row group is read
    with file_name kept dictionary-encoded, and what decoding it would cost is added up before anything
    is decoded in full (`_decoded_cost`): a small file can hold a long string repeated a million times.
    """
    size = path.stat().st_size
    if size > limits.predictions_bytes:
        raise SubmissionError(f"{path.name}: {size:,} bytes is over the limit of {limits.predictions_bytes:,} "
                              f"bytes (raise it with --max-predictions-mb)")
    try:
        parquet = pq.ParquetFile(path, read_dictionary=["file_name"])
    except (pa.ArrowException, OSError) as err:
        raise SubmissionError(f"{path.name} is not a Parquet file ({err}); write it with pyarrow, as pack "
                              f"does") from err
    rows, encoded = parquet.metadata.num_rows, sum(
        parquet.metadata.row_group(i).total_byte_size for i in range(parquet.metadata.num_row_groups))
    if rows > limits.rows or encoded > limits.uncompressed_bytes:
        raise SubmissionError(f"{path.name}: {rows:,} rows and {encoded:,} bytes decoded are over the limits of "
                              f"{limits.rows:,} rows and {limits.uncompressed_bytes:,} bytes")
    _check_columns(path, parquet.schema_arrow)
    try:
        table = _read_within_budget(path, parquet, limits.decoded_bytes)
    except (pa.ArrowException, OSError) as err:
        raise SubmissionError(f"{path.name}: cannot be read ({err})") from err
    return table.cast(_READ_SCHEMA, safe=False).combine_chunks()


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


# Bytes per value once read: the widest integer or float, and a list's or string's offset.
_VALUE_BYTES, _OFFSET_BYTES = 8, 4


def _decoded_cost(file_name: pa.ChunkedArray, leaf_values: dict[str, int], rows: int) -> tuple[int, int]:
    """(bytes, longest file_name) that a row group takes decoded: every row's file_name in full, the
    prediction, and the top-5 lists at the value counts the footer declares.

    `file_name` is dictionary-encoded, so its decoded size is computed from the dictionary's lengths
    taken by the indices, without decoding it.
    """
    names, longest = _OFFSET_BYTES * (rows + 1), 0
    for chunk in file_name.chunks:
        lengths = pc.binary_length(chunk.dictionary)
        names += pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0
        longest = max(longest, pc.max(lengths).as_py() or 0)
    lists = sum(_OFFSET_BYTES * (rows + 1) + _VALUE_BYTES * leaf_values[name] for name in ("top5_ids", "top5_probs"))
    return names + _VALUE_BYTES * rows + lists, longest


def _read_within_budget(path: Path, parquet: pq.ParquetFile, budget: int) -> pa.Table:
    """The file, row group by row group, each one's decoded cost counted before its other columns are read."""
    metadata, names = parquet.metadata, parquet.schema_arrow.names
    total, longest, groups = 0, 0, []
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        # One leaf per column (strings, integers, lists of numbers), in the schema's order.
        declared = {names[j]: group.column(j).num_values for j in range(group.num_columns)}
        file_name = parquet.read_row_group(i, columns=["file_name"]).column("file_name")
        if not pa.types.is_dictionary(file_name.type):
            file_name = file_name.dictionary_encode()
        cost, group_longest = _decoded_cost(file_name, declared, group.num_rows)
        total, longest = total + cost, max(longest, group_longest)
        if total > budget:
            raise SubmissionError(
                f"{path.name}: decoding it takes {total:,} bytes or more ({metadata.num_rows:,} rows; file_name "
                f"values up to {longest:,} bytes), over the limit of {budget:,} bytes (raise it with "
                f"--max-decoded-mb)")
        rest = parquet.read_row_group(i, columns=["prediction", "top5_ids", "top5_probs"])
        for name in ("top5_ids", "top5_probs"):
            found = len(pc.list_flatten(rest.column(name)))
            if found > declared[name]:
                raise SubmissionError(f"{path.name}: row group {i} holds {found:,} {name} values, more than the "
                                      f"{declared[name]:,} its footer declares; write the file with pyarrow")
        groups.append(rest.add_column(0, "file_name", file_name))
    if not groups:
        return parquet.schema_arrow.empty_table()
    return pa.concat_tables(groups, promote_options="permissive")
