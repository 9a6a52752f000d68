"""focus_tools.release: reading a release folder or zip, its annotation rows checked and named."""

import json
import os
import shutil
import signal
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from focus_tools import cli, convert, release, validate
import focus_dataset as fd
from conftest import execute, first_file_name
from focus_tools.release import ReleaseFile, read_image


@pytest.mark.parametrize("value, problem", [
    ("grass,water", "items must be joined by ', '"),
    ("grass, lava", "unknown location 'lava'"),
    ("grass, grass", "a location is repeated"),
    ("none, grass", "'none' cannot be combined"),
    ("", "expected names joined by ', ' or 'none'"),
])
def test_malformed_locations_strings_are_named(value, problem):
    _, problems = release.parse_locations(value)
    assert any(problem in p for p in problems), problems


def test_well_formed_locations_looked_up_parse_as_when_taken_apart(monkeypatch):
    import focus_tools.release as release
    looked_up = dict(release._LOCATIONS_IN_ORDER)
    assert len(looked_up) == 2 ** (len(fd.LOCATION_NAMES) - 1)  # every subset of the places, and "none"
    monkeypatch.setattr(release, "_LOCATIONS_IN_ORDER", {})
    assert all(release.parse_locations(value) == (names, []) for value, names in looked_up.items())


def test_unknown_class_stops_the_conversion_naming_row_and_value(tmp_path, release_copy):
    name = first_file_name(release_copy)
    execute(release_copy, "UPDATE annotations SET category='airplane' WHERE file_name=?", name)
    output = tmp_path / "out"
    with pytest.raises(fd.FocusDataError, match=rf"row 1 \(file_name '{name}'\): unknown category 'airplane'"):
        convert.convert(release_copy, output)
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
        convert.convert(release_copy, tmp_path / "out")


