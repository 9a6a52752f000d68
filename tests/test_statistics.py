"""focus_tools.statistics and published: Tables 1 and 2, the published tables, the fingerprint."""

import json

import focus_dataset as fd


def test_table1_counts_a_multi_location_image_once_per_location():
    annotations = [fd.parse_annotation(("/a/1.jpg", "cat", "day", "sunny", "grass, water", "no"))[0]]
    counts = fd.table1_counts(fd.annotations_table(annotations, fd.load_uncommon_table()))
    cat = fd.CLASS_NAMES.index("cat")
    assert counts["locations"][cat].tolist() == [0, 1, 0, 0, 0, 0, 0, 1, 0]
    assert counts["time"].sum() == 1


def test_published_tables_are_consistent_with_each_other():
    sizes = fd.PUBLISHED_TABLE2
    # The paper's partitions add up to 23904, two more than its total of 23902 (and Table 1's):
    # kept as published, so validate reports both differences on the real release.
    assert sizes["P0"] + sizes["P1"] + sizes["P2"] + sizes["P3"] == sizes["total"] + 2
    for group, members in fd.PARTITION_GROUPS.items():
        assert sum(sizes[m] for m in members) == sizes[group]
    assert sum(sum(v) for v in fd.PUBLISHED_TABLE1["time"].values()) == sizes["total"]
    assert sum(sum(v) for v in fd.PUBLISHED_TABLE1["weather"].values()) == sizes["total"]


def test_fingerprint_depends_on_the_data_not_on_the_reader_or_the_sharding(tmp_path, sample_release, converted,
                                                                           monkeypatch):
    monkeypatch.setattr("focus_tools.parquet.ROWS_PER_GROUP", 8)
    sharded = tmp_path / "sharded"
    report = fd.convert(sample_release, sharded, max_shard_size="200KB")
    from_datasets = fd.dataset_fingerprint(fd.annotation_table(fd.load_focus(converted)))
    from_parquet = fd.dataset_fingerprint(fd.read_annotation_columns(sharded))
    assert report["fingerprint"] == from_datasets == from_parquet
    assert json.loads((converted / fd.REPORT_NAME).read_text())["fingerprint"] == from_datasets
    changed = fd.annotation_table(fd.load_focus(converted)).slice(1)
    assert fd.dataset_fingerprint(changed) != from_datasets


def test_fingerprint_of_a_hand_built_table_is_pinned():
    # Submissions carry fingerprints: a change of this value (a new encoding, a new pyarrow) would
    # make every earlier submission look like predictions on another dataset.
    import pyarrow as pa
    table = pa.table({
        "file_name": ["x/1.jpg"], "query": ["x"], "label": [1], "time": [0], "weather": [6], "locations": [[1, 7]],
        "humans": [True], "uncommon_time": [False], "uncommon_weather": [False], "uncommon_location": [True],
        "uncommon_locations": [[7]], "num_uncommon": pa.array([1], pa.int8()), "partition": [3],
    })
    assert fd.dataset_fingerprint(table) == "c0dd16fbb78f3616"
