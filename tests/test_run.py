"""harness/run.py end to end on the sample release with timm's tiny models (random weights)."""

import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from focus_tools import statistics
import focus_dataset as fd
from harness import runfolder, scoring
from harness.evaluation import IDENTITY_KEYS
from harness.run import main

REPO = Path(__file__).resolve().parents[1]
FAST = ["--models", "test_resnet", "--random-init", "--batch-size", "8", "--workers", "0",
        "--n-bootstrap", "50", "--quiet", "--figures", "now"]


def run_args(data, output, *extra):
    return ["--data", str(data), "--output", str(output), *FAST, *extra]


@pytest.fixture(scope="module")
def one_process_run(converted, tmp_path_factory):
    output = tmp_path_factory.mktemp("run") / "one"
    assert main(run_args(converted, output)) == 0
    return output


def predictions(run_dir, model="test_resnet"):
    return pq.read_table(runfolder.model_dir(run_dir, model) / runfolder.PREDICTIONS_FILE)


def test_run_folder_holds_predictions_metrics_report_and_figures(one_process_run, converted):
    model_dir = runfolder.model_dir(one_process_run, "test_resnet")
    table = predictions(one_process_run)
    assert table.num_rows == 48
    assert table.column("file_name").to_pylist() == sorted(table.column("file_name").to_pylist())
    assert set(scoring.PREDICTION_SCHEMA.names) <= set(table.schema.names)
    assert all(len(ids) == 5 for ids in table.column("top5_ids").to_pylist())
    metrics = json.loads((model_dir / runfolder.METRICS_FILE).read_text())
    assert metrics["n"] == 48 and metrics["n_failed_images"] == 0
    assert metrics["top1"] == pytest.approx(np.mean(table.column("correct").to_numpy()))
    config = json.loads((model_dir / runfolder.CONFIG_FILE).read_text())
    ground_truth = fd.annotation_table(fd.load_focus(converted))
    assert config["dataset_fingerprint"] == statistics.dataset_fingerprint(ground_truth)
    assert config["random_init"] is True and config["weights"] == "random-init"
    assert config["input_size"] == [3, 160, 160] and config["versions"]["timm"]
    run = json.loads((one_process_run / runfolder.RUN_FILE).read_text())
    assert run["command"] == "run.py " + " ".join(run_args(converted, one_process_run)) or \
        run["command"].endswith(" ".join(run_args(converted, one_process_run)))
    assert run["models"] == ["test_resnet"] and run["dataset_fingerprint"] == config["dataset_fingerprint"]
    report = (one_process_run / runfolder.REPORT_FILE).read_text()
    assert "random" in report.lower()
    figures = sorted(p.name for p in (one_process_run / runfolder.FIGURES_DIR).glob("*.png"))
    assert "figure3_partitions.png" in figures and any(f.startswith("heatmaps_") for f in figures)


def test_labels_and_attributes_in_predictions_come_from_the_dataset(one_process_run, converted):
    table = predictions(one_process_run)
    ground_truth = fd.annotation_table(fd.load_focus(converted))
    for column in ("file_name", "label", "partition", "locations", "uncommon_locations"):
        assert table.column(column).to_pylist() == ground_truth.column(column).to_pylist()
    label = table.column("label").to_numpy()
    assert (table.column("correct").to_numpy() == (table.column("prediction").to_numpy() == label)).all()


@pytest.mark.slow
def test_two_processes_give_identical_predictions(one_process_run, converted, tmp_path):
    output = tmp_path / "two"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               str(REPO / "harness" / "run.py"), *run_args(converted, output, "--batch-size", "5")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = predictions(one_process_run), predictions(output)
    assert two.num_rows == 48  # 5 steps of 2 processes x 5 images = 50: the 2 padded duplicates dropped
    for column in ("file_name", "prediction", "top5_ids", "correct"):
        assert one.column(column).to_pylist() == two.column(column).to_pylist(), column
    np.testing.assert_allclose(np.array(one.column("top5_probs").to_pylist()),
                               np.array(two.column("top5_probs").to_pylist()), rtol=1e-5)
    assert json.loads((runfolder.model_dir(output, "test_resnet") / "config.json").read_text())["num_processes"] == 2


@pytest.mark.slow
def test_an_error_on_the_main_process_after_the_loop_ends_every_process(converted, tmp_path):
    # Before, the other process waited for ever at the barrier after the main process's failed write.
    output = tmp_path / "unwritable"
    blocked = runfolder.model_dir(output, "test_resnet") / runfolder.PREDICTIONS_FILE
    (blocked / "keep").mkdir(parents=True)  # a folder with a user's file in it: no file can be renamed over it
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               str(REPO / "harness" / "run.py"), *run_args(converted, output, "--limit", "12")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode != 0 and "exitcode  : 2" in result.stderr, result.stderr[-3000:]
    # Every process stops with the same error; the main process says it, once.
    assert result.stderr.count("error: test_resnet: ") == 1 and blocked.name in result.stderr, result.stderr[-3000:]
    assert (blocked / "keep").is_dir()  # what the harness did not write is not deleted
    assert 'harness/run.py", line' not in result.stderr  # a message, not a traceback


