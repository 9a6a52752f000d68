"""The converted dataset's Parquet shards: a release's examples as typed Arrow row groups, streamed to
`data/test-XXXXX-of-YYYYY.parquet`, and the annotation columns read back."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from queue import Empty, Queue, SimpleQueue
from typing import Any, NamedTuple

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets.utils.py_utils import convert_file_size_to_int

from focus_common.messages import quote
from focus_tools.schema import (
    CLASS_NAMES,
    LOCATION_NAMES,
    ROWS_PER_GROUP,
    TIME_NAMES,
    WEATHER_NAMES,
    Annotation,
    FocusDataError,
    focus_features,
    partition_ids,
    uncommon_masks,
)
from focus_tools.release import Release, problem_text, read_image

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


def first_damaged_shard(shards: list[Path]) -> tuple[Path, str] | None:
    """The first shard whose data cannot be read (a page damaged inside, its footer intact), with why; read a row
    group at a time, so that memory stays at one row group's."""
    for shard in shards:
        try:
            parquet = pq.ParquetFile(shard)
            for group in range(parquet.num_row_groups):
                parquet.read_row_group(group)
        except (pa.ArrowException, OSError) as err:
            return shard, problem_text(err)
    return None


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


def annotation_columns(annotations: list[Annotation], uncommon_table: dict) -> pa.RecordBatch:
    """Every column but the image, of every annotated image, as one typed batch.

    The values are annotate's, computed on whole columns: the uncommon flags from uncommon_masks,
    the partitions by partition_ids (a test pins them to annotate's for every class and partition).
    """
    n = len(annotations)
    masks = uncommon_masks(uncommon_table)
    label = _ids([a.category for a in annotations], CLASS_NAMES)
    time = _ids([a.time for a in annotations], TIME_NAMES)
    weather = _ids([a.weather for a in annotations], WEATHER_NAMES)
    locations_per_row = np.array([len(a.locations) for a in annotations], dtype=np.int64)
    location = _ids([name for a in annotations for name in a.locations], LOCATION_NAMES)
    location_row = np.repeat(np.arange(n), locations_per_row)
    is_uncommon = masks["locations"][label[location_row], location]
    uncommon_locations_per_row = np.bincount(location_row[is_uncommon], minlength=n)
    uncommon_time, uncommon_weather = masks["time"][label, time], masks["weather"][label, weather]
    uncommon_location = uncommon_locations_per_row > 0
    file_names = [a.file_name for a in annotations]
    values = {
        "file_name": file_names,
        "query": [name.split("/", 1)[0] for name in file_names],
        "label": label,
        "time": time,
        "weather": weather,
        "locations": _lists(locations_per_row, location),
        "humans": np.array([a.humans for a in annotations], dtype=bool),
        "uncommon_time": uncommon_time,
        "uncommon_weather": uncommon_weather,
        "uncommon_location": uncommon_location,
        "uncommon_locations": _lists(uncommon_locations_per_row, location[is_uncommon]),
        "num_uncommon": uncommon_time.astype(np.int8) + uncommon_weather + uncommon_location,
        "partition": partition_ids(uncommon_time, uncommon_weather, uncommon_location),
    }
    features = focus_features()
    del features["image"]
    schema = features.arrow_schema
    return pa.RecordBatch.from_arrays([pa.array(values[field.name]).cast(field.type) for field in schema],
                                      schema=schema)


def _ids(names: list[str], label_names: list[str]) -> np.ndarray:
    """Label ids (positions in label_names) of label names."""
    position = {name: i for i, name in enumerate(label_names)}
    return np.array([position[name] for name in names], dtype=np.int64)


