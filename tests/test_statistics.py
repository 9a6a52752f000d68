"""focus_tools.statistics and published: Tables 1 and 2, the published tables, the fingerprint."""

import json

import numpy as np
import pytest

from focus_tools import convert, parquet, published, release, statistics, validate
import focus_dataset as fd
from conftest import published_version_table
from focus_tools import statistics


def test_table1_counts_a_multi_location_image_once_per_location():
    annotations = [release.parse_annotation(("/a/1.jpg", "cat", "day", "sunny", "grass, water", "no"))[0]]
    counts = statistics.table1_counts(validate.annotations_table(annotations, fd.load_uncommon_table()))
    cat = fd.CLASS_NAMES.index("cat")
    assert counts["locations"][cat].tolist() == [0, 1, 0, 0, 0, 0, 0, 1, 0]
    assert counts["time"].sum() == 1


def test_published_tables_are_consistent_with_each_other():
    sizes = published.PUBLISHED_TABLE2
    # The paper's partitions add up to 23904, two more than its total of 23902 (and Table 1's):
    # kept as published, so validate reports both differences on the real release.
    assert sizes["P0"] + sizes["P1"] + sizes["P2"] + sizes["P3"] == sizes["total"] + 2
    for group, members in fd.PARTITION_GROUPS.items():
        assert sum(sizes[m] for m in members) == sizes[group]
    assert sum(sum(v) for v in published.PUBLISHED_TABLE1["time"].values()) == sizes["total"]
    assert sum(sum(v) for v in published.PUBLISHED_TABLE1["weather"].values()) == sizes["total"]


def test_fingerprint_depends_on_the_data_not_on_the_reader_or_the_sharding(tmp_path, sample_release, converted,
                                                                           monkeypatch):
    monkeypatch.setattr("focus_tools.parquet.ROWS_PER_GROUP", 8)
    sharded = tmp_path / "sharded"
    report = convert.convert(sample_release, sharded, max_shard_size="200KB")
    from_datasets = statistics.dataset_fingerprint(fd.annotation_table(fd.load_focus(converted)))
    from_parquet = statistics.dataset_fingerprint(parquet.read_annotation_columns(sharded))
    assert report["fingerprint"] == from_datasets == from_parquet
    assert json.loads((converted / convert.REPORT_NAME).read_text())["fingerprint"] == from_datasets
    changed = fd.annotation_table(fd.load_focus(converted)).slice(1)
    assert statistics.dataset_fingerprint(changed) != from_datasets


def test_fingerprint_of_a_hand_built_table_is_pinned():
    # Submissions carry fingerprints: a change of this value (a new encoding, a new pyarrow) would
    # make every earlier submission look like predictions on another dataset.
    import pyarrow as pa
    table = pa.table({
        "file_name": ["x/1.jpg"], "query": ["x"], "label": [1], "time": [0], "weather": [6], "locations": [[1, 7]],
        "humans": [True], "uncommon_time": [False], "uncommon_weather": [False], "uncommon_location": [True],
        "uncommon_locations": [[7]], "num_uncommon": pa.array([1], pa.int8()), "partition": [3],
    })
    assert statistics.dataset_fingerprint(table) == "c0dd16fbb78f3616"


@pytest.mark.parametrize("version", list(published.PUBLISHED_VERSIONS))
def test_each_published_version_is_identified_with_no_differences(version):
    table = published_version_table(version)
    assert table.num_rows == version
    closest = statistics.closest_published_version(table)
    assert closest["version"] == version and closest["num_images"] == version
    assert closest["table1_differences"] == 0
    assert closest["tables_3_and_4"] is (version == 23902)
    counts, sizes = statistics.table1_counts(table), published.PUBLISHED_VERSIONS[version]["table2"]
    assert statistics.compare_with_published(counts, sizes) == []


def test_the_20815_version_is_not_reported_as_differences_from_the_23902_tables():
    counts = statistics.published_counts(20815)
    sizes = published.PUBLISHED_VERSIONS[20815]["table2"]
    assert statistics.closest_version(counts) == 20815
    assert statistics.compare_with_published(counts, sizes) == []
    # The comparison it replaces: hundreds of cells against the other version.
    assert len(statistics.compare_with_published(counts, sizes, version=23902)) > 150


def test_a_random_subset_of_a_version_is_still_closest_to_it():
    # The rule compares shares, not counts: a third of the 23,902 version is not taken for the smaller one.
    table = published_version_table(23902)
    subset = table.take(np.random.default_rng(0).permutation(table.num_rows)[: table.num_rows // 3])
    assert statistics.closest_published_version(subset)["version"] == 23902
    smaller = published_version_table(20815)
    subset = smaller.take(np.random.default_rng(0).permutation(smaller.num_rows)[:5000])
    assert statistics.closest_published_version(subset)["version"] == 20815


def test_the_20815_version_partition_sizes_are_as_counted_over_20813_rows():
    sizes = published.PUBLISHED_VERSIONS[20815]["table2"]
    assert sizes["P0"] + sizes["P1"] + sizes["P2"] + sizes["P3"] == sizes["total"] == 20813
    for group, members in fd.PARTITION_GROUPS.items():
        assert sum(sizes[m] for m in members) == sizes[group]
    table1 = published.PUBLISHED_VERSIONS[20815]["table1"]
    assert sum(sum(v) for v in table1["time"].values()) == sum(sum(v) for v in table1["weather"].values()) == 20815
