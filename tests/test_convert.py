"""focus_tools.convert: a release into a Hub-ready dataset folder, its report, its output folder."""

import json
import fcntl
import logging
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import pytest

from focus_common.ownership import Written
from focus_tools import cli, convert
import focus_dataset as fd
from conftest import execute, first_file_name, png_declaring


def test_converted_folder_is_a_hub_dataset_repository(converted):
    assert sorted(p.name for p in (converted / "data").iterdir()) == ["test-00000-of-00001.parquet"]
    card = (converted / "README.md").read_text()
    for key in ("pretty_name:", "license:", "task_categories:", "size_categories:", "configs:", "dataset_info:"):
        assert key in card
    assert "Table 1" in card and "Table 2" in card and "| P(t,w,l) |" in card
    report = json.loads((converted / convert.REPORT_NAME).read_text())
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
    convert.convert(sample_zip, from_zip)
    assert ((from_zip / "data" / "test-00000-of-00001.parquet").read_bytes()
            == (converted / "data" / "test-00000-of-00001.parquet").read_bytes())


def test_two_conversions_are_identical(tmp_path, sample_release, converted):
    again = tmp_path / "again"
    report = convert.convert(sample_release, again)
    assert (again / "data" / "test-00000-of-00001.parquet").read_bytes() == \
        (converted / "data" / "test-00000-of-00001.parquet").read_bytes()
    assert report["fingerprint"] == json.loads((converted / convert.REPORT_NAME).read_text())["fingerprint"]
    assert (again / "README.md").read_text() == (converted / "README.md").read_text()


def test_skip_invalid_writes_the_rest_and_reports_every_skipped_row(tmp_path, release_copy):
    name = first_file_name(release_copy)
    execute(release_copy, "UPDATE annotations SET weather='hail' WHERE file_name=?", name)
    report = convert.convert(release_copy, tmp_path / "out", skip_invalid=True)
    assert report["num_images"] == 47
    assert report["skipped_rows"] == [{"row": 1, "file_name": name, "problems": [
        f"unknown weather 'hail'; expected one of {fd.WEATHER_NAMES}"]}]
    saved = json.loads((tmp_path / "out" / convert.REPORT_NAME).read_text())
    assert saved["skipped_rows"][0]["file_name"] == name