def _lists(lengths: np.ndarray, values: np.ndarray) -> pa.ListArray:
    """A list array of consecutive runs of values, one run of each length."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(offsets, values)


def shard_size_limit(max_shard_size: str | int | None) -> int:
    """Bytes from a size such as "500MB" (datasets' default shard size when None)."""
    try:
        limit = convert_file_size_to_int(max_shard_size or datasets.config.MAX_SHARD_SIZE)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise FocusDataError(f"max_shard_size {quote(max_shard_size)} is not a size; expected e.g. 500MB")
    return limit


class _RowGroup(NamedTuple):
    """A row group of the shards, whether it starts a new shard, and the buffer its images were read into."""

    starts_shard: bool
    batch: pa.RecordBatch
    image_buffer: pa.Buffer


def write_parquet_shards(release: Release, columns: pa.RecordBatch, report: dict[str, list], folder: Path, *,
                         max_shard_size: str | int | None = None, rows_per_group: int | None = None) -> list[Path]:
    """Stream a release's examples into `folder/test-XXXXX-of-YYYYY.parquet`, a row group at a time,
    each shard at most max_shard_size (e.g. "500MB"; datasets' default when None) plus Parquet's own
    footer.

    The examples are generate_examples' rows: the annotation columns (annotation_columns) and each
    row's image, read from the release (read_image, whose problems go to `report`) straight into its
    row group's buffer. The schema carries the `datasets` features (ClassLabel names, Image), so
    plain load_dataset reads the shards typed. Image bytes are stored as they are, uncompressed and
    without dictionary or statistics: compressing JPEG gains nothing and would cost more than
    reading the files.
    """
    rows_per_group = rows_per_group or ROWS_PER_GROUP
    limit = shard_size_limit(max_shard_size)
    folder.mkdir(parents=True)
    buffers = _BufferPool()
    shards: list[Path] = []
    writer: pq.ParquetWriter | None = None

    def write(row_group: _RowGroup) -> None:
        nonlocal writer
        if row_group.starts_shard:
            if writer is not None:
                writer.close()
            shards.append(folder / f"shard-{len(shards):05d}.parquet")
            writer = _shard_writer(shards[-1])
        writer.write_batch(row_group.batch, row_group_size=max(row_group.batch.num_rows, 1))  # one row group
        # The writer has copied the images into its pages: their buffer can take another row group's.
        buffers.give_back(row_group.image_buffer)

    _write_in_background(_row_groups(release, columns, report, buffers, rows_per_group, limit), write)
    writer.close()
    named = [folder / f"test-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    for shard, name in zip(shards, named):
        shard.rename(name)
    return named


def _shard_writer(path: Path) -> pq.ParquetWriter:
    """A writer of one shard, images stored as they are (see write_parquet_shards)."""
    features = focus_features()
    compression = {name: "none" if name == "image" else "zstd" for name in features}
    # Dictionaries and min/max statistics over image bytes would hash and scan every file again.
    small_columns = [name for name in features if name != "image"]
    return pq.ParquetWriter(path, features.arrow_schema, compression=compression, use_dictionary=small_columns,
                            write_statistics=small_columns)


def _row_groups(release: Release, columns: pa.RecordBatch, report: dict[str, list], buffers: _BufferPool,
                rows_per_group: int, max_shard_bytes: int) -> Iterator[_RowGroup]:
    """Row groups of at most rows_per_group rows: the annotation columns and each row's image.

    The shard limit is kept per example, not per row group: a shard ends before the example that
    would take it past max_shard_bytes (it holds one example at least), so large images cannot make
    shards a row group too large.
    """
    schema = focus_features().arrow_schema
    images, start = _ImageColumn(buffers), 0
    starts_shard, shard_bytes = True, 0
    for row, file_name in enumerate(columns.column("file_name").to_pylist()):
        data = read_image(release, file_name, report, into=images.reserve)
        images.append(data)
        size = _example_size(file_name, data)
        if shard_bytes and shard_bytes + size > max_shard_bytes:
            if row > start:
                first_of_next = images.pop()
                yield _row_group(starts_shard, schema, columns.slice(start, row - start), images)
                images, start = first_of_next, row
            starts_shard, shard_bytes = True, 0
        shard_bytes += size
        if row + 1 - start == rows_per_group:
            yield _row_group(starts_shard, schema, columns.slice(start, rows_per_group), images)
            images, start, starts_shard = _ImageColumn(buffers, expected_bytes=images.num_bytes), row + 1, False
    if start < columns.num_rows or starts_shard:  # an empty release still gets its one (empty) shard
        yield _row_group(starts_shard, schema, columns.slice(start), images)


def _example_size(file_name: str, data: memoryview | None) -> int:
    """About the bytes an example takes in a shard: its image, plus a little for the annotations."""
    return (0 if data is None else len(data)) + 2 * len(file_name) + 64


def _row_group(starts_shard: bool, schema: pa.Schema, columns: pa.RecordBatch, images: _ImageColumn) -> _RowGroup:
    """A row group: its images (the path of each is its file_name) beside its annotation columns."""
    image = images.finish(paths=columns.column("file_name"), image_type=schema.field("image").type)
    return _RowGroup(starts_shard, pa.RecordBatch.from_arrays([image, *columns.columns], schema=schema),
                     images.buffer)


class _BufferPool:
    """Buffers for the row groups' images, each used again once the writer has written its row group.

    A new buffer per row group would make memory grow with the release: Arrow's allocator keeps
    what the writer thread frees for reuse in this one, late. Handing freed memory back to the
    system after each row group would keep it flat, but at the cost of faulting every page in
    again. Only as many buffers exist as row groups are alive at once (see _write_in_background),
    each as large as the largest row group it held.
    """

    def __init__(self) -> None:
        self._free: SimpleQueue = SimpleQueue()

    def take(self, size: int) -> pa.Buffer:
        """A free buffer of at least `size` bytes, or a new one (never waits for the writer)."""
        try:
            buffer = self._free.get_nowait()
        except Empty:
            buffer = None
        return buffer if buffer is not None and buffer.size >= size else pa.allocate_buffer(size)

    def give_back(self, buffer: pa.Buffer) -> None:
        self._free.put(buffer)


class _ImageColumn:
    """The image column of a row group being read: each file's bytes read straight into one Arrow
    buffer, which the column's binary array then uses as it is (no copy per image)."""

    def __init__(self, buffers: _BufferPool, expected_bytes: int = 0):
        # A row group's images take about what the previous group's took: room for a little more,
        # grown when needed.
        self._buffers = buffers
        self.buffer = buffers.take(max(expected_bytes + expected_bytes // 4, 2**20))
        self._view = _bytes(self.buffer)
        self._offsets = [0]
        self._valid: list[bool] = []

    @property
    def num_bytes(self) -> int:
        return self._offsets[-1]

    def reserve(self, size: int) -> memoryview:
        """A writable view of the next `size` bytes of the buffer, for the next file to be read into."""
        start = self._offsets[-1]
        if start + size > self.buffer.size:
            grown = self._buffers.take(max(start + size, 2 * self.buffer.size))
            _bytes(grown)[:start] = self._view[:start]
            self.buffer, self._view = grown, _bytes(grown)
        return self._view[start:start + size]

    def append(self, data: memoryview | None) -> None:
        """The next row: the view that reserve() gave and the file was read into, or None (no image)."""
        self._offsets.append(self.num_bytes + (0 if data is None else len(data)))
        self._valid.append(data is not None)

    def pop(self) -> _ImageColumn:
        """The last row, taken off this column, as the first row of a new one."""
        start, valid = self._offsets[-2], self._valid[-1]
        rest = _ImageColumn(self._buffers, expected_bytes=self.num_bytes)
        view = rest.reserve(self.num_bytes - start)
        view[:] = self._view[start:self.num_bytes]
        rest.append(view if valid else None)
        del self._offsets[-1], self._valid[-1]
        return rest

    def finish(self, paths: pa.Array, image_type: pa.StructType) -> pa.StructArray:
        """The column as the Image feature stores it: struct<bytes, path>, null where no image was read."""
        offsets = pa.array(self._offsets, pa.int32()).buffers()[1]
        data = pa.Array.from_buffers(pa.binary(), len(self._valid),
                                     [None, offsets, self.buffer.slice(0, self.num_bytes)])
        mask = None if all(self._valid) else pa.array([not valid for valid in self._valid])
        return pa.StructArray.from_arrays([data, paths], fields=list(image_type), mask=mask)


def _bytes(buffer: pa.Buffer) -> memoryview:
    """A buffer as a view of unsigned bytes (Arrow exports signed ones)."""
    return memoryview(buffer).cast("B")


def _write_in_background(batches: Iterable[Any], write: Callable[[Any], None], depth: int = 2) -> None:
    """Write each batch in a background thread while this thread makes the next one.

    Parquet writes without the GIL, so reading the next row group overlaps with writing this one.
    The batches (and the file bytes in them) are made in the calling thread, and at most `depth`
    wait: memory stays flat. An error on either side is raised here.
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
