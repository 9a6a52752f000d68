"""focus_dataset: schema, uncommon flags, builder, conversion, loading, filters, sample, validate."""

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import datasets
import numpy as np
import pytest

import focus_dataset as fd
from conftest import execute, first_file_name

# --- schema and the uncommon table ------------------------------------------------------------


def test_label_lists_follow_the_paper_order():
    # The ids are positions: this order is the one every converted dataset and submission relies on.
    assert fd.CLASS_NAMES == ["truck", "car", "plane", "ship", "cat", "dog", "horse", "deer", "frog", "bird"]
    assert fd.TIME_NAMES == ["day", "night", "none"]
    assert fd.WEATHER_NAMES == ["cloudy", "foggy", "partly cloudy", "raining", "snowing", "sunny", "none"]
    assert fd.LOCATION_NAMES == ["forest", "grass", "indoors", "rocks", "sand", "street", "snow", "water", "none"]
    assert fd.PARTITION_NAMES == ["P0", "P(t)", "P(w)", "P(l)", "P(t,w)", "P(w,l)", "P(t,l)", "P(t,w,l)"]


def test_features_round_trip_through_the_hub_yaml(converted):
    info = datasets.DatasetInfo(features=fd.focus_features())
    restored = datasets.DatasetInfo._from_yaml_dict(info._to_yaml_dict())
    assert restored.features == fd.focus_features()
    loaded = datasets.load_dataset(str(converted), split="test")
    assert loaded.features == fd.focus_features()
    assert loaded.features["partition"].names == fd.PARTITION_NAMES


def row(category, time="day", weather="sunny", locations="street", humans="no", name="/q/1.jpg"):
    annotation, problems = fd.parse_annotation((name, category, time, weather, locations, humans))
    assert problems == []
    return fd.annotate(annotation, fd.load_uncommon_table())


def test_frog_at_night_is_common_but_night_is_uncommon_for_every_other_class():
    assert row("frog", time="night", locations="grass")["uncommon_time"] is False
    for name in fd.CLASS_NAMES:
        if name != "frog":
            assert row(name, time="night", locations="none")["uncommon_time"] is True, name


def test_ship_on_grass_is_uncommon_and_ship_on_water_common():
    on_grass = row("ship", locations="grass")
    assert on_grass["uncommon_location"] and on_grass["uncommon_locations"] == ["grass"]
    assert on_grass["partition"] == "P(l)" and on_grass["num_uncommon"] == 1
    assert row("ship", locations="water")["partition"] == "P0"


def test_multi_location_image_is_uncommon_when_one_location_is():
    cat = row("cat", locations="indoors, snow")
    assert cat["locations"] == ["indoors", "snow"]
    assert cat["uncommon_locations"] == ["snow"] and cat["uncommon_location"]


@pytest.mark.parametrize("class_name", fd.CLASS_NAMES)
def test_every_class_gets_flags_and_partition_from_the_table(class_name):
    uncommon_location = fd.UNCOMMON["locations"][class_name][0]
    annotated = row(class_name, time="night", weather="foggy", locations=f"{uncommon_location}")
    expected_time = class_name != "frog"
    assert annotated["uncommon_time"] is expected_time
    assert annotated["uncommon_weather"] is True
    assert annotated["uncommon_locations"] == [uncommon_location]
    assert annotated["partition"] == ("P(t,w,l)" if expected_time else "P(w,l)")
    assert annotated["num_uncommon"] == 2 + expected_time


def test_none_values_are_never_uncommon():
    annotated = row("car", time="none", weather="none", locations="none")
    assert annotated["partition"] == "P0" and annotated["uncommon_locations"] == []


def test_partition_ids_cover_all_flag_combinations():
    flags = np.array([(t, w, l) for t in (0, 1) for w in (0, 1) for l in (0, 1)])
    names = [fd.PARTITION_NAMES[i] for i in fd.partition_ids(flags[:, 0], flags[:, 1], flags[:, 2])]
    assert names == ["P0", "P(l)", "P(w)", "P(w,l)", "P(t)", "P(t,l)", "P(t,w)", "P(t,w,l)"]