@pytest.mark.parametrize("member", ["../evil.jpg", "/etc/evil.jpg", "focus/../../evil.jpg"])
def test_archive_member_with_absolute_path_or_dotdot_is_refused(tmp_path, sample_zip, member):
    archive = tmp_path / "focus.zip"
    with zipfile.ZipFile(sample_zip) as source, zipfile.ZipFile(archive, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr(member, b"x")
    with pytest.raises(fd.FocusDataError, match=f"refusing archive member '{member}'"):
        convert.convert(archive, tmp_path / "out")


def test_file_name_with_dotdot_in_the_database_is_an_invalid_row(tmp_path, release_copy):
    execute(release_copy, "UPDATE annotations SET file_name='/../../etc/passwd' WHERE file_name=?",
            first_file_name(release_copy))
    with pytest.raises(fd.FocusDataError, match="without '..'"):
        convert.convert(release_copy, tmp_path / "out")


def test_missing_annotations_db_says_what_was_expected_and_where(tmp_path, release_copy):
    (release_copy / "annotations.db").unlink()
    with pytest.raises(fd.FocusDataError, match=f"{release_copy}: no annotations.db; expected "
                                                 f"{release_copy / 'annotations.db'}"):
        convert.convert(release_copy, tmp_path / "out")
    empty_zip = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("focus/truck-snow/1.jpg", b"x")
    with pytest.raises(fd.FocusDataError, match="no annotations.db in the archive"):
        convert.convert(empty_zip, tmp_path / "out")


# --- a folder release: regular files inside it only -------------------------------------------------


@pytest.fixture
def no_hang():
    """Fail a test that blocks (reading a FIFO) instead of hanging the suite."""
    def timeout(*_):
        pytest.fail("blocked for 20 s")
    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def replace_first_image(release, make) -> str:
    name = first_file_name(release).lstrip("/")
    (release / name).unlink()
    make(release / name)
    return name


def make_device(path):
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # the device /dev/zero is
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")


@pytest.mark.parametrize("make, kind", [
    (lambda p: p.symlink_to("/etc/passwd"), "a symbolic link"),
    (lambda p: p.symlink_to("/dev/zero"), "a symbolic link"),
    (lambda p: p.symlink_to("../../outside.jpg"), "a symbolic link"),
    (os.mkfifo, "a FIFO"),
    (make_device, "a device"),
    (lambda p: p.mkdir(), "a folder"),
], ids=["link-to-passwd", "link-to-dev-zero", "link-outside", "fifo", "device", "folder"])
def test_an_image_that_is_not_a_regular_file_is_refused_and_never_read(tmp_path, release_copy, no_hang, make, kind):
    (tmp_path / "outside.jpg").write_bytes(b"\xff\xd8\xff outside the release \xff\xd9")
    name = replace_first_image(release_copy, make)
    report = convert.convert(release_copy, tmp_path / "out")
    problems = {p["file_name"]: p["problem"] for p in report["image_problems"]}
    assert problems == {name: f"{kind}, not a regular file: refused"}
    data = b"".join(p.read_bytes() for p in (tmp_path / "out" / "data").iterdir())
    assert b"root:" not in data and b"outside the release" not in data
    result = validate.validate(release_copy)
    assert result.errors == [f"{release_copy}: image {name}: {kind}, not a regular file: refused"]


def test_an_image_in_a_linked_folder_is_refused(tmp_path, release_copy):
    name = first_file_name(release_copy).lstrip("/")
    folder = release_copy / name.split("/")[0]
    shutil.move(folder, tmp_path / "elsewhere")
    folder.symlink_to(tmp_path / "elsewhere")
    report = convert.convert(release_copy, tmp_path / "out")
    assert {p["file_name"]: p["problem"] for p in report["image_problems"]}[name] == \
        "in a folder that is a symbolic link: refused"


def test_an_image_larger_than_the_limit_is_refused_without_reading_it(tmp_path, release_copy):
    name = replace_first_image(release_copy, lambda p: os.truncate(p.write_bytes(b"") or p, 65 * 2**20))
    report = convert.convert(release_copy, tmp_path / "out")
    assert report["image_problems"] == [{"file_name": name, "problem": "65 MB, more than the 64 MB limit for an "
                                                                        "image file: refused"}]


@pytest.mark.parametrize("make", [lambda p, target: p.symlink_to(target), lambda p, target: os.mkfifo(p)],
                         ids=["link", "fifo"])
def test_annotations_db_that_is_not_a_regular_file_is_refused(tmp_path, release_copy, no_hang, make):
    database = release_copy / "annotations.db"
    shutil.move(database, tmp_path / "real.db")
    make(database, tmp_path / "real.db")
    with pytest.raises(fd.FocusDataError, match="annotations.db: .*not a regular file: refused"):
        convert.convert(release_copy, tmp_path / "out")


def test_release_root_that_is_a_linked_folder_is_refused(tmp_path, sample_release):
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    (unpacked / "focus").symlink_to(sample_release)
    with pytest.raises(fd.FocusDataError, match="unpacked/focus: .*a symbolic link, not a folder: refused"):
        convert.convert(unpacked, tmp_path / "out")


def test_two_release_folders_in_one_folder_are_refused_naming_both(tmp_path, sample_release):
    for name in ("a", "b"):
        shutil.copytree(sample_release, tmp_path / "both" / name)
    with pytest.raises(fd.FocusDataError, match=r"two releases: .*a/annotations.db and .*b/annotations.db"):
        convert.convert(tmp_path / "both", tmp_path / "out")


def test_a_fifo_as_the_release_is_refused(tmp_path, no_hang):
    os.mkfifo(tmp_path / "focus.zip")
    with pytest.raises(fd.FocusDataError, match="focus.zip: not a FOCUS release"):
        convert.convert(tmp_path / "focus.zip", tmp_path / "out")


def test_validate_never_reads_a_file_named_outside_the_release(tmp_path, release_copy, monkeypatch):
    (tmp_path / "outside.jpg").write_bytes(b"not an image")
    execute(release_copy, "UPDATE annotations SET file_name='/../outside.jpg' WHERE file_name=?",
            first_file_name(release_copy))
    read = []
    original = release.Release.read
    monkeypatch.setattr(release.Release, "read", lambda self, name: read.append(name) or original(self, name))
    result = validate.validate(release_copy)
    assert any("file_name '/../outside.jpg' must be" in e for e in result.errors)
    assert read and not any(".." in name for name in read)
    assert not any("outside.jpg: undecodable" in e for e in result.errors)
    with release.Release(release_copy) as opened, pytest.raises(fd.FocusDataError, match="outside the release"):
        opened.read("../outside.jpg")


# --- zip: sizes checked before anything is read ----------------------------------------------------


def rewrite_zip(source, target, extra=(), declared=None):
    """A copy of a zip with extra members, and with `declared` = {name: size} lying in its headers."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            new.writestr(item, old.read(item))
        for name, data in extra:
            new.writestr(name, data)
    data = bytearray(Path(target).read_bytes())
    for name, size in (declared or {}).items():
        encoded = name.encode()
        for signature, offset, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
            at = data.find(signature)
            while at >= 0 and data[at + name_at: at + name_at + len(encoded)] != encoded:
                at = data.find(signature, at + 1)
            struct.pack_into("<I", data, at + offset, size)
    Path(target).write_bytes(bytes(data))
    return target


def zip_name(sample_zip) -> str:
    with zipfile.ZipFile(sample_zip) as archive:
        return sorted(n for n in archive.namelist() if n.endswith(".jpg"))[0]


def test_zip_member_declaring_3_gib_is_refused_before_reading(tmp_path, sample_zip):
    member = zip_name(sample_zip)
    archive = rewrite_zip(sample_zip, tmp_path / "focus.zip", declared={member: 3 * 2**30})
    report = convert.convert(archive, tmp_path / "out")
    name = member.split("/", 1)[1]
    problem = "archive member declares 3,072 MB, more than the 64 MB limit for an image file: refused"
    assert report["image_problems"] == [{"file_name": name, "problem": problem}]


def test_zip_member_with_a_suspicious_compression_ratio_is_refused(tmp_path, sample_zip):
    member = zip_name(sample_zip)
    with zipfile.ZipFile(sample_zip) as old, zipfile.ZipFile(tmp_path / "focus.zip", "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            data = b"\0" * (40 * 2**20) if item.filename == member else old.read(item)
            new.writestr(item.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    report = convert.convert(tmp_path / "focus.zip", tmp_path / "out")
    [problem] = report["image_problems"]
    assert problem["problem"].startswith("archive member compressed") and "refused" in problem["problem"]


def test_zip_member_larger_than_it_declares_is_an_image_problem(tmp_path, sample_zip):
    member = zip_name(sample_zip)
    archive = rewrite_zip(sample_zip, tmp_path / "focus.zip", declared={member: 100})
    report = convert.convert(archive, tmp_path / "out")
    [problem] = report["image_problems"]
    assert problem["problem"].startswith("corrupt archive member: ")


def test_zip_database_declaring_a_huge_size_is_refused(tmp_path, sample_zip):
    archive = rewrite_zip(sample_zip, tmp_path / "focus.zip", declared={"focus/annotations.db": 3 * 2**30})
    with pytest.raises(fd.FocusDataError, match="annotations.db: archive member declares 3,072 MB, more than"):
        convert.convert(archive, tmp_path / "out")


def test_two_annotations_db_in_a_zip_are_refused_naming_both(tmp_path, sample_zip):
    with zipfile.ZipFile(sample_zip) as archive:
        database = archive.read("focus/annotations.db")
    archive = rewrite_zip(sample_zip, tmp_path / "focus.zip", extra=[("focus/old/annotations.db", database)])
    with pytest.raises(fd.FocusDataError, match="two annotations.db: 'focus/annotations.db' and "
                                                "'focus/old/annotations.db'"):
        convert.convert(archive, tmp_path / "out")


# --- annotation text: clean errors naming the row and the field --------------------------------------


def test_non_utf8_annotation_text_names_the_row_and_the_field(tmp_path, release_copy, capsys):
    execute(release_copy, "UPDATE annotations SET weather=CAST(X'FF73756E6E79' AS TEXT) WHERE file_name=?",
            first_file_name(release_copy))
    assert cli.main(["convert", str(release_copy), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "row 1" in err and "weather b'\\xffsunny' is not UTF-8 text" in err
    report = convert.convert(release_copy, tmp_path / "out", skip_invalid=True)
    assert report["num_images"] == 47 and "not UTF-8 text" in report["skipped_rows"][0]["problems"][0]


@pytest.mark.parametrize("file_name, problem", [
    ("/truck-snow/1\0.jpg", "must not hold control characters"),
    ("/truck-snow/" + "x" * 100_000 + ".jpg", "is 100,016 characters long, more than 1,024"),
])
def test_nul_bytes_and_very_long_file_names_are_invalid_rows(tmp_path, release_copy, capsys, file_name, problem):
    execute(release_copy, "UPDATE annotations SET file_name=? WHERE file_name=?", file_name,
            first_file_name(release_copy))
    assert cli.main(["convert", str(release_copy), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1 and len(err) < 1000
    assert cli.main(["validate", str(release_copy)]) == 1
    assert problem in capsys.readouterr().out


def test_a_huge_annotation_value_is_clipped_in_every_message(tmp_path, release_copy, capsys):
    execute(release_copy, "UPDATE annotations SET category=? WHERE file_name=?", "a" * 5_000_000,
            first_file_name(release_copy))
    assert cli.main(["convert", str(release_copy), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "unknown category 'aaaa" in err and "(5,000,000 characters)" in err and len(err) < 1000
    report = convert.convert(release_copy, tmp_path / "out", skip_invalid=True)
    assert len(json.dumps(report["skipped_rows"])) < 1000
    assert cli.main(["validate", str(release_copy)]) == 1
    assert len(capsys.readouterr().out) < 50_000


def test_annotations_that_is_a_view_is_refused(tmp_path, release_copy):
    # A view can compute rows without end (a recursive one); the release has a table.
    execute(release_copy, "ALTER TABLE annotations RENAME TO stored")
    execute(release_copy, "CREATE VIEW annotations AS SELECT * FROM stored")
    with pytest.raises(fd.FocusDataError, match="annotations.db: 'annotations' is a 'view', not a table"):
        convert.convert(release_copy, tmp_path / "out")


def test_a_database_with_far_more_rows_than_focus_is_refused(tmp_path, release_copy, monkeypatch):
    monkeypatch.setattr("focus_tools.release.MAX_ROWS", 40)
    with pytest.raises(fd.FocusDataError, match="annotations.db holds 48 rows, more than 40"):
        convert.convert(release_copy, tmp_path / "out")



# --- one read of a checked file: into bytes or into a caller's buffer --------------------------------


def read_into_new_buffer(file: ReleaseFile) -> bytes:
    buffer = bytearray(file.size)
    file.read_into(memoryview(buffer))
    return bytes(buffer)


def test_a_file_read_into_a_buffer_has_the_bytes_read_gives(sample_release, sample_zip):
    name = first_file_name(sample_release).lstrip("/")
    for source in (sample_release, sample_zip):
        with release.Release(source) as opened, opened.open(name) as file:
            assert read_into_new_buffer(file) == opened.read(name) == (sample_release / name).read_bytes()


@pytest.mark.parametrize("read", [lambda file: file.read(), read_into_new_buffer], ids=["read", "read_into"])
@pytest.mark.parametrize("change", [lambda path: path.open("ab").write(b"more"), lambda path: os.truncate(path, 100)],
                         ids=["grew", "shrank"])
def test_a_file_that_changes_size_between_open_and_read_is_refused(release_copy, read, change):
    name = first_file_name(release_copy).lstrip("/")
    with release.Release(release_copy) as opened, opened.open(name) as file:
        change(release_copy / name)
        with pytest.raises(release.UnreadableFile, match="^changed while read: refused$"):
            read(file)


def test_the_cheap_check_finds_the_same_problem_in_bytes_and_in_a_view_of_them():
    jpeg = b"\xff\xd8\xff\xe0" + b"\0" * 100
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 8 + struct.pack(">II", 9, 9) + b"IEND"
    for data in (jpeg, jpeg + b"\xff\xd9", png, png[:-4], b"", b"not an image"):
        assert release.check_image_bytes(memoryview(data)) == release.check_image_bytes(data)


def test_read_image_logs_and_reports_a_problem_and_reads_into_the_view_it_is_given(release_copy, caplog):
    missing, present = sorted(p.relative_to(release_copy).as_posix() for p in release_copy.rglob("*.jpg"))[:2]
    (release_copy / missing).unlink()
    report = {"image_problems": []}
    with release.Release(release_copy) as opened, caplog.at_level("WARNING", logger="focus_dataset"):
        assert read_image(opened, missing, report) is None
        buffer = bytearray(100_000)
        view = read_image(opened, present, report, into=lambda size: memoryview(buffer)[:size])
    assert bytes(view) == buffer[:len(view)] == (release_copy / present).read_bytes()
    assert report["image_problems"] == [{"file_name": missing, "problem": "missing"}]
    assert f"image {missing}: missing" in caplog.text
