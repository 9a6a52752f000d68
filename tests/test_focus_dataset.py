"""focus_dataset, the dataset script: schema, uncommon flags, partitions, the builder, loading and filters."""

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from focus_tools import cli, release, schema
import focus_dataset as fd


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
    annotation, problems = release.parse_annotation((name, category, time, weather, locations, humans))
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
    uncommon_location = schema.PAPER_UNCOMMON_TABLE["locations"][class_name][0]
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
    names = [fd.PARTITION_NAMES[i] for i in schema.partition_ids(flags[:, 0], flags[:, 1], flags[:, 2])]
    assert names == ["P0", "P(l)", "P(w)", "P(w,l)", "P(t)", "P(t,l)", "P(t,w)", "P(t,w,l)"]


def test_users_own_uncommon_table_from_yaml_changes_the_flags(tmp_path):
    table = fd.load_uncommon_table()
    table["locations"]["ship"] = ["water"]
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps(table))  # JSON is YAML too
    mine = fd.load_uncommon_table(path)
    annotation, _ = release.parse_annotation(("/q/1.jpg", "ship", "day", "sunny", "water", "no"))
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


def test_builder_reads_the_zip_without_extracting(tmp_path, sample_zip):
    builder = fd.FocusBuilder(cache_dir=str(tmp_path / "cache"), data_dir=str(sample_zip))
    builder.download_and_prepare()
    dataset = builder.as_dataset(split="test")
    assert dataset.num_rows == 48 and not list(tmp_path.rglob("*.jpg"))


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


def test_binary_uncommon_file_is_a_clean_error(tmp_path, sample_release, capsys):
    path = tmp_path / "table.yaml"
    path.write_bytes(bytes(range(256)) * 10)
    assert cli.main(["convert", str(sample_release), str(tmp_path / "out"), "--uncommon", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}: not UTF-8 text (byte 128); expected a JSON or YAML uncommon table\n"


def test_uncommon_file_that_is_not_a_regular_file_is_refused(tmp_path):
    with pytest.raises(fd.FocusDataError, match="tmp.*: not a regular file; expected a JSON or YAML uncommon table"):
        fd.load_uncommon_table(tmp_path)


def test_huge_values_in_an_uncommon_table_are_clipped(tmp_path):
    table = fd.load_uncommon_table()
    table["time"]["dog"] = "n" * 1_000_000
    with pytest.raises(fd.FocusDataError) as error:
        fd.validate_uncommon_table(table)
    assert "'time.dog' must be a list of values" in str(error.value) and len(str(error.value)) < 300


def test_load_focus_of_a_truncated_shard_names_it(tmp_path, converted):
    output = Path(shutil.copytree(converted, tmp_path / "out"))
    [shard] = (output / "data").iterdir()
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(fd.FocusDataError, match=f"{shard}: not a readable Parquet file"):
        fd.load_focus(output, cache_dir=str(tmp_path / "cache"))


def test_the_dataset_script_imports_of_the_tools_only_what_the_builder_and_the_loader_need():
    script = "import sys, focus_dataset; print(sorted(m for m in sys.modules if m.startswith('focus_t')))"
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "['focus_tools', 'focus_tools.parquet', 'focus_tools.release', 'focus_tools.schema']"
    with pytest.raises(AttributeError, match="has no attribute 'convert'"):
        fd.convert  # noqa: B018 - the tools are imported from focus_tools, where they live
