"""focus_tools.parquet: Parquet shards written a row group at a time."""

import datasets
import pytest

import focus_dataset as fd
from focus_tools import parquet


def test_max_shard_size_splits_into_numbered_shards(tmp_path, sample_release, monkeypatch):
    # Shard size is checked between row groups: small groups let 48 images make several shards.
    monkeypatch.setattr("focus_tools.parquet.ROWS_PER_GROUP", 8)
    output = tmp_path / "sharded"
    fd.convert(sample_release, output, max_shard_size="200KB")
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
    fd.convert(sample_release, output, max_shard_size="100KB")
    shards = sorted((output / "data").iterdir())
    images = sum(p.stat().st_size for p in sample_release.rglob("*.jpg"))
    assert len(shards) >= images // 100_000
    # Each shard holds at most 100 KB of rows, plus Parquet's footer and the features in its schema.
    assert max(p.stat().st_size for p in shards) < 100_000 + 16_000
    assert datasets.load_dataset(str(output), split="test").num_rows == 48
