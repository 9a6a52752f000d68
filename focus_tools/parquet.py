"""The converted dataset's Parquet shards: examples encoded as typed Arrow batches and streamed to
`data/test-XXXXX-of-YYYYY.parquet` a row group at a time, and the annotation columns read back."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from queue import Queue
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets.utils.py_utils import convert_file_size_to_int

from focus_dataset import ROWS_PER_GROUP, FocusDataError, focus_features, quote
from focus_tools.release import problem_text

# The names of a converted folder's shards, as datasets' Hub convention has them.
SHARD_PATTERN = re.compile(r"test-\d{5}-of-\d{5}\.parquet")


def converted_shards(path: Path) -> list[Path]:
    """The Parquet shards of a converted folder, in order (none when it is not one)."""
    return sorted((path / "data").glob("*.parquet")) if (path / "data").is_dir() else []


def open_shard(shard: Path) -> pq.ParquetFile:
    """A converted folder's shard, opened (its footer read); a damaged one is a FocusDataError naming it."""
    try:
        return pq.ParquetFile(shard)
    except (pa.ArrowException, OSError) as err:
        raise FocusDataError(f"{shard}: not a readable Parquet file ({problem_text(err)}); convert the release "
                             "again") from err


def read_annotation_columns(converted: str | os.PathLike) -> pa.Table:
    """The annotation columns of a converted folder's shards, read without touching the images."""
    columns = [name for name in focus_features() if name != "image"]
    tables = []
    for shard in converted_shards(Path(converted)):
        try:
            tables.append(open_shard(shard).read(columns=columns))
        except (pa.ArrowException, OSError) as err:
            raise FocusDataError(f"{shard}: cannot be read ({problem_text(err)}); convert the release again") from err
    return pa.concat_tables(tables)


def image_batches(shards: list[Path], rows: int = 256) -> Iterator[dict[str, bytes | None]]:
    """{file_name: image bytes} of the shards' rows, a few hundred at a time, so that memory stays flat."""
    for shard in shards:
        try:
            for batch in open_shard(shard).iter_batches(batch_size=rows, columns=["file_name", "image"]):
                images = batch.column("image")
                data = pc.struct_field(images, "bytes").to_pylist()
                yield dict(zip(batch.column("file_name").to_pylist(), data))
        except (pa.ArrowException, OSError) as err:
            raise FocusDataError(f"{shard}: cannot be read ({problem_text(err)}); convert the release again") from err


def encode_batch(examples: list[dict[str, Any]], features: datasets.Features) -> pa.RecordBatch:
    """Examples with label names as one typed Arrow batch (names to ids with Arrow compute, not per row)."""
    arrays = []
    for name, feature in features.items():
        values = [example[name] for example in examples]
        if isinstance(feature, datasets.ClassLabel):
            array = pc.index_in(pa.array(values, pa.string()), value_set=pa.array(feature.names))
        elif isinstance(feature, datasets.List):
            flat = pa.array([v for row in values for v in row], pa.string())
            offsets = pa.array(np.concatenate([[0], np.cumsum([len(row) for row in values])]), pa.int32())
            array = pa.ListArray.from_arrays(offsets, pc.index_in(flat, value_set=pa.array(feature.feature.names)))
        else:
            array = pa.array(values)
        arrays.append(array)
    schema = features.arrow_schema
    return pa.RecordBatch.from_arrays([a.cast(f.type) for a, f in zip(arrays, schema)], schema=schema)


def shard_size_limit(max_shard_size: str | int | None) -> int:
    """Bytes from a size such as "500MB" (datasets' default shard size when None)."""
    try:
        limit = convert_file_size_to_int(max_shard_size or datasets.config.MAX_SHARD_SIZE)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise FocusDataError(f"max_shard_size {quote(max_shard_size)} is not a size; expected e.g. 500MB")
    return limit


