"""What each command does with damaged or hostile input it reads: one line naming the file, nothing half-written."""

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from focus_tools import convert, sample
from harness import runfolder
from harness.probe import main as probe_main
from harness.run import main as eval_main

FAST = ["--models", "test_resnet", "--random-init", "--workers", "0", "--quiet", "--limit", "8"]


def damage_inside(converted, target, column="label"):
    """A copy of a converted folder whose first shard has a page header overwritten: its footer is intact."""
    shutil.copytree(converted, target)
    shard = next((target / "data").glob("*.parquet"))
    metadata = pq.ParquetFile(shard).metadata.row_group(0)
    offset = next(metadata.column(i).data_page_offset for i in range(metadata.num_columns)
                  if metadata.column(i).path_in_schema == column)
    data = bytearray(shard.read_bytes())
    data[offset:offset + 12] = b"\x99" * 12
    shard.write_bytes(bytes(data))
    return shard


@pytest.mark.parametrize("main, extra", [(eval_main, ["--figures", "none", "--n-bootstrap", "10"]), (probe_main, [])])
def test_a_shard_damaged_inside_is_named_by_focus_eval_and_focus_probe(converted, tmp_path, capsys, main, extra):
    shard = damage_inside(converted, tmp_path / "focus")
    assert main(["--data", str(tmp_path / "focus"), "--output", str(tmp_path / "run"), "--cache-dir",
                 str(tmp_path / "cache"), *FAST, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {shard}: its data cannot be read (") and err.endswith(
        "; convert the release again\n") and err.count("\n") == 1


def test_an_undecodable_image_is_recorded_without_object_addresses(tmp_path):
    release = sample.write_sample_release(tmp_path / "release", 12, seed=0)
    broken = sorted(release.rglob("*.jpg"))[0]
    broken.write_bytes(b"not an image at all")
    convert.convert(release, tmp_path / "focus")
    assert eval_main(["--data", str(tmp_path / "focus"), "--output", str(tmp_path / "run"), *FAST, "--figures",
                      "none", "--n-bootstrap", "10", "--cache-dir", str(tmp_path / "cache")]) == 0
    failed = json.loads((runfolder.model_dir(tmp_path / "run", "test_resnet") / runfolder.FAILED_FILE).read_text())
    assert failed and all(" at 0x" not in record["error"] for record in failed)


@pytest.fixture(scope="module")
def small_run(converted, tmp_path_factory):
    output = tmp_path_factory.mktemp("small") / "run"
    assert eval_main(["--data", str(converted), "--output", str(output), *FAST, "--figures", "none",
                      "--n-bootstrap", "10"]) == 0
    return output


@pytest.mark.parametrize("name, content, where", [
    ("metrics.json", [], "$: [] is not of type 'object'"),
    ("metrics.json", {"accuracy": 0.1, "n": 3, "partitions": []}, "$.partitions: [] is not of type 'object'"),
    ("config.json", {"model": "test_resnet", "preprocessing": "paper"}, "$.preprocessing: 'paper' is not of type"),
])
def test_run_folder_files_of_the_wrong_shape_are_named_with_the_field(small_run, tmp_path, capsys, name, content,
                                                                        where):
    from harness.report import main as report_main

    run = shutil.copytree(small_run, tmp_path / "run")
    runfolder.write_json(runfolder.model_dir(run, "test_resnet") / name, content)
    assert report_main([str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {runfolder.model_dir(run, 'test_resnet') / name}: {where}") and err.count("\n") == 1


@pytest.mark.parametrize("models, where", [([123], "$.models[0]: 123 is not of type 'string'"),
                                           ("resnet", "$.models: 'resnet' is not of type 'array'")])
def test_a_run_json_of_the_wrong_shape_is_named_by_the_analyses(small_run, tmp_path, capsys, models, where):
    run = shutil.copytree(small_run, tmp_path / "run")
    runfolder.write_json(run / runfolder.RUN_FILE, json.loads((run / runfolder.RUN_FILE).read_text()) | {
        "models": models})
    assert probe_main(["--run", str(run), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {run / runfolder.RUN_FILE}: {where}")


def test_a_run_json_naming_the_parent_folder_keeps_every_write_inside_the_run(small_run, tmp_path, capsys):
    run = shutil.copytree(small_run, tmp_path / "runs" / "run")
    runfolder.write_json(run / runfolder.RUN_FILE, json.loads((run / runfolder.RUN_FILE).read_text()) | {
        "models": [".."]})
    assert probe_main(["--run", str(run), "--quiet"]) == 2
    assert "'..' is not a model of the run" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run"]  # no .lock in the run's parent
    assert runfolder.model_dir(run, "..").parent == run


def test_a_run_inside_the_dataset_folder_is_refused(converted, tmp_path, capsys):
    data = shutil.copytree(converted, tmp_path / "focus")
    for main, extra in ((eval_main, ["--figures", "none"]), (probe_main, [])):
        assert main(["--data", str(data), "--output", str(data / "runs"), *FAST, *extra]) == 2
        assert f"error: --output {data / 'runs'} lies inside the dataset folder {data}" in capsys.readouterr().err
    assert sorted(p.name for p in data.iterdir()) == sorted(p.name for p in converted.iterdir())


@pytest.mark.parametrize("option, value, message", [
    ("--seed", "-1", "--seed: expected a whole number from 0 to 4,294,967,295, got '-1'"),
    ("--workers", "100000", "--workers: expected a whole number from 0 to "),
    ("--batch-size", "0", "--batch-size: expected a whole number from 1 to 65,536, got '0'"),
    ("--limit", "0", "--limit: expected a whole number from 1 to 10,000,000, got '0'"),
])
def test_option_values_out_of_range_are_usage_errors_before_anything_runs(option, value, message, capsys):
    with pytest.raises(SystemExit) as stop:
        eval_main(["--data", "nowhere", "--models", "test_resnet", option, value])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_a_sample_of_more_images_than_a_release_holds_is_refused(tmp_path, capsys):
    from focus_tools.cli import main as dataset_main

    with pytest.raises(SystemExit):
        dataset_main(["sample", str(tmp_path / "s"), "--num-images", "100000000"])
    assert "--num-images: expected a whole number from 1 to 1,000,000, got '100000000'" in capsys.readouterr().err
    with pytest.raises(sample.FocusDataError, match=r"num_images must be from 1 to 1,000,000"):
        sample.write_sample_release(tmp_path / "s", 100_000_000)
    assert not (tmp_path / "s").exists()


def test_a_yaml_mistake_is_one_line_with_its_place(tmp_path):
    from focus_tools.schema import FocusDataError, load_uncommon_table

    (tmp_path / "mine.yaml").write_text("time:\n  truck: [night\nweather: {}\n")
    with pytest.raises(FocusDataError) as error:
        load_uncommon_table(tmp_path / "mine.yaml")
    assert "\n" not in str(error.value) and " at line " in str(error.value) and ", column " in str(error.value)


def test_names_that_differ_only_in_their_unicode_form_read_differently(tmp_path):
    from focus_common.messages import quote

    composed, decomposed = "caf\u00e9.jpg", "cafe\u0301.jpg"
    assert quote(composed) != quote(decomposed) and quote(decomposed) == "'cafe\\u0301.jpg'"


def test_a_long_image_name_gets_a_short_panel_file(tmp_path):
    from harness.explanations import panel_file

    long_a, long_b = "plane-water/" + "a" * 240 + "1.jpg", "plane-water/" + "a" * 240 + "2.jpg"
    assert len(panel_file(1, long_a).encode()) < 128 and panel_file(1, long_a) != panel_file(1, long_b)


def test_model_folders_never_collide(tmp_path):
    specs = ["local-dir:/a/b", "local-dir:/a_b", "local-dir:a/b", "résnet", "rèsnet", "..", "resnet50.tv_in1k",
             "hf-hub:timm/resnet50.tv_in1k", "x" * 81]
    folders = [runfolder.model_dir(tmp_path, spec) for spec in specs]
    assert len(set(folders)) == len(specs) and all(folder.parent == tmp_path for folder in folders)
    assert all(len(folder.name.encode()) <= 80 for folder in folders)


FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    sys.path.insert(0, {repo!r})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    from harness.run import main
    sys.exit(main({argv!r}))
""")


@pytest.mark.parametrize("limit", [2_000, 9_000, 20_000])
def test_a_full_disk_ends_focus_eval_in_one_line_naming_the_file_and_leaves_no_half_written_file(
        converted, tmp_path, limit):
    output = tmp_path / "run"
    argv = ["--data", str(converted), "--output", str(output), *FAST, "--figures", "none", "--n-bootstrap", "10"]
    script = FULL_DISK.format(repo=str(Path(__file__).resolve().parents[1]), limit=limit, argv=argv)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert re.match(r"error: (test_resnet: )?/.*: cannot be written \(.*File too large", last), last
    assert "Traceback" not in result.stderr
    staged = [path for path in output.rglob(".*") if path.name not in (".lock", ".focus-written.json")]
    assert staged == []
