"""focus_tools.parquet: Parquet shards written a row group at a time."""

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from focus_tools import convert, parquet, sample
import focus_dataset as fd
from focus_tools import parquet


def test_max_shard_size_splits_into_numbered_shards(tmp_path, sample_release, monkeypatch):
    # Small row groups as well as a small limit: 48 images make several shards.
    monkeypatch.setattr("focus_tools.parquet.ROWS_PER_GROUP", 8)
    output = tmp_path / "sharded"
    convert.convert(sample_release, output, max_shard_size="200KB")
    shards = sorted(p.name for p in (output / "data").iterdir())
    assert len(shards) > 1 and shards[0] == f"test-00000-of-{len(shards):05d}.parquet"
    assert datasets.load_dataset(str(output), split="test").num_rows == 48


def test_background_writer_keeps_order_and_raises_errors_from_either_side():
    import threading
    before = threading.active_count()
    written = []
    parquet._write_in_background(iter(range(50)), written.append)
    assert written == list(range(50))

    def failing_write(batch):
        if batch == 3:
            raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        parquet._write_in_background(iter(range(1000)), failing_write)

    def failing_batches():
        yield 1
        raise ValueError("bad row")
    with pytest.raises(ValueError, match="bad row"):
        parquet._write_in_background(failing_batches(), written.append)
    assert threading.active_count() == before


def test_max_shard_size_is_kept_per_row_not_per_row_group(tmp_path, sample_release):
    # 48 images make less than one 100-row group: the limit must still cut shards.
    output = tmp_path / "out"
    convert.convert(sample_release, output, max_shard_size="100KB")
    shards = sorted((output / "data").iterdir())
    images = sum(p.stat().st_size for p in sample_release.rglob("*.jpg"))
    assert len(shards) >= images // 100_000
    # Each shard holds at most 100 KB of rows, plus Parquet's footer and the features in its schema.
    assert max(p.stat().st_size for p in shards) < 100_000 + 16_000
    assert datasets.load_dataset(str(output), split="test").num_rows == 48


def expected_row_groups(sizes: list[int], rows_per_group: int, max_shard_bytes: int) -> list[list[int]]:
    """Each shard's row-group sizes, by the rule: a shard ends before the example that would take it past
    the limit, and a row group ends at rows_per_group rows or where its shard ends."""
    shards, shard_bytes = [[0]], 0
    for size in sizes:
        if shard_bytes and shard_bytes + size > max_shard_bytes:
            shards.append([0])
            shard_bytes = 0
        if shards[-1][-1] == rows_per_group:
            shards[-1].append(0)
        shards[-1][-1] += 1
        shard_bytes += size
    return shards


def test_shards_are_the_builders_examples_encoded_row_by_row(tmp_path, release_copy, monkeypatch):
    # Rows without images (missing, refused) and a limit that cuts shards inside row groups.
    names = sorted(p.relative_to(release_copy).as_posix() for p in release_copy.rglob("*.jpg"))
    (release_copy / names[3]).unlink()
    (release_copy / names[9]).unlink()
    (release_copy / names[9]).symlink_to("/etc/passwd")
    (release_copy / names[20]).write_bytes(b"not an image")
    monkeypatch.setattr("focus_tools.parquet.ROWS_PER_GROUP", 8)
    report = convert.convert(release_copy, tmp_path / "out", max_shard_size="300KB")

    builder_report = {}
    examples = [example for _, example in fd.generate_examples(release_copy, fd.load_uncommon_table(), builder_report)]
    assert {k: report[k] for k in builder_report} == builder_report
    sizes = [(0 if e["image"] is None else len(e["image"]["bytes"])) + 2 * len(e["file_name"]) + 64 for e in examples]
    layout = expected_row_groups(sizes, 8, 300_000)
    shards = sorted((tmp_path / "out" / "data").iterdir())
    assert [[pq.ParquetFile(s).metadata.row_group(i).num_rows for i in range(pq.ParquetFile(s).num_row_groups)]
            for s in shards] == layout
    # The same rows, encoded one example at a time as datasets would, written by the same writer.
    rows = iter(examples)
    for shard, row_groups in zip(shards, layout):
        reference = tmp_path / "reference.parquet"
        writer = parquet._shard_writer(reference)
        for num_rows in row_groups:
            writer.write_batch(parquet.encode_batch([next(rows) for _ in range(num_rows)], fd.focus_features()),
                               row_group_size=num_rows)
        writer.close()
        assert shard.read_bytes() == reference.read_bytes(), shard.name


def test_image_buffers_are_used_again_from_row_group_to_row_group(tmp_path, sample_release, monkeypatch):
    allocated = []
    allocate = pa.allocate_buffer
    monkeypatch.setattr(pa, "allocate_buffer", lambda size, *args, **kwargs: allocated.append(size)
                        or allocate(size, *args, **kwargs))
    monkeypatch.setattr("focus_tools.parquet.ROWS_PER_GROUP", 2)
    convert.convert(sample_release, tmp_path / "out")
    # 24 row groups; at most the few alive at once (filled, queued, being written) have buffers.
    assert pq.ParquetFile(tmp_path / "out" / "data" / "test-00000-of-00001.parquet").num_row_groups == 24
    assert 1 <= len(allocated) <= 5


@pytest.mark.parametrize("uncommon", ["paper", "mine"])
def test_annotation_columns_hold_annotates_values_for_every_class_and_partition(uncommon):
    table = fd.load_uncommon_table()
    if uncommon == "mine":  # night common, every place uncommon for ships, fog for nobody
        table = {"time": {c: [] for c in fd.CLASS_NAMES},
                 "weather": {c: ["raining", "snowing"] for c in fd.CLASS_NAMES},
                 "locations": {**table["locations"], "ship": fd.LOCATION_NAMES[:-1]}}
    annotations = sample.sample_annotations(2000, seed=3)
    features = fd.focus_features()
    del features["image"]
    expected = parquet.encode_batch([fd.annotate(a, table) for a in annotations], features)
    columns = parquet.annotation_columns(annotations, table)
    assert columns.equals(expected) and columns.schema.equals(expected.schema, check_metadata=True)
    if uncommon == "paper":  # the sample holds every partition
        assert set(columns.column("partition").to_pylist()) == set(range(len(fd.PARTITION_NAMES)))
    assert parquet.annotation_columns([], table).num_rows == 0
