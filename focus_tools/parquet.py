"""The converted dataset's Parquet shards: examples encoded as typed Arrow batches and streamed to
`data/test-XXXXX-of-YYYYY.parquet` a row group at a time, and the annotation columns read back."""

from __future__ import annotations

import os
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

from focus_dataset import ROWS_PER_GROUP, focus_features


def converted_shards(path: Path) -> list[Path]:
    """The Parquet shards of a converted folder, in order (none when it is not one)."""
    return sorted((path / "data").glob("*.parquet")) if (path / "data").is_dir() else []


def read_annotation_columns(converted: str | os.PathLike) -> pa.Table:
    """The annotation columns of a converted folder's shards, read without touching the images."""
    columns = [name for name in focus_features() if name != "image"]
    return pa.concat_tables(pq.read_table(shard, columns=columns) for shard in converted_shards(Path(converted)))


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


def _encoded_batches(examples: Iterable[dict[str, Any]], features: datasets.Features,
                     rows_per_group: int) -> Iterator[pa.RecordBatch]:
    batch: list[dict[str, Any]] = []
    for example in examples:
        batch.append(example)
        if len(batch) == rows_per_group:
            yield encode_batch(batch, features)
            batch = []
    if batch:
        yield encode_batch(batch, features)


def _write_in_background(batches: Iterable[pa.RecordBatch], write: Callable[[pa.RecordBatch], None],
                         depth: int = 2) -> None:
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
    """Stream examples into `folder/test-XXXXX-of-YYYYY.parquet`, a row group at a time.

    The schema carries the `datasets` features (ClassLabel names, Image), so plain load_dataset
    reads the shards typed. Image bytes are stored as they are, uncompressed and without dictionary
    or statistics: compressing JPEG gains nothing and would cost more than reading the files.
    """
    features = focus_features()
    rows_per_group = rows_per_group or ROWS_PER_GROUP
    limit = convert_file_size_to_int(max_shard_size or datasets.config.MAX_SHARD_SIZE)
    folder.mkdir(parents=True)
    compression = {name: "none" if name == "image" else "zstd" for name in features}
    # Dictionaries and min/max statistics over image bytes would hash and scan every file again.
    small_columns = [name for name in features if name != "image"]
    shards: list[Path] = []
    writer: pq.ParquetWriter | None = None
    written = 0

    def write(batch: pa.RecordBatch) -> None:
        nonlocal writer, written
        if writer is None or written >= limit:
            if writer is not None:
                writer.close()
            shards.append(folder / f"shard-{len(shards):05d}.parquet")
            writer = pq.ParquetWriter(shards[-1], features.arrow_schema, compression=compression,
                                      use_dictionary=small_columns, write_statistics=small_columns)
            written = 0
        writer.write_batch(batch, row_group_size=rows_per_group)
        written += batch.nbytes
        # Arrow's allocator keeps freed buffers for reuse per thread; with the writer in its own
        # thread that cache would grow with the release. Hand it back after each row group.
        pa.default_memory_pool().release_unused()

    _write_in_background(_encoded_batches(examples, features, rows_per_group), write)
    if writer is None:
        write(encode_batch([], features))
    writer.close()
    named = [folder / f"test-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    for shard, name in zip(shards, named):
        shard.rename(name)
    return named
