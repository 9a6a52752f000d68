"""focus_tools.convert: a release into a Hub-ready dataset folder, its report, its output folder."""

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap

import datasets
import pytest

import focus_dataset as fd
from conftest import execute, first_file_name


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


def test_failed_conversion_leaves_no_folder_that_load_dataset_could_read(tmp_path, sample_release, monkeypatch):
    calls = []

    def failing_check(data):
        calls.append(1)
        if len(calls) == 30:
            raise RuntimeError("disk on fire")
        return None

    monkeypatch.setattr("focus_tools.release.check_image_bytes", failing_check)
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