def test_corrupt_image_is_kept_named_in_the_report_and_logged(tmp_path, release_copy, caplog):
    name = first_file_name(release_copy).lstrip("/")
    (release_copy / name).write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING, logger="focus_dataset"):
        report = convert.convert(release_copy, tmp_path / "out")
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
    report = convert.convert(release_copy, tmp_path / "out")
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
        convert.convert(sample_release, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_unless_overwrite(tmp_path, sample_release, converted):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    with pytest.raises(fd.FocusDataError, match="already exists and is not empty; .* --overwrite"):
        convert.convert(sample_release, output)
    assert (output / "keep.txt").read_text() == "mine"


def test_overwrite_replaces_an_earlier_conversion(tmp_path, sample_release, converted):
    output = tmp_path / "out"
    shutil.copytree(converted, output)
    # A shard of an earlier conversion that wrote more shards: --overwrite replaces only what convert
    # writes, so the stale file is one of those (a user's own file is refused, see below).
    stale = output / "data" / "test-00001-of-00002.parquet"
    stale.write_text("from before")
    Written(output).record(stale)  # as the conversion that wrote it recorded it
    convert.convert(sample_release, output, overwrite=True)
    assert not stale.exists() and (output / "README.md").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_output_that_is_a_file_is_refused(tmp_path, sample_release):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(fd.FocusDataError, match="out: is a file; OUTPUT must be a folder"):
        convert.convert(sample_release, tmp_path / "out")


# --- OUTPUT: what --overwrite may replace, partial folders, modes -----------------------------------


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overwrite_refuses_the_source_itself(release_copy):
    before = tree(release_copy)
    with pytest.raises(fd.FocusDataError, match="OUTPUT .* is the release being converted"):
        convert.convert(release_copy, release_copy, overwrite=True)
    assert tree(release_copy) == before


def test_overwrite_refuses_a_folder_that_holds_the_source(tmp_path, sample_release):
    parent = tmp_path / "parent"
    source = Path(shutil.copytree(sample_release, parent / "focus"))
    before = tree(parent)
    with pytest.raises(fd.FocusDataError, match="OUTPUT .* holds the release being converted"):
        convert.convert(source, parent, overwrite=True)
    assert tree(parent) == before


def test_overwrite_refuses_a_folder_inside_the_source(release_copy, converted):
    inside = release_copy / "converted"
    shutil.copytree(converted, inside)
    with pytest.raises(fd.FocusDataError, match="OUTPUT .* is inside the release being converted"):
        convert.convert(release_copy, inside, overwrite=True)
    assert (inside / convert.REPORT_NAME).exists()


def test_overwrite_refuses_a_folder_that_convert_did_not_write(tmp_path, sample_release):
    mine = tmp_path / "v"
    mine.mkdir()
    (mine / "thesis.tex").write_text("x")
    with pytest.raises(fd.FocusDataError, match=r"v: not a folder that focus-dataset convert wrote .*thesis\.tex"):
        convert.convert(sample_release, mine, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]


def test_overwrite_refuses_an_earlier_conversion_holding_a_users_file(tmp_path, sample_release, converted):
    output = Path(shutil.copytree(converted, tmp_path / "out"))
    (output / "notes.txt").write_text("mine")
    with pytest.raises(fd.FocusDataError, match="not a folder that focus-dataset convert wrote .*notes.txt"):
        convert.convert(sample_release, output, overwrite=True)
    assert (output / "notes.txt").read_text() == "mine"


def test_output_that_is_a_symbolic_link_is_refused(tmp_path, sample_release, converted):
    target = Path(shutil.copytree(converted, tmp_path / "target"))
    (tmp_path / "out").symlink_to(target)
    with pytest.raises(fd.FocusDataError, match="out: is a symbolic link"):
        convert.convert(sample_release, tmp_path / "out", overwrite=True)
    assert (target / convert.REPORT_NAME).exists()


def test_cli_refuses_overwrite_of_the_source_with_exit_2_and_one_line(release_copy, capsys):
    assert cli.main(["convert", str(release_copy), str(release_copy), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is the release being converted" in err


def test_keyboard_interrupt_leaves_no_partial_folder(tmp_path, sample_release, monkeypatch):
    calls = []

    def interrupted(data):
        calls.append(1)
        if len(calls) == 20:
            raise KeyboardInterrupt
        return None

    monkeypatch.setattr("focus_tools.release.check_image_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert.convert(sample_release, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_partial_folders_of_killed_conversions_are_removed_on_the_next_run(tmp_path, sample_release):
    # A conversion killed with SIGKILL leaves its partial folder; its lock died with it.
    script = (f"import os, signal\n"
              f"import focus_tools.parquet as parquet\n"
              f"def killed(*args, **kwargs): os.kill(os.getpid(), signal.SIGKILL)\n"
              f"parquet.write_parquet_shards = killed\n"
              f"import focus_tools.convert as convert\n"
              f"convert.write_parquet_shards = killed\n"
              f"convert.convert({str(sample_release)!r}, {str(tmp_path / 'out')!r})\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1])
    assert result.returncode == -9
    partials = [p.name for p in tmp_path.iterdir()]
    assert len(partials) == 1 and partials[0].startswith(".out.partial-")
    (tmp_path / ".other.partial-abc").mkdir()  # another OUTPUT's: not ours to remove
    convert.convert(sample_release, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.partial-abc", "out"]


def test_a_live_conversion_into_the_same_output_is_left_alone_and_named(tmp_path, sample_release):
    partial = tmp_path / ".out.partial-live"
    partial.mkdir()
    lock = (partial / ".lock").open("w")
    lock.write("focus-dataset convert (pid 4242 on host, since then)")
    lock.flush()
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(fd.FocusDataError, match=r"another conversion into .*out is running \(focus-dataset convert \(pid 4242 on host"):
            convert.convert(sample_release, tmp_path / "out")
        assert partial.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == [".out.partial-live"]
    finally:
        lock.close()


@pytest.mark.parametrize("umask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_output_modes_follow_the_umask(tmp_path, sample_release, umask, folder_mode, file_mode):
    previous = os.umask(umask)
    try:
        convert.convert(sample_release, tmp_path / "out")
    finally:
        os.umask(previous)
    output = tmp_path / "out"
    assert stat.S_IMODE(output.stat().st_mode) == folder_mode
    assert stat.S_IMODE((output / "data").stat().st_mode) == folder_mode
    for path in [output / "README.md", output / convert.REPORT_NAME, *(output / "data").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path


def test_unwritable_output_is_a_clean_error(sample_release, capsys):
    assert cli.main(["convert", str(sample_release), "/proc/foo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: /proc/foo: cannot write OUTPUT here") and err.count("\n") == 1


def test_reports_of_two_conversions_are_byte_identical_even_with_an_undecodable_image(tmp_path, release_copy):
    name = first_file_name(release_copy).lstrip("/")
    (release_copy / name).write_bytes(b"GIF89a not really")
    convert.convert(release_copy, tmp_path / "one")
    script = f"from focus_tools import convert; convert.convert({str(release_copy)!r}, {str(tmp_path / 'two')!r})"
    subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1], check=True, capture_output=True)
    first = (tmp_path / "one" / convert.REPORT_NAME).read_bytes()
    assert first == (tmp_path / "two" / convert.REPORT_NAME).read_bytes()
    assert b" at 0x" not in first and b"undecodable" in first


def test_decompression_bomb_is_an_image_problem_and_the_rest_is_kept(tmp_path, release_copy):
    name = first_file_name(release_copy).lstrip("/")
    (release_copy / name).write_bytes(png_declaring(30000, 30000))
    report = convert.convert(release_copy, tmp_path / "out")
    assert report["num_images"] == 48
    [problem] = report["image_problems"]
    assert problem["file_name"] == name and "30000×30000 pixels" in problem["problem"]