def _row_groups(examples: Iterable[dict[str, Any]], features: datasets.Features, rows_per_group: int,
                max_shard_bytes: int) -> Iterator[tuple[bool, pa.RecordBatch]]:
    """Encoded row groups of at most rows_per_group examples, each with whether it starts a new shard.

    The shard limit is kept per example, not per row group: a shard ends before the example that
    would take it past max_shard_bytes (it holds one example at least), so large images cannot
    make shards a row group too large.
    """
    batch: list[dict[str, Any]] = []
    starts_shard, shard_bytes = True, 0
    for example in examples:
        size = _example_size(example)
        if shard_bytes and shard_bytes + size > max_shard_bytes:
            if batch:
                yield starts_shard, encode_batch(batch, features)
                batch = []
            starts_shard, shard_bytes = True, 0
        batch.append(example)
        shard_bytes += size
        if len(batch) == rows_per_group:
            yield starts_shard, encode_batch(batch, features)
            batch, starts_shard = [], False
    if batch or starts_shard:  # an empty release still gets its one (empty) shard
        yield starts_shard, encode_batch(batch, features)


def _example_size(example: dict[str, Any]) -> int:
    """About the bytes an example takes in a shard: its image, plus a little for the annotations."""
    image = example["image"]
    return (0 if image is None else len(image["bytes"])) + 2 * len(example["file_name"]) + 64


def _write_in_background(batches: Iterable[Any], write: Callable[[Any], None], depth: int = 2) -> None:
    """Write each batch in a background thread while this thread makes the next one.

    Parquet writes without the GIL, so reading and encoding the next row group overlaps with
    writing this one. The batches (and the file bytes in them) are made in the calling thread, and
    at most `depth` wait: memory stays flat. An error on either side is raised here.
    """
    queue: Queue = Queue(maxsize=depth)
    failures: list[BaseException] = []

    def consume() -> None:
        try:
            while (batch := queue.get()) is not None:
                write(batch)
        except BaseException as err:  # noqa: BLE001 - raised in the calling thread
            failures.append(err)
            while queue.get() is not None:  # keep taking, so that the producer never blocks
                pass

    writer = threading.Thread(target=consume, daemon=True)
    writer.start()
    try:
        for batch in batches:
            if failures:
                break
            queue.put(batch)
    finally:
        queue.put(None)
        writer.join()
    if failures:
        raise failures[0]


def write_parquet_shards(
    examples: Iterable[dict[str, Any]],
    folder: Path,
    *,
    max_shard_size: str | int | None = None,
    rows_per_group: int | None = None,
) -> list[Path]:
    """Stream examples into `folder/test-XXXXX-of-YYYYY.parquet`, a row group at a time, each shard
    at most max_shard_size (e.g. "500MB"; datasets' default when None) plus Parquet's own footer.

    The schema carries the `datasets` features (ClassLabel names, Image), so plain load_dataset
    reads the shards typed. Image bytes are stored as they are, uncompressed and without dictionary
    or statistics: compressing JPEG gains nothing and would cost more than reading the files.
    """
    features = focus_features()
    rows_per_group = rows_per_group or ROWS_PER_GROUP
    limit = shard_size_limit(max_shard_size)
    folder.mkdir(parents=True)
    compression = {name: "none" if name == "image" else "zstd" for name in features}
    # Dictionaries and min/max statistics over image bytes would hash and scan every file again.
    small_columns = [name for name in features if name != "image"]
    shards: list[Path] = []
    writer: pq.ParquetWriter | None = None

    def write(row_group: tuple[bool, pa.RecordBatch]) -> None:
        nonlocal writer
        starts_shard, batch = row_group
        if starts_shard:
            if writer is not None:
                writer.close()
            shards.append(folder / f"shard-{len(shards):05d}.parquet")
            writer = pq.ParquetWriter(shards[-1], features.arrow_schema, compression=compression,
                                      use_dictionary=small_columns, write_statistics=small_columns)
        writer.write_batch(batch, row_group_size=rows_per_group)
        # Arrow's allocator keeps freed buffers for reuse per thread; with the writer in its own
        # thread that cache would grow with the release. Hand it back after each row group.
        pa.default_memory_pool().release_unused()

    _write_in_background(_row_groups(examples, features, rows_per_group, limit), write)
    writer.close()
    named = [folder / f"test-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    for shard, name in zip(shards, named):
        shard.rename(name)
    return named