@pytest.mark.slow
def test_a_run_killed_midway_resumes_to_the_same_results(one_process_run, converted, tmp_path):
    output = tmp_path / "killed"
    parts = runfolder.model_dir(output, "test_resnet") / runfolder.PARTS_DIR
    command = [sys.executable, str(REPO / "harness" / "run.py"), *run_args(converted, output, "--save-every", "8")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(parts.glob("part-*.parquet"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(list(parts.glob("part-*.parquet")))
    assert 2 <= done < 6, "the run was not killed midway"
    assert not (runfolder.model_dir(output, "test_resnet") / runfolder.PREDICTIONS_FILE).exists()
    assert main(run_args(converted, output, "--save-every", "8")) == 0
    resumed, uninterrupted = predictions(output), predictions(one_process_run)
    for column in ("file_name", "prediction", "top5_ids", "correct"):
        assert resumed.column(column).to_pylist() == uninterrupted.column(column).to_pylist()
    metrics = [json.loads((runfolder.model_dir(d, "test_resnet") / "metrics.json").read_text())
               for d in (output, one_process_run)]
    assert metrics[0] == metrics[1]


def test_a_finished_model_is_not_evaluated_again(one_process_run, converted, caplog):
    caplog.set_level(logging.INFO)
    before = (runfolder.model_dir(one_process_run, "test_resnet") / runfolder.PREDICTIONS_FILE).stat().st_mtime_ns
    assert main(run_args(converted, one_process_run)) == 0
    after = (runfolder.model_dir(one_process_run, "test_resnet") / runfolder.PREDICTIONS_FILE).stat().st_mtime_ns
    assert before == after and "already evaluated" in caplog.text


def test_resume_with_other_settings_is_refused(one_process_run, converted, tmp_path, capsys):
    output = tmp_path / "settings"
    shutil.copytree(one_process_run, output)
    assert main(run_args(converted, output, "--mapping", "restricted")) == 2
    err = capsys.readouterr().err
    assert "holds predictions made with other settings (mapping: cached 'paper', now 'restricted')" in err
    assert "Pass --no-resume to discard them" in err
    assert main(run_args(converted, output, "--mapping", "restricted", "--no-resume")) == 0
    config = json.loads((runfolder.model_dir(output, "test_resnet") / "config.json").read_text())
    assert config["mapping"] == "restricted"


def test_config_records_the_paper_preprocessing_and_the_report_shows_it(one_process_run):
    config = json.loads((runfolder.model_dir(one_process_run, "test_resnet") / "config.json").read_text())
    assert config["preprocessing"] == {
        "protocol": "paper", "custom": False, "input_size": [3, 160, 160], "resize": 160, "crop_pct": 1.0,
        "crop_mode": "center", "interpolation": "bilinear", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    assert "preprocessing" in IDENTITY_KEYS and "data_config" not in config
    report = (one_process_run / runfolder.REPORT_FILE).read_text()
    assert "| model | weights | preprocessing |" in report
    assert "| `test_resnet` **random weights** | **random (untrained)** | paper: 160→160 bilinear |" in report


def test_resume_with_other_preprocessing_is_refused(one_process_run, converted, tmp_path, capsys):
    output = tmp_path / "preprocessing"
    shutil.copytree(one_process_run, output)
    assert main(run_args(converted, output, "--preprocess", "timm")) == 2
    assert "holds predictions made with other settings (preprocessing: cached {'protocol': 'paper'" in \
        capsys.readouterr().err
    assert main(run_args(converted, output, "--preprocess", "timm", "--crop-pct", "0.8", "--no-resume")) == 0
    config = json.loads((runfolder.model_dir(output, "test_resnet") / "config.json").read_text())
    assert config["preprocessing"]["protocol"] == "timm" and config["preprocessing"]["custom"] is True
    assert config["preprocessing"]["resize"] == 200 and config["input_size"] == [3, 160, 160]
    assert "timm (custom): 200→160 bilinear, mean 0.5 std 0.5" in (output / runfolder.REPORT_FILE).read_text()


def test_bad_preprocessing_override_is_reported_before_anything_runs(converted, tmp_path, capsys):
    assert main(run_args(converted, tmp_path / "bad", "--mean", "0.5", "0.5")) == 2
    assert "error: --mean takes 1 value (for every channel) or 3 (R G B), got 2: [0.5, 0.5]" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_corrupt_image_is_named_left_out_of_the_metrics_and_counted_in_the_report(tmp_path, sample_release, caplog):
    release = Path(shutil.copytree(sample_release, tmp_path / "release"))
    broken = sorted(p.relative_to(release).as_posix() for p in release.rglob("*.jpg"))[3]
    (release / broken).write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG \xff\xd9")
    output = tmp_path / "run"
    assert main(run_args(release, output)) == 0  # a raw release is converted on the fly
    model_dir = runfolder.model_dir(output, "test_resnet")
    failed = json.loads((model_dir / runfolder.FAILED_FILE).read_text())
    assert [f["file_name"] for f in failed] == [broken]
    assert broken in caplog.text and "left out of the metrics" in caplog.text
    assert predictions(output).num_rows == 47
    assert json.loads((model_dir / runfolder.METRICS_FILE).read_text())["n"] == 47
    report = (output / runfolder.REPORT_FILE).read_text()
    models_section = report.split("## Models", 1)[1]
    models_row = next(line for line in models_section.splitlines() if line.startswith("| `test_resnet`"))
    assert models_row.split("|")[5:7] == [" 47 ", " 1 "]  # images scored, failed to decode


def test_bf16_and_channels_last_run_on_cpu(converted, tmp_path):
    output = tmp_path / "bf16"
    assert main(run_args(converted, output, "--precision", "bf16", "--channels-last", "--limit", "10")) == 0
    config = json.loads((runfolder.model_dir(output, "test_resnet") / "config.json").read_text())
    assert config["precision"] == "bf16" and config["channels_last"] and predictions(output).num_rows == 10


def test_unknown_model_name_lists_close_timm_names(converted, tmp_path, capsys):
    assert main(["--data", str(converted), "--output", str(tmp_path), "--models", "resnet5O", "--random-init"]) == 2
    err = capsys.readouterr().err
    assert "resnet5O" in err and "resnet50" in err


def test_filters_that_leave_no_image_are_a_clear_error(converted, tmp_path, capsys):
    assert main(run_args(converted, tmp_path, "--categories", "frog", "--times", "night", "--weathers", "snowing")) == 2
    assert "no image is left after filtering" in capsys.readouterr().err


def test_bad_checkpoint_argument_is_named(converted, tmp_path, capsys):
    assert main(run_args(converted, tmp_path, "--checkpoint", "resnet50=/x.pth")) == 2
    assert "'resnet50' is not among --models ['test_resnet']" in capsys.readouterr().err


def test_metrics_are_recomputed_when_the_bootstrap_settings_change(one_process_run, converted, tmp_path):
    output = tmp_path / "bootstrap"
    shutil.copytree(one_process_run, output)
    assert main(run_args(converted, output)[:-3] + ["--n-bootstrap", "0", "--quiet"]) == 0
    metrics = json.loads((runfolder.model_dir(output, "test_resnet") / runfolder.METRICS_FILE).read_text())
    assert metrics["config"]["n_bootstrap"] == 0 and metrics["G_t"]["ci_low"] is None


def test_a_run_killed_before_its_metrics_were_written_finishes_them(one_process_run, converted, tmp_path):
    output = tmp_path / "no-metrics"
    shutil.copytree(one_process_run, output)
    model_dir = runfolder.model_dir(output, "test_resnet")
    (model_dir / runfolder.METRICS_FILE).unlink()
    assert main(run_args(converted, output)) == 0
    assert json.loads((model_dir / runfolder.METRICS_FILE).read_text()) == \
        json.loads((runfolder.model_dir(one_process_run, "test_resnet") / runfolder.METRICS_FILE).read_text())
    assert json.loads((model_dir / runfolder.CONFIG_FILE).read_text())["finished"]


def test_an_image_predicted_twice_is_an_error_not_silently_dropped(one_process_run, converted, tmp_path, capsys):
    output = tmp_path / "twice"
    shutil.copytree(one_process_run, output)
    model_dir = runfolder.model_dir(output, "test_resnet")
    (model_dir / runfolder.METRICS_FILE).unlink()
    first_part = sorted((model_dir / runfolder.PARTS_DIR).glob("part-*.parquet"))[0]
    shutil.copy(first_part, model_dir / runfolder.PARTS_DIR / "part-99999.parquet")
    assert main(run_args(converted, output)) == 2
    assert f"{model_dir}: 48 image(s) have predictions twice or more in its part files, e.g. [" in capsys.readouterr().err


def test_no_resume_discards_only_the_harness_files(one_process_run, converted, tmp_path):
    output = tmp_path / "others"
    shutil.copytree(one_process_run, output)
    model_dir = runfolder.model_dir(output, "test_resnet")
    (model_dir / "features.json").write_text("{}")  # another tool's file in the same folder
    assert main(run_args(converted, output, "--no-resume")) == 0
    assert (model_dir / "features.json").read_text() == "{}"
    assert predictions(output).num_rows == 48


def test_the_report_covers_every_model_evaluated_in_the_run_folder(one_process_run, converted, tmp_path):
    output = tmp_path / "two-models"
    shutil.copytree(one_process_run, output)
    assert main(["--data", str(converted), "--output", str(output), "--models", "test_efficientnet",
                 "--random-init", "--workers", "0", "--n-bootstrap", "20", "--quiet", "--limit", "48"]) == 0
    assert json.loads((output / runfolder.RUN_FILE).read_text())["models"] == ["test_resnet", "test_efficientnet"]
    report = (output / runfolder.REPORT_FILE).read_text()
    assert "| `test_resnet`" in report and "| `test_efficientnet`" in report
