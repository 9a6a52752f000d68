"""focus_tools.release: reading a release folder or zip, its annotation rows checked and named."""

import zipfile

import pytest

import focus_dataset as fd
from conftest import execute, first_file_name


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