def test_users_own_uncommon_table_from_yaml_changes_the_flags(tmp_path):
    table = fd.load_uncommon_table()
    table["locations"]["ship"] = ["water"]
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps(table))  # JSON is YAML too
    mine = fd.load_uncommon_table(path)
    annotation, _ = fd.parse_annotation(("/q/1.jpg", "ship", "day", "sunny", "water", "no"))
    assert fd.annotate(annotation, mine)["uncommon_locations"] == ["water"]


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("weather"), r"missing \['weather'\]"),
    (lambda t: t["time"].pop("cat"), r"'time' must list every class .* missing \['cat'\]"),
    (lambda t: t["locations"].update(ship=["lava"]), r"'locations.ship' has unknown value 'lava'"),
    (lambda t: t["time"].update(dog="night"), r"'time.dog' must be a list"),
])
def test_bad_uncommon_table_is_rejected_with_the_offending_key(tmp_path, edit, message):
    table = fd.load_uncommon_table()
    edit(table)
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(table))
    with pytest.raises(fd.FocusDataError, match=message):
        fd.load_uncommon_table(path)


def test_unparseable_uncommon_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("time: [unclosed")
    with pytest.raises(fd.FocusDataError, match="bad.yaml: not valid JSON or YAML"):
        fd.load_uncommon_table(path)


@pytest.mark.parametrize("value, problem", [
    ("grass,water", "items must be joined by ', '"),
    ("grass, lava", "unknown location 'lava'"),
    ("grass, grass", "a location is repeated"),
    ("none, grass", "'none' cannot be combined"),
    ("", "expected names joined by ', ' or 'none'"),
])
def test_malformed_locations_strings_are_named(value, problem):
    _, problems = fd.parse_locations(value)
    assert any(problem in p for p in problems), problems


# --- the sample release ------------------------------------------------------------------------


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
    with fd.Release(sample_release) as release:
        annotations, _ = fd.read_annotations(release)
    partitions = fd.annotations_table(annotations, fd.load_uncommon_table()).column("partition").to_pylist()
    assert set(partitions) == set(range(len(fd.PARTITION_NAMES)))


def test_sample_refuses_to_write_over_an_existing_release(sample_release):
    with pytest.raises(fd.FocusDataError, match="already exists"):
        fd.write_sample_release(sample_release, 5)


# --- builder and conversion --------------------------------------------------------------------


def test_converted_folder_is_a_hub_dataset_repository(converted):
    assert sorted(p.name for p in (converted / "data").iterdir()) == ["test-00000-of-00001.parquet"]
    card = (converted / "README.md").read_text()
    for key in ("pretty_name:", "license:", "task_categories:", "size_categories:", "configs:", "dataset_info:"):
        assert key in card
    assert "Table 1" in card and "Table 2" in card and "| P(t,w,l) |" in card
    report = json.loads((converted / fd.REPORT_NAME).read_text())
    assert report["num_images"] == 48 and report["image_problems"] == []


def test_rows_come_out_ordered_by_file_name_with_original_bytes(converted, sample_release):
    dataset = datasets.load_dataset(str(converted), split="test").cast_column("image", datasets.Image(decode=False))
    names = dataset["file_name"]
    assert names == sorted(names)
    first = dataset[0]
    assert first["image"]["bytes"] == (sample_release / first["file_name"]).read_bytes()
    assert first["query"] == first["file_name"].split("/")[0]


