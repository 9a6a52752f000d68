"""focus_tools.sample: the synthetic release in the public layout."""

import pytest

from focus_tools import release, sample, validate
import focus_dataset as fd


def test_sample_release_has_the_public_layout_and_every_partition(sample_release):
    import sqlite3
    with sqlite3.connect(sample_release / "annotations.db") as db:
        schema = db.execute("SELECT sql FROM sqlite_master WHERE name='annotations'").fetchone()[0]
        rows = db.execute("SELECT * FROM annotations").fetchall()
    assert "file_name TEXT PRIMARY KEY" in schema and "humans TEXT" in schema
    assert len(rows) == 48
    for file_name, category, *_ , humans in rows:
        query, image = file_name.lstrip("/").split("/")
        assert file_name.startswith("/") and query.startswith(category + "-") and image.endswith(".jpg")
        assert (sample_release / file_name.lstrip("/")).stat().st_size > 0
        assert humans in ("yes", "no")
    with release.Release(sample_release) as opened:
        annotations, _ = release.read_annotations(opened)
    partitions = validate.annotations_table(annotations, fd.load_uncommon_table()).column("partition").to_pylist()
    assert set(partitions) == set(range(len(fd.PARTITION_NAMES)))


def test_sample_refuses_to_write_over_an_existing_release(sample_release):
    with pytest.raises(fd.FocusDataError, match="already exists"):
        sample.write_sample_release(sample_release, 5)
