"""What each command does with damaged or hostile input it reads: one line naming the file, nothing half-written."""

import json
import shutil

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