def test_load_dataset_in_a_process_that_does_not_import_the_project(converted, tmp_path):
    script = textwrap.dedent(f"""
        import sys, datasets
        ds = datasets.load_dataset({str(converted)!r}, split="test")
        stream = datasets.load_dataset({str(converted)!r}, split="test", streaming=True)
        example = next(iter(stream))
        assert "focus_dataset" not in sys.modules
        print(len(ds), ds.features["label"].names[2], type(ds.features["locations"]).__name__,
              ds.features["locations"].feature.names[-1], ds[0]["image"].size > (0, 0),
              example["file_name"] == ds[0]["file_name"], stream.features == ds.features)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["48", "plane", "List", "none", "True", "True", "True"]


def test_streaming_yields_typed_rows(converted):
    stream = datasets.load_dataset(str(converted), split="test", streaming=True)
    rows = list(stream.take(3))
    assert [r["file_name"] for r in rows] == sorted(r["file_name"] for r in rows)
    assert all(isinstance(r["locations"], list) and r["image"].size[0] > 0 for r in rows)


def test_folder_and_zip_give_identical_datasets(tmp_path, converted, sample_zip):
    from_zip = tmp_path / "from_zip"
    fd.convert(sample_zip, from_zip)
    assert ((from_zip / "data" / "test-00000-of-00001.parquet").read_bytes()
            == (converted / "data" / "test-00000-of-00001.parquet").read_bytes())


def test_two_conversions_are_identical(tmp_path, sample_release, converted):
    again = tmp_path / "again"
    report = fd.convert(sample_release, again)
    assert (again / "data" / "test-00000-of-00001.parquet").read_bytes() == \
        (converted / "data" / "test-00000-of-00001.parquet").read_bytes()
    assert report["fingerprint"] == json.loads((converted / fd.REPORT_NAME).read_text())["fingerprint"]
    assert (again / "README.md").read_text() == (converted / "README.md").read_text()


def test_fingerprint_depends_on_the_data_not_on_the_reader_or_the_sharding(tmp_path, sample_release, converted,
                                                                           monkeypatch):
    monkeypatch.setattr(fd, "ROWS_PER_GROUP", 8)
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


def test_max_shard_size_splits_into_numbered_shards(tmp_path, sample_release, monkeypatch):
    # Shard size is checked between row groups: small groups let 48 images make several shards.
    monkeypatch.setattr(fd, "ROWS_PER_GROUP", 8)
    output = tmp_path / "sharded"
    fd.convert(sample_release, output, max_shard_size="200KB")
    shards = sorted(p.name for p in (output / "data").iterdir())
    assert len(shards) > 1 and shards[0] == f"test-00000-of-{len(shards):05d}.parquet"
    assert datasets.load_dataset(str(output), split="test").num_rows == 48


def test_builder_reads_the_zip_without_extracting(tmp_path, sample_zip):
    builder = fd.FocusBuilder(cache_dir=str(tmp_path / "cache"), data_dir=str(sample_zip))
    builder.download_and_prepare()
    dataset = builder.as_dataset(split="test")
    assert dataset.num_rows == 48 and not list(tmp_path.rglob("*.jpg"))


# --- bad input ---------------------------------------------------------------------------------


def test_unknown_class_stops_the_conversion_naming_row_and_value(tmp_path, release_copy):
    name = first_file_name(release_copy)
    execute(release_copy, "UPDATE annotations SET category='airplane' WHERE file_name=?", name)
    output = tmp_path / "out"
    with pytest.raises(fd.FocusDataError, match=rf"row 1 \(file_name '{name}'\): unknown category 'airplane'"):
        fd.convert(release_copy, output)
    assert not output.exists() and list(tmp_path.glob(".out.partial-*")) == []


@pytest.mark.parametrize("column, value, message", [
    ("time", "dusk", "unknown time 'dusk'"),
    ("weather", "hail", "unknown weather 'hail'"),
    ("locations", "grass, lava", "unknown location 'lava'"),
    ("humans", "maybe", "humans must be 'yes' or 'no'"),
])
def test_each_unknown_value_is_named(tmp_path, release_copy, column, value, message):
    execute(release_copy, f"UPDATE annotations SET {column}=? WHERE file_name=?", value, first_file_name(release_copy))
    with pytest.raises(fd.FocusDataError, match=message):
        fd.convert(release_copy, tmp_path / "out")


def test_skip_invalid_writes_the_rest_and_reports_every_skipped_row(tmp_path, release_copy):
    name = first_file_name(release_copy)
    execute(release_copy, "UPDATE annotations SET weather='hail' WHERE file_name=?", name)
    report = fd.convert(release_copy, tmp_path / "out", skip_invalid=True)
    assert report["num_images"] == 47
    assert report["skipped_rows"] == [{"row": 1, "file_name": name, "problems": [
        f"unknown weather 'hail'; expected one of {fd.WEATHER_NAMES}"]}]
    saved = json.loads((tmp_path / "out" / fd.REPORT_NAME).read_text())
    assert saved["skipped_rows"][0]["file_name"] == name


def test_corrupt_image_is_kept_named_in_the_report_and_logged(tmp_path, release_copy, caplog):
    name = first_file_name(release_copy).lstrip("/")
    (release_copy / name).write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING, logger="focus_dataset"):
        report = fd.convert(release_copy, tmp_path / "out")
    assert report["num_images"] == 48
    assert report["image_problems"][0]["file_name"] == name
    assert report["image_problems"][0]["problem"].startswith("undecodable")
    assert name in caplog.text


def test_missing_and_truncated_images_are_reported(tmp_path, release_copy):
    names = sorted(p.relative_to(release_copy).as_posix() for p in release_copy.rglob("*.jpg"))
    (release_copy / names[0]).unlink()
    data = (release_copy / names[1]).read_bytes()
    (release_copy / names[1]).write_bytes(data[: len(data) // 2])
    (release_copy / "stray.jpg").write_bytes(data)
    report = fd.convert(release_copy, tmp_path / "out")
    problems = {p["file_name"]: p["problem"] for p in report["image_problems"]}
    assert problems == {names[0]: "missing", names[1]: "truncated: no JPEG end marker"}
    assert report["images_without_rows"] == ["stray.jpg"]


@pytest.mark.parametrize("member", ["../evil.jpg", "/etc/evil.jpg", "focus/../../evil.jpg"])
def test_archive_member_with_absolute_path_or_dotdot_is_refused(tmp_path, sample_zip, member):
    archive = tmp_path / "focus.zip"
    with zipfile.ZipFile(sample_zip) as source, zipfile.ZipFile(archive, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr(member, b"x")
    with pytest.raises(fd.FocusDataError, match=f"refusing archive member '{member}'"):
        fd.convert(archive, tmp_path / "out")


def test_file_name_with_dotdot_in_the_database_is_an_invalid_row(tmp_path, release_copy):
    execute(release_copy, "UPDATE annotations SET file_name='/../../etc/passwd' WHERE file_name=?",
            first_file_name(release_copy))
    with pytest.raises(fd.FocusDataError, match="without '..'"):
        fd.convert(release_copy, tmp_path / "out")


def test_missing_annotations_db_says_what_was_expected_and_where(tmp_path, release_copy):
    (release_copy / "annotations.db").unlink()
    with pytest.raises(fd.FocusDataError, match=f"{release_copy}: no annotations.db; expected "
                                                 f"{release_copy / 'annotations.db'}"):
        fd.convert(release_copy, tmp_path / "out")
    empty_zip = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("focus/truck-snow/1.jpg", b"x")
    with pytest.raises(fd.FocusDataError, match="no annotations.db in the archive"):
        fd.convert(empty_zip, tmp_path / "out")


def test_failed_conversion_leaves_no_folder_that_load_dataset_could_read(tmp_path, sample_release, monkeypatch):
    calls = []

    def failing_check(data):
        calls.append(1)
        if len(calls) == 30:
            raise RuntimeError("disk on fire")
        return None

    monkeypatch.setattr(fd, "check_image_bytes", failing_check)
    with pytest.raises(RuntimeError, match="disk on fire"):
        fd.convert(sample_release, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_unless_overwrite(tmp_path, sample_release, converted):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    with pytest.raises(fd.FocusDataError, match="already exists and is not empty; .* --overwrite"):
        fd.convert(sample_release, output)
    assert (output / "keep.txt").read_text() == "mine"


def test_overwrite_replaces_an_earlier_conversion(tmp_path, sample_release, converted):
    output = tmp_path / "out"
    shutil.copytree(converted, output)
    (output / "stale.txt").write_text("from before")
    fd.convert(sample_release, output, overwrite=True)
    assert not (output / "stale.txt").exists() and (output / "README.md").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_output_that_is_a_file_is_refused(tmp_path, sample_release):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(fd.FocusDataError, match="out: is a file; OUTPUT must be a folder"):
        fd.convert(sample_release, tmp_path / "out")


def test_cli_reports_bad_input_on_stderr_with_exit_status_2(tmp_path, capsys):
    assert fd.main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "no such file or folder; expected a FOCUS release folder or focus.zip" in capsys.readouterr().err


# --- loading and filtering ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def focus(converted):
    return fd.load_focus(converted)


def names_of(dataset, column):
    feature = dataset.features[column]
    return [feature.int2str(v) for v in dataset[column]]


def test_load_focus_reads_a_raw_release_like_a_converted_one(tmp_path, sample_release, focus):
    raw = fd.load_focus(sample_release, cache_dir=str(tmp_path))
    assert raw["file_name"] == focus["file_name"] and raw["partition"] == focus["partition"]


def test_filter_by_categories_times_and_weathers(focus):
    cats = fd.filter_focus(focus, categories=["cat", "dog"])
    assert cats.num_rows > 0 and set(names_of(cats, "label")) <= {"cat", "dog"}
    assert cats.num_rows == sum(n in ("cat", "dog") for n in names_of(focus, "label"))
    nights = fd.filter_focus(focus, times=["night"])
    assert nights.num_rows > 0 and set(names_of(nights, "time")) == {"night"}
    foggy = fd.filter_focus(focus, weathers="foggy")
    assert set(names_of(foggy, "weather")) <= {"foggy"}


def test_locations_filter_matches_any_or_all(focus):
    locations = [set(focus.features["locations"].feature.int2str(v) for v in ids) for ids in focus["locations"]]
    any_match = fd.filter_focus(focus, locations=["grass", "water"])
    all_match = fd.filter_focus(focus, locations=["grass", "water"], locations_match="all")
    assert any_match.num_rows == sum(bool(s & {"grass", "water"}) for s in locations)
    assert all_match.num_rows == sum({"grass", "water"} <= s for s in locations)
    assert all_match.num_rows < any_match.num_rows


def test_humans_filter(focus):
    with_people = fd.filter_focus(focus, humans=True)
    assert with_people.num_rows == sum(focus["humans"]) and all(with_people["humans"])


def test_filters_combine(focus):
    both = fd.filter_focus(focus, categories=["car"], humans=False)
    assert all(n == "car" for n in names_of(both, "label")) and not any(both["humans"])


@pytest.mark.parametrize("kwargs, message", [
    ({"categories": ["airplane"]}, r"categories: unknown name 'airplane'; expected some of \['truck'"),
    ({"times": ["dusk"]}, "times: unknown name 'dusk'"),
    ({"locations": ["lava"]}, "locations: unknown name 'lava'"),
    ({"locations": ["grass"], "locations_match": "most"}, "locations_match must be 'any' or 'all', got 'most'"),
])
def test_bad_filter_names_the_argument(focus, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fd.filter_focus(focus, **kwargs)


# --- statistics and validate -------------------------------------------------------------------


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


def test_validate_accepts_a_clean_release_and_its_conversion(sample_release, sample_zip, converted, capsys):
    for path in (sample_release, sample_zip, converted):
        assert fd.main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "0 error(s)" in out and "Differences from the published Tables 1 and 2" in out
    assert "Table 2 total: 48 (published 23902, -23854)" in out


def test_validate_finds_every_kind_of_release_problem(release_copy, capsys):
    names = sorted(p.relative_to(release_copy).as_posix() for p in release_copy.rglob("*.jpg"))
    execute(release_copy, "UPDATE annotations SET category='airplane' WHERE file_name=?", "/" + names[0])
    execute(release_copy, "UPDATE annotations SET locations='water,grass' WHERE file_name=?", "/" + names[1])
    (release_copy / names[2]).unlink()
    (release_copy / names[3]).write_bytes(b"")
    data = (release_copy / names[4]).read_bytes()
    (release_copy / names[4]).write_bytes(data[: len(data) // 2])
    (release_copy / names[5]).write_bytes(b"\xff\xd8garbage\xff\xd9")
    (release_copy / "extra-folder").mkdir()
    (release_copy / "extra-folder" / "1.jpg").write_bytes(data)
    assert fd.main(["validate", str(release_copy)]) == 1
    out = capsys.readouterr().out
    assert f"row 1 (file_name '/{names[0]}'): unknown category 'airplane'" in out
    assert "malformed locations 'water,grass'" in out
    assert f"row without image {names[2]}: missing" in out
    assert f"image {names[3]}: empty file" in out
    assert f"image {names[4]}: truncated" in out
    assert f"image {names[5]}: undecodable" in out
    assert "image without row: extra-folder/1.jpg" in out
    assert "7 error(s)" in out


def test_validate_finds_duplicate_file_names(tmp_path):
    release = tmp_path / "focus"
    release.mkdir()
    import sqlite3
    with sqlite3.connect(release / "annotations.db") as db:  # a table without the PRIMARY KEY
        db.execute("CREATE TABLE annotations(file_name TEXT, category TEXT, time TEXT, weather TEXT, "
                   "locations TEXT, humans TEXT)")
        db.executemany("INSERT INTO annotations VALUES (?,?,?,?,?,?)",
                       [("/cat-snow/1.jpg", "cat", "day", "sunny", "snow", "no")] * 2)
    db.close()
    (release / "cat-snow").mkdir()
    (release / "cat-snow" / "1.jpg").write_bytes(fd.sample_image(np.random.default_rng(0)))
    result = fd.validate(release)
    assert any("duplicate file_name '/cat-snow/1.jpg'" in e for e in result.errors)


def test_validate_converted_checks_images_and_derived_columns(tmp_path, release_copy):
    name = first_file_name(release_copy).lstrip("/")
    (release_copy / name).write_bytes(b"broken")
    fd.convert(release_copy, tmp_path / "out")
    result = fd.validate(tmp_path / "out")
    assert len(result.errors) == 1
    assert result.errors[0].startswith(f"{tmp_path / 'out'}: image {name}: undecodable: cannot identify image")


def test_validate_of_something_else_says_what_it_expected(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(fd.FocusDataError, match="not a FOCUS release"):
        fd.validate(tmp_path / "notes.txt")


def test_two_different_conversions_never_share_the_datasets_cache(tmp_path):
    # datasets names a local folder's cache after its YAML metadata: the split sizes keep them apart.
    small = fd.write_sample_release(tmp_path / "small" / "focus", 12, seed=1)
    large = fd.write_sample_release(tmp_path / "large" / "focus", 20, seed=1)
    for release in (small, large):
        fd.convert(release, release.parent / "converted" / "focus")
    cache = str(tmp_path / "cache")
    sizes = [datasets.load_dataset(str(r.parent / "converted" / "focus"), split="test", cache_dir=cache).num_rows
             for r in (small, large)]
    assert sizes == [12, 20]


def test_background_writer_keeps_order_and_raises_errors_from_either_side():
    import threading
    before = threading.active_count()
    written = []
    fd._write_in_background(iter(range(50)), written.append)
    assert written == list(range(50))

    def failing_write(batch):
        if batch == 3:
            raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        fd._write_in_background(iter(range(1000)), failing_write)

    def failing_batches():
        yield 1
        raise ValueError("bad row")
    with pytest.raises(ValueError, match="bad row"):
        fd._write_in_background(failing_batches(), written.append)
    assert threading.active_count() == before
