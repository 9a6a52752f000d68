"""focus_tools.validate: every check of a release or a converted folder."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from focus_tools import cli, convert, sample, validate
import focus_dataset as fd
from conftest import execute, first_file_name, png_declaring, published_version_annotations


def test_validate_accepts_a_clean_release_and_its_conversion(sample_release, sample_zip, converted, capsys):
    for path in (sample_release, sample_zip, converted):
        assert cli.main(["validate", str(path)]) == 0
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
    assert cli.main(["validate", str(release_copy)]) == 1
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
    (release / "cat-snow" / "1.jpg").write_bytes(sample.sample_image(np.random.default_rng(0)))
    result = validate.validate(release)
    assert any("duplicate file_name '/cat-snow/1.jpg'" in e for e in result.errors)


def test_validate_converted_checks_images_and_derived_columns(tmp_path, release_copy):
    name = first_file_name(release_copy).lstrip("/")
    (release_copy / name).write_bytes(b"broken")
    convert.convert(release_copy, tmp_path / "out")
    result = validate.validate(tmp_path / "out")
    assert len(result.errors) == 1
    assert result.errors[0].startswith(f"{tmp_path / 'out'}: image {name}: undecodable: cannot identify image")


def test_validate_of_something_else_says_what_it_expected(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(fd.FocusDataError, match="not a FOCUS release"):
        validate.validate(tmp_path / "notes.txt")


def test_validate_json_is_one_object_with_the_closest_version_and_the_findings(sample_release, release_copy, capsys):
    assert cli.main(["validate", str(sample_release), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == 23902 and report["num_images"] == 48
    table1_lines = [line for line in report["differences"] if line.startswith("Table 1 ")]
    assert report["table1_differences"] == len(table1_lines) > 0
    assert report["table2_differences"] == len(report["differences"]) - len(table1_lines) > 0
    assert report["errors"] == [] and report["warnings"] == []
    # Differences are information about the data; only integrity errors give exit status 1.
    (release_copy / first_file_name(release_copy).lstrip("/")).write_bytes(b"")
    assert cli.main(["validate", str(release_copy), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert len(report["errors"]) == 1 and "empty file" in report["errors"][0]
    assert report["version"] == 23902 and report["num_images"] == 48


def test_decompression_bomb_is_a_bad_image_and_the_rest_of_the_report_is_kept(tmp_path, release_copy, capsys):
    names = sorted(p.relative_to(release_copy).as_posix() for p in release_copy.rglob("*.jpg"))
    (release_copy / names[0]).write_bytes(png_declaring(30000, 30000))
    (release_copy / names[1]).write_bytes(b"")
    convert.convert(release_copy, tmp_path / "out")
    for path in (release_copy, tmp_path / "out"):
        assert cli.main(["validate", str(path)]) == 1
        out = capsys.readouterr().out
        assert f"image {names[0]}: declares 30000×30000 pixels" in out and "decompression bomb" in out
        assert f"image {names[1]}: empty file" in out and "2 error(s)" in out and "Table 1" in out


def test_a_truncated_shard_is_a_clean_error_naming_it(tmp_path, converted, capsys):
    output = Path(shutil.copytree(converted, tmp_path / "out"))
    [shard] = (output / "data").iterdir()
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    assert cli.main(["validate", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {shard}: not a readable Parquet file") and err.count("\n") == 1


def test_validate_of_a_converted_folder_says_nothing_of_generating_a_train_split(tmp_path, converted):
    # datasets' Dataset.from_parquet logs "Generating train split" (a progress bar) on a fresh cache.
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "focus_tools", "validate", str(converted)], env=env,
                            cwd=Path(__file__).parents[1], capture_output=True, text=True)
    assert result.returncode == 0 and "0 error(s)" in result.stdout
    assert "Generating" not in result.stdout + result.stderr and "train" not in result.stderr


def test_a_converted_folder_with_a_bad_file_name_is_named_clipped(tmp_path, converted):
    import pyarrow.parquet as pq
    output = Path(shutil.copytree(converted, tmp_path / "out"))
    [shard] = (output / "data").iterdir()
    table = pq.read_table(shard)
    names = table.column("file_name").to_pylist()
    names[-1] = "zzz/" + "x" * 100_000
    table = table.set_column(table.schema.get_field_index("file_name"), "file_name", [names])
    pq.write_table(table, shard)
    result = validate.validate(output)
    assert any("file_name 'zzz/xxx" in e and "characters long" in e for e in result.errors)
    assert max(len(e) for e in result.errors) < 1000


@pytest.mark.slow
def test_validate_of_a_20815_image_release_names_that_version_and_exits_0(tmp_path, capsys):
    # The release users download may be the notebooks' 20,815-image version: not hundreds of "differences".
    from focus_tools.sample import sample_image, write_annotations_db

    annotations = published_version_annotations(20815)
    image = sample_image(np.random.default_rng(0), (16, 16))
    write_annotations_db(tmp_path / "annotations.db", [
        ("/" + a.file_name, a.category, a.time, a.weather, ", ".join(sorted(a.locations)), "no")
        for a in annotations])
    release = tmp_path / "focus.zip"
    with zipfile.ZipFile(release, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.write(tmp_path / "annotations.db", "focus/annotations.db")
        for annotation in annotations:
            archive.writestr(f"focus/{annotation.file_name}", image)
    assert cli.main(["validate", str(release), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == 20815 and report["num_images"] == 20815
    assert report["table1_differences"] == 0 and report["errors"] == []
    assert not [line for line in report["differences"] if line.startswith("Table 1 ")]
