"""focus-eval with models of every source, several models in one run, and the run's results table; and the
bad inputs and clashes of a run: broken weights, 16-bit images, two runs into one folder, a run folder as data."""

import csv
import fcntl
import io
import json
import logging
import os
import re
import shutil
import subprocess

import numpy as np
import PIL.Image
import pyarrow.parquet as pq
import pytest
import timm
import torch

from focus_tools import convert, sample
from focus_common import inputs, locks
import focus_dataset as fd
from harness import labels, report, run_results, runfolder
from harness.data import decode_image, subset_rows
from harness.run import main

from conftest import tiny_clip_folder

FAST = ["--batch-size", "8", "--workers", "0", "--n-bootstrap", "20", "--quiet", "--figures", "none"]


def evaluate(data, output, *models_and_options):
    return main(["--data", str(data), "--output", str(output), *FAST, *models_and_options])


def config_of(run_dir, model):
    return json.loads((runfolder.model_dir(run_dir, model) / runfolder.CONFIG_FILE).read_text())


# ------------------------------------------------------------------------------- the results table


@pytest.fixture(scope="module")
def three_model_run(converted, tmp_path_factory):
    output = tmp_path_factory.mktemp("three") / "run"
    assert evaluate(converted, output, "--models", "test_resnet", "test_efficientnet", "test_vit",
                    "--random-init") == 0
    return output


def test_results_csv_and_json_hold_one_row_per_model_sorted_by_top1(three_model_run):
    rows = list(csv.DictReader(io.StringIO((three_model_run / "results.csv").read_text())))
    assert sorted(row["model"] for row in rows) == ["test_efficientnet", "test_resnet", "test_vit"]
    top1 = [float(row["top1 (%)"]) for row in rows]  # results.csv: percent, as report.md
    assert top1 == sorted(top1, reverse=True)
    results = json.loads((three_model_run / "results.json").read_text())
    assert [row["model"] for row in results["rows"]] == [row["model"] for row in rows]
    assert [f"{100 * row['top1']:.2f}" for row in results["rows"]] == [row["top1 (%)"] for row in rows]
    for row in results["rows"]:
        metrics = json.loads((runfolder.model_dir(three_model_run, row["model"]) / "metrics.json").read_text())
        assert row["top1"] == metrics["top1"] and row["gap_overall_paper"] == metrics["gap_overall_paper"]["value"]
        assert row["P(t,w,l)"] == metrics["partitions"]["P(t,w,l)"]["accuracy"]
        assert row["preprocess"] == "paper" and row["interpolation"] == "bilinear" and row["crop_pct"] == 1.0
        assert row["label_space"] == "imagenet" and row["weights"] == "random-init"
    report = (three_model_run / "report.md").read_text()
    assert "## Results" in report and report.index("## Results") < report.index("## Models")


def test_the_results_table_is_printed_at_the_end(converted, tmp_path, capsys):
    output = tmp_path / "run"
    assert evaluate(converted, output, "--models", "test_resnet", "--random-init", "--limit", "12") == 0
    lines = capsys.readouterr().out.splitlines()
    (header_at,) = [i for i, line in enumerate(lines) if line.startswith("model ") and " top1 " in line]
    header, row = lines[header_at].split(), lines[header_at + 1].split()
    assert header[:3] == ["model", "top1", "top5"] and "gap_overall_paper" in header and row[0] == "test_resnet"
    metrics = json.loads((runfolder.model_dir(output, "test_resnet") / runfolder.METRICS_FILE).read_text())
    assert row[header.index("top1")] == f"{100 * metrics['top1']:.2f}"
    assert row[header.index("gap_overall_paper")] == f"{100 * metrics['gap_overall_paper']['value']:.2f}"


def test_the_metric_from_a_runs_predictions_and_focus_report_give_the_runs_numbers(three_model_run, tmp_path):
    import harness

    run = tmp_path / "run"  # a copy: focus-report draws figures, which the module's run must not get
    shutil.copytree(three_model_run, run)
    folder = runfolder.model_dir(run, "test_resnet")
    metrics = json.loads((folder / runfolder.METRICS_FILE).read_text())
    results = harness.load_metric().compute(**harness.metric_inputs(harness.read_predictions(
        folder / runfolder.PREDICTIONS_FILE)), seed=0, n_bootstrap=20)
    assert results["accuracy"] == pytest.approx(metrics["accuracy"])
    for key in ("gap_overall", "gap_overall_paper", "G_t", "G_w", "G_l"):
        assert results[key]["value"] == pytest.approx(metrics[key]["value"]), key
    # focus-report redraws the report from the metrics, and the figures focus-eval left out (--figures none).
    before = (run / "report.md").read_text()
    (run / "report.md").unlink()
    assert report.main([str(run)]) == 0
    after = (run / "report.md").read_text()
    assert after.startswith(before) and "## Figures" in after and "## Figures" not in before
    assert (run / runfolder.FIGURES_DIR / run_results.FIGURE3_FILE).is_file()


# ----------------------------------------------------------------------------------- model sources


def test_torchvision_and_clip_models_in_one_run_each_in_its_label_space(converted, tmp_path):
    pytest.importorskip("open_clip")
    clip_folder = tmp_path / "clip"
    tiny_clip_folder(clip_folder)
    output = tmp_path / "run"
    assert evaluate(converted, output, "--models", "torchvision:mobilenet_v3_small",
                    f"open_clip:local-dir:{clip_folder}",
                    "--random-init", "torchvision:mobilenet_v3_small", "--limit", "12") == 0
    torchvision_config = config_of(output, "torchvision:mobilenet_v3_small")
    clip_config = config_of(output, f"open_clip:local-dir:{clip_folder}")
    assert torchvision_config["source"] == "torchvision" and torchvision_config["label_space"] == "imagenet"
    assert torchvision_config["preprocessing"]["protocol"] == "paper"
    assert clip_config["source"] == "open_clip" and clip_config["label_space"] == "focus"
    assert clip_config["mapping"] is None and clip_config["weights"] == "local-dir"
    # CLIP models are preprocessed as their authors did: their own size, bicubic resize, CLIP's mean.
    assert clip_config["preprocessing"]["protocol"] == "timm"
    assert clip_config["preprocessing"]["interpolation"] == "bicubic"
    assert clip_config["zero_shot"]["num_templates"] == 80


def test_a_missing_model_fails_alone_with_keep_going(converted, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    output = tmp_path / "run"
    code = evaluate(converted, output, "--models", "hf-hub:test-org/missing", "test_resnet",
                    "--random-init", "test_resnet", "--keep-going", "--limit", "8")
    assert code == 1
    err = capsys.readouterr().err
    assert "1 of 2 model(s) failed (--keep-going):" in err and "hf-hub:test-org/missing: WeightsNotFoundError" in err
    rows = list(csv.DictReader(io.StringIO((output / "results.csv").read_text())))
    assert [row["model"] for row in rows] == ["test_resnet"]


def test_keep_going_leaves_out_a_model_that_fails_its_check_before_loading(converted, tmp_path, capsys):
    output = tmp_path / "run"
    code = evaluate(converted, output, "--models", "test_resnet", "torchvision:resnet05", "--random-init",
                    "test_resnet", "--keep-going", "--limit", "8")
    assert code == 1
    err = capsys.readouterr().err
    assert "error: torchvision:resnet05: Unknown torchvision classification model 'resnet05'" in err
    assert "1 of 2 model(s) failed (--keep-going):" in err
    assert "  torchvision:resnet05: UnknownModelError: Unknown torchvision classification model" in err
    assert (runfolder.model_dir(output, "test_resnet") / runfolder.METRICS_FILE).is_file()
    # Without --keep-going the check stops the command before any model is loaded.
    assert evaluate(converted, tmp_path / "other", "--models", "test_resnet", "torchvision:resnet05",
                    "--random-init", "test_resnet", "--limit", "8") == 2
    assert not (tmp_path / "other").exists()


def test_a_models_error_names_it_once(converted, tmp_path, capsys):
    folder = tmp_path / "no-model"
    folder.mkdir()
    assert evaluate(converted, tmp_path / "run", "--models", f"local-dir:{folder}", "--limit", "8") == 2
    assert capsys.readouterr().err == (f"error: local-dir:{folder}: {folder / 'config.json'} does not exist; "
                                       f"local-dir: takes a folder saved by timm.models.save_for_hf (config.json + "
                                       f"model.safetensors)\n")


def test_without_keep_going_the_first_failing_model_stops_the_run(converted, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert evaluate(converted, tmp_path / "run", "--models", "hf-hub:test-org/missing", "test_resnet",
                    "--random-init", "test_resnet") == 2
    assert "error: hf-hub:test-org/missing: " in capsys.readouterr().err


def test_random_init_names_a_model_of_the_run(converted, tmp_path, capsys):
    assert evaluate(converted, tmp_path / "run", "--models", "test_resnet", "--random-init", "resnet50") == 2
    assert "--random-init ['resnet50']: not among the models ['test_resnet']" in capsys.readouterr().err


def test_models_file_and_wildcards_name_the_models(converted, tmp_path):
    models_file = tmp_path / "models.txt"
    models_file.write_text("# tiny models: a name and a wildcard\ntest_resnet\ntest_efficientnet_[eg]*\n")
    output = tmp_path / "run"
    assert evaluate(converted, output, "--models-file", str(models_file), "--random-init", "--limit", "8") == 0
    assert json.loads((output / "run.json").read_text())["models"] == ["test_resnet", "test_efficientnet_evos",
                                                                     "test_efficientnet_gn"]


# ------------------------------------------------------------------------------------------ subsets


def test_stratified_subset_keeps_class_shares_and_the_report_names_it(converted, tmp_path):
    labels = np.repeat(np.arange(4), [40, 30, 20, 10])
    chosen = subset_rows(labels, 10, "stratified", seed=3)
    assert np.bincount(labels[chosen]).tolist() == [4, 3, 2, 1]
    assert subset_rows(labels, 10, "first").tolist() == list(range(10))
    assert not np.array_equal(subset_rows(labels, 10, "random", 0), subset_rows(labels, 10, "random", 1))
    output = tmp_path / "run"
    assert evaluate(converted, output, "--models", "test_resnet", "--random-init", "--limit", "12", "--subset",
                    "stratified", "--seed", "5") == 0
    assert json.loads((output / "run.json").read_text())["subset"] == {"how": "stratified", "limit": 12, "seed": 5,
                                                                       "num_images": 12}
    assert "--limit 12 --subset stratified" in (output / "report.md").read_text()


# ------------------------------------------------------------------------------------- bad inputs


def test_non_finite_logits_are_an_error_naming_the_model_and_the_first_image(converted, tmp_path, capsys):
    model = timm.create_model("test_resnet")
    broken = {name: torch.full_like(tensor, float("nan")) if tensor.is_floating_point() else tensor
              for name, tensor in model.state_dict().items()}
    checkpoint = tmp_path / "nan.pth"
    torch.save(broken, checkpoint)
    code = evaluate(converted, tmp_path / "run", "--models", "test_resnet", "--checkpoint",
                    f"test_resnet={checkpoint}", "--limit", "8")
    assert code == 2
    err = capsys.readouterr().err
    assert "error: test_resnet: test_resnet gave non-finite logits (NaN or infinity) for 8 image(s) of a batch" in err
    assert re.search(r"the first [a-z]+-[^ ]+\.jpg: ", err) and not (tmp_path / "run" / "test_resnet" / "metrics.json").exists()


def test_a_16_bit_grayscale_png_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 48 * 64).reshape(48, 64).astype(np.uint16)
    buffer = io.BytesIO()
    PIL.Image.fromarray(ramp).save(buffer, format="PNG")
    decoded = np.asarray(decode_image(buffer.getvalue()))
    assert decoded.shape == (48, 64, 3) and decoded.dtype == np.uint8
    assert abs(decoded.mean() - 127.5) < 1 and (decoded == 255).mean() < 0.01
    np.testing.assert_array_equal(decoded[..., 0], np.rint(ramp / 257).astype(np.uint8))


def test_a_second_run_of_the_same_model_into_one_folder_stops_naming_the_first(converted, tmp_path, capsys):
    model_dir = runfolder.model_dir(tmp_path / "run", "test_resnet")
    model_dir.mkdir(parents=True)
    with locks.folder_lock(model_dir, "focus-eval of test_resnet"):
        assert evaluate(converted, tmp_path / "run", "--models", "test_resnet", "--random-init") == 2
    err = capsys.readouterr().err
    assert f"is in use by focus-eval of test_resnet (pid {os.getpid()} on " in err
    assert "wait for it to finish, or write to another --output" in err and "--no-resume" not in err


def test_a_stale_lock_of_a_killed_run_is_detected_and_taken(converted, tmp_path, caplog):
    model_dir = runfolder.model_dir(tmp_path / "run", "test_resnet")
    model_dir.mkdir(parents=True)
    (model_dir / locks.LOCK_FILE).write_text("focus-eval of test_resnet (pid 999999 on host, since then)")
    assert evaluate(converted, tmp_path / "run", "--models", "test_resnet", "--random-init", "--limit", "8") == 0
    assert "a stale lock of focus-eval of test_resnet (pid 999999" in caplog.text
    handle = open(model_dir / locks.LOCK_FILE)  # let go of: another command may take it
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert handle.read() == ""
    handle.close()


def test_a_run_folder_passed_as_data_is_named(three_model_run, tmp_path, capsys):
    assert evaluate(three_model_run, tmp_path / "run", "--models", "test_resnet", "--random-init") == 2
    err = capsys.readouterr().err
    assert f"error: {three_model_run}: a focus-eval run folder: it holds no data/*.parquet shards" in err
    assert "Traceback" not in err


def test_an_output_that_cannot_be_created_is_a_clean_error(converted, capsys):
    assert evaluate(converted, "/proc/focus-run", "--models", "test_resnet", "--random-init") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "/proc/focus-run" in err and "Traceback" not in err


# ------------------------------------------------------------------------------ the analyses reuse a run


@pytest.fixture(scope="module")
def checkpoint_run(converted, tmp_path_factory):
    """A focus-eval run of test_resnet with weights from a checkpoint file, under the timm preprocessing."""
    folder = tmp_path_factory.mktemp("checkpoint_run")
    torch.manual_seed(1)
    checkpoint = folder / "weights.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), checkpoint)
    output = folder / "run"
    assert evaluate(converted, output, "--models", "test_resnet", "--checkpoint", f"test_resnet={checkpoint}",
                    "--preprocess", "timm") == 0
    return output, checkpoint


def test_gradcam_and_probe_take_the_runs_weights_preprocessing_and_data(checkpoint_run):
    from harness import gradcam, probe

    run, checkpoint = checkpoint_run
    assert gradcam.main(["--run", str(run), "--max-images", "2", "--batch-size", "2", "--quiet"]) == 0
    header = json.loads((runfolder.model_dir(run, "test_resnet") / "gradcam" / "gradcam.json").read_text())
    assert header["weights"] == f"checkpoint:{checkpoint}" and header["preprocessing"]["protocol"] == "timm"
    assert probe.main(["--run", str(run), "--batch-size", "8", "--workers", "0", "--quiet"]) == 0
    features = json.loads((runfolder.model_dir(run, "test_resnet") / "features.json").read_text())
    assert features["sha256"] == config_of(run, "test_resnet")["sha256"]
    assert features["preprocessing"] == config_of(run, "test_resnet")["preprocessing"]


def test_the_analyses_of_a_run_on_a_subset_see_the_runs_images(converted, tmp_path, capsys, caplog):
    from harness import gradcam, probe

    caplog.set_level(logging.INFO)
    checkpoint = tmp_path / "weights.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), checkpoint)
    run = tmp_path / "run"
    selection = ["--limit", "32", "--subset", "stratified", "--seed", "3", "--categories", *fd.CLASS_NAMES[:8]]
    assert evaluate(converted, run, "--models", "test_resnet", "--checkpoint", f"test_resnet={checkpoint}",
                    *selection) == 0
    assert json.loads((run / runfolder.RUN_FILE).read_text())["selection"]["seed"] == 3
    assert gradcam.main(["--run", str(run), "--max-images", "2", "--batch-size", "2", "--quiet"]) == 0
    assert "the run's images, --limit 32 --categories truck car" in caplog.text
    assert probe.main(["--run", str(run), "--batch-size", "8", "--workers", "0", "--quiet"]) == 0
    features = json.loads((runfolder.model_dir(run, "test_resnet") / "features.json").read_text())
    assert features["num_images"] == 32
    # Other images than the run's are refused, saying which the run evaluated.
    capsys.readouterr()
    assert gradcam.main(["--run", str(run), "--limit", "10", "--max-images", "1", "--quiet"]) == 2
    assert ("these images (--limit 10 --seed 0) are not those the run evaluated (--limit 32 --categories truck car"
            in capsys.readouterr().err)


def test_the_analyses_of_a_clip_run_build_its_head_from_the_runs_prompts(converted, tmp_path, capsys):
    pytest.importorskip("open_clip")
    from harness import gradcam
    from harness.models.preparation import models_of_run, prepare_model

    clip = f"open_clip:local-dir:{tmp_path / 'clip'}"
    tiny_clip_folder(tmp_path / "clip")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of a {}.\n")
    run = tmp_path / "run"
    assert evaluate(converted, run, "--models", clip, "--random-init", "--prompts", str(prompts), "--limit", "8") == 0
    options = gradcam.gradcam_options(gradcam.build_parser().parse_args(["--run", str(run)]))
    _, info, _ = prepare_model(clip, options, models_of_run(run).configs[clip])
    assert info.zero_shot["num_templates"] == 1
    assert info.zero_shot["templates_sha256"] == inputs.sha256_file(prompts)
    # Other templates would be another classifier than the one whose predictions are explained.
    other = tmp_path / "other.txt"
    other.write_text("a blurry photo of a {}.\n")
    assert gradcam.main(["--run", str(run), "--prompts", str(other), "--max-images", "1", "--quiet"]) == 2
    assert (f"error: {clip}: the prompt templates ({other}) are not the ones the run used ({prompts.resolve()})"
            in capsys.readouterr().err)
    # Without the run's prompt file the run's head cannot be built again.
    prompts.unlink()
    assert gradcam.main(["--run", str(run), "--max-images", "1", "--quiet"]) == 2
    assert (f"error: {clip}: the run built its zero-shot head from the prompts in {prompts.resolve()}, which is "
            f"gone; pass the same file with --prompts" in capsys.readouterr().err)


def test_random_weights_cannot_explain_a_trained_run(checkpoint_run, capsys):
    from harness import gradcam

    run, _ = checkpoint_run
    assert gradcam.main(["--run", str(run), "--random-init", "--max-images", "1", "--quiet"]) == 2
    assert ("--random-init test_resnet: the run evaluated test_resnet with trained weights (checkpoint:"
            in capsys.readouterr().err)


def test_other_weights_than_the_runs_are_refused(checkpoint_run, tmp_path, capsys):
    from harness import gradcam

    run, _ = checkpoint_run
    other = tmp_path / "other.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), other)
    assert gradcam.main(["--run", str(run), "--checkpoint", f"test_resnet={other}", "--max-images", "1",
                         "--quiet"]) == 2
    assert "are not the ones the run used" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- one decode, many models


def test_models_of_one_geometry_share_a_decoded_pass_and_predict_exactly_as_alone(converted, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="focus-eval")
    models = ["test_resnet", "test_efficientnet", "test_vit"]
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    assert evaluate(converted, shared, "--models", *models, "--random-init") == 0
    assert "one decoded pass for 3 models (test_resnet, test_efficientnet, test_vit)" in caplog.text
    assert evaluate(converted, alone, "--models", *models, "--random-init", "--no-share-decode") == 0
    assert "--no-share-decode: one pass per model" in caplog.text
    for model in models:
        assert config_of(shared, model)["shared_decode"] == models and config_of(alone, model)["shared_decode"] is None
        files = [runfolder.model_dir(run, model) / runfolder.PREDICTIONS_FILE for run in (shared, alone)]
        assert files[0].read_bytes() == files[1].read_bytes(), model


def test_a_shared_pass_resumes_models_that_got_to_different_points_as_if_each_ran_alone(converted, tmp_path,
                                                                                        caplog):
    # A killed shared run: test_resnet finished, test_efficientnet saved 3 parts of 8 images, test_vit none.
    models = ["test_resnet", "test_efficientnet", "test_vit"]
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    assert evaluate(converted, shared, "--models", *models, "--random-init", "--save-every", "8") == 0
    for model, keep in (("test_efficientnet", 3), ("test_vit", 0)):
        folder = runfolder.model_dir(shared, model)
        for name in (runfolder.METRICS_FILE, runfolder.PREDICTIONS_FILE, runfolder.FAILED_FILE):
            (folder / name).unlink()
        parts = sorted((folder / runfolder.PARTS_DIR).glob("part-*.parquet"))
        assert len(parts) > keep
        for part in parts[keep:]:
            part.unlink()
    caplog.set_level(logging.INFO, logger="focus-eval")
    assert evaluate(converted, shared, "--models", *models, "--random-init", "--save-every", "8") == 0
    n = pq.read_metadata(runfolder.model_dir(shared, "test_resnet") / runfolder.PREDICTIONS_FILE).num_rows
    assert "test_resnet: already evaluated" in caplog.text
    assert f"{n - 24} of {n} images to go" in caplog.text and f"{n} of {n} images to go" in caplog.text
    assert "one decoded pass for 2 models (test_efficientnet, test_vit)" in caplog.text
    assert evaluate(converted, alone, "--models", *models, "--random-init", "--no-share-decode") == 0
    for model in models:
        files = [runfolder.model_dir(run, model) / runfolder.PREDICTIONS_FILE for run in (shared, alone)]
        assert files[0].read_bytes() == files[1].read_bytes(), model


def test_models_of_other_geometries_get_passes_of_their_own(converted, tmp_path, caplog):
    # timm's own configs: test_resnet resizes bilinearly, test_efficientnet and test_vit bicubically.
    caplog.set_level(logging.INFO, logger="focus-eval")
    output = tmp_path / "run"
    assert evaluate(converted, output, "--models", "test_resnet", "test_efficientnet", "test_vit", "--random-init",
                    "--limit", "8", "--preprocess", "timm") == 0
    assert "one decoded pass for 2 models (test_efficientnet, test_vit)" in caplog.text
    assert config_of(output, "test_resnet")["shared_decode"] is None
    assert config_of(output, "test_vit")["shared_decode"] == ["test_efficientnet", "test_vit"]


def test_a_shared_pass_out_of_device_memory_falls_back_to_one_pass_per_model(converted, tmp_path, monkeypatch,
                                                                              caplog):
    from harness import evaluation

    evaluate_group = evaluation.evaluate_group

    def short_of_memory(accelerator, dataset, annotations, group, options):
        if len(group) > 1:  # together they do not fit; one at a time they do
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return evaluate_group(accelerator, dataset, annotations, group, options)

    monkeypatch.setattr(evaluation, "evaluate_group", short_of_memory)
    output = tmp_path / "run"
    # No --keep-going: running out of memory together is not a model's failure.
    assert evaluate(converted, output, "--models", "test_resnet", "test_efficientnet", "--random-init",
                    "--limit", "8") == 0
    assert "test_resnet, test_efficientnet: the shared pass failed (CUDA out of memory." in caplog.text
    for model in ("test_resnet", "test_efficientnet"):
        assert (runfolder.model_dir(output, model) / runfolder.METRICS_FILE).is_file()


def test_a_failing_model_of_a_shared_pass_fails_alone_with_keep_going(converted, tmp_path, capsys):
    model = timm.create_model("test_resnet")
    checkpoint = tmp_path / "nan.pth"
    torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                for k, v in model.state_dict().items()}, checkpoint)
    output = tmp_path / "run"
    code = evaluate(converted, output, "--models", "test_resnet", "test_efficientnet", "--checkpoint",
                    f"test_resnet={checkpoint}", "--random-init", "test_efficientnet", "--limit", "8", "--keep-going")
    assert code == 1
    assert "test_resnet: ValueError: test_resnet gave non-finite logits" in capsys.readouterr().err
    assert (runfolder.model_dir(output, "test_efficientnet") / runfolder.METRICS_FILE).is_file()
    assert not (runfolder.model_dir(output, "test_resnet") / runfolder.METRICS_FILE).exists()


# ------------------------------------------------------------------------------------------- figures


def test_figures_are_drawn_in_the_background_once_the_results_are_out(converted, tmp_path, monkeypatch):
    started = []
    real = report.draw_figures_in_background
    monkeypatch.setattr(report, "draw_figures_in_background", lambda run_dir: started.append(real(run_dir)) or
                        started[-1])
    output = tmp_path / "run"
    assert main(["--data", str(converted), "--output", str(output), "--models", "test_resnet", "--random-init",
                 "--limit", "8", "--quiet", "--workers", "0", "--n-bootstrap", "10"]) == 0
    assert "](figures/figure3_partitions.png)" in (output / "report.md").read_text()
    assert started[0].wait(timeout=120) == 0, (output / "figures.log").read_text()
    assert {"figure3_partitions.png", "figure2_test_resnet.png", "heatmaps_test_resnet.png"} <= {
        path.name for path in (output / "figures").iterdir()}


def test_without_figures_the_report_links_none(converted, tmp_path):
    output = tmp_path / "run"
    assert evaluate(converted, output, "--models", "test_resnet", "--random-init", "--limit", "8") == 0
    assert not (output / "figures").exists() and "figures/" not in (output / "report.md").read_text()


def test_two_figure_drawers_take_turns(three_model_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(three_model_run, run)
    (run / "figures").mkdir()
    with locks.folder_lock(run / "figures", "this test"):
        waiting = report.draw_figures_in_background(run)
        with pytest.raises(subprocess.TimeoutExpired):
            waiting.wait(timeout=15)  # the lock is held: the drawer waits for it
        assert not list((run / "figures").glob("*.png"))
    drawers = [waiting, report.draw_figures_in_background(run)]
    assert [drawer.wait(timeout=180) for drawer in drawers] == [0, 0]
    robustness = run_results.robustness_fit(run_results.load_results(run)) is not None
    assert len(list((run / "figures").glob("*.png"))) == 1 + robustness + 2 * 3  # figure 3, robustness, 2 a model


def test_a_converted_folder_with_a_truncated_shard_is_named(converted, tmp_path, capsys):
    damaged = tmp_path / "focus"
    shutil.copytree(converted, damaged)
    shard = next((damaged / "data").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    assert evaluate(damaged, tmp_path / "run", "--models", "test_resnet", "--random-init") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and shard.name in err and "Traceback" not in err


def test_a_missing_optional_library_says_which_extra_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without(name, *args, **kwargs):
        if name in ("transformers", "open_clip"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    from harness.models import create_model

    with pytest.raises(ModuleNotFoundError, match=r"pip install 'focus-benchmark\[transformers\]'"):
        create_model("transformers:org/name")
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'focus-benchmark\[clip\]'"):
        create_model("open_clip:ViT-B-32/laion2b_s34b_b79k")


def test_models_that_do_not_fit_on_the_device_together_get_a_pass_each(caplog):
    from types import SimpleNamespace

    from harness import evaluation

    class Fake:
        def __init__(self, name):
            self.name, self.model = name, torch.nn.Linear(1000, 1000)  # 4 MB of weights
            self.preprocessing = SimpleNamespace(geometry=("one geometry",))

    group = [Fake("a"), Fake("b")]
    # 8 MB of weights together, twice over for the activations: 16 MB needed.
    assert [[e.name for e in g] for g in evaluation.shared_decode_groups(group, True, 10 * 2**20)] == [["a"], ["b"]]
    assert "a, b: too large to be on the GPU together (0.0 GB free); one pass per model" in caplog.text
    assert [[e.name for e in g] for g in evaluation.shared_decode_groups(group, True, 40 * 2**20)] == [["a", "b"]]
    assert [[e.name for e in g] for g in evaluation.shared_decode_groups(group, False, 40 * 2**20)] == [["a"], ["b"]]
    # Off GPUs (None) the models are taken to fit.
    assert [[e.name for e in g] for g in evaluation.shared_decode_groups(group, True, None)] == [["a", "b"]]


def test_device_free_memory_is_none_off_gpus_and_the_least_over_processes(monkeypatch):
    from harness import evaluation

    class Accelerator:
        device = torch.device("cpu")

    monkeypatch.setattr(evaluation, "gather_object", lambda values: values)
    assert evaluation.device_free_memory(Accelerator()) is None
    Accelerator.device = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * 2**30, 80 * 2**30))
    monkeypatch.setattr(evaluation, "gather_object", lambda values: [*values, 2 * 2**30, None])
    assert evaluation.device_free_memory(Accelerator()) == 2 * 2**30


def test_restricted_mapping_ranks_the_mapped_classes_so_top5_is_never_below_top1(converted, tmp_path):
    output = tmp_path / "run"
    assert evaluate(converted, output, "--models", "test_resnet", "--random-init", "--mapping", "restricted") == 0
    table = pq.read_table(runfolder.model_dir(output, "test_resnet") / runfolder.PREDICTIONS_FILE)
    correct, top5_correct = (table.column(c).to_numpy(zero_copy_only=False) for c in ("correct", "top5_correct"))
    assert (top5_correct | ~correct).all()
    focus_of = labels.imagenet_to_focus_index()
    first = np.array([ids[0] for ids in table.column("top5_ids").to_pylist()])
    assert (focus_of[first] == table.column("prediction").to_numpy()).all() and (focus_of[first] >= 0).all()


def test_two_commands_evaluating_other_models_into_one_output_both_keep_their_models(converted, tmp_path):
    output = tmp_path / "run"
    assert evaluate(converted, output, "--models", "test_resnet", "--random-init", "--limit", "8") == 0
    assert evaluate(converted, output, "--models", "test_efficientnet", "--random-init", "--limit", "8") == 0
    assert json.loads((output / "run.json").read_text())["models"] == ["test_resnet", "test_efficientnet"]
    rows = list(csv.DictReader(io.StringIO((output / "results.csv").read_text())))
    assert sorted(row["model"] for row in rows) == ["test_efficientnet", "test_resnet"]


def test_channels_last_is_the_default_and_part_of_what_a_resume_must_match(converted, tmp_path, capsys):
    output = tmp_path / "run"
    assert evaluate(converted, output, "--models", "test_resnet", "--random-init", "--limit", "8") == 0
    assert config_of(output, "test_resnet")["channels_last"] is True
    (runfolder.model_dir(output, "test_resnet") / runfolder.METRICS_FILE).unlink()
    assert evaluate(converted, output, "--models", "test_resnet", "--random-init", "--limit", "8",
                    "--no-channels-last") == 2
    assert "channels_last: cached True, now False" in capsys.readouterr().err


def test_a_missing_optional_library_is_one_line_from_focus_eval(converted, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "open_clip", None)  # import open_clip now raises ImportError
    assert evaluate(converted, tmp_path / "run", "--models", "open_clip:ViT-B-32/laion2b_s34b_b79k") == 2
    err = capsys.readouterr().err
    assert "pip install 'focus-benchmark[clip]'" in err and "Traceback" not in err


def test_a_lock_file_planted_as_a_link_is_refused_and_its_target_kept(converted, tmp_path, capsys):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    model_dir = runfolder.model_dir(tmp_path / "run", "test_resnet")
    model_dir.mkdir(parents=True)
    (model_dir / locks.LOCK_FILE).symlink_to(target)
    assert evaluate(converted, tmp_path / "run", "--models", "test_resnet", "--random-init", "--limit", "8") == 2
    assert "cannot be opened as a lock file" in capsys.readouterr().err and target.read_text() == "keep me"


def test_analyses_refuse_a_run_whose_data_changed(checkpoint_run, converted, tmp_path, capsys):
    from harness import gradcam

    run, _ = checkpoint_run
    other = tmp_path / "other"
    convert.convert(sample.write_sample_release(tmp_path / "release", 20, seed=3), other)
    assert gradcam.main(["--run", str(run), "--data", str(other), "--max-images", "1", "--quiet"]) == 2
    assert f"--data {other} is not the data the run evaluated (dataset fingerprint" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "message"), [
    (["--crop-pct", "0.001"], "--crop-pct must be a fraction .* from 0.1 to 2.0, got 0.001"),
    (["--img-size", "100000"], "--img-size must be a number of pixels from 1 to 4096, got 100000"),
])
def test_preprocessing_overrides_that_would_ask_for_gigapixel_images_are_refused(converted, tmp_path, capsys, option,
                                                                                 message):
    assert evaluate(converted, tmp_path / "run", "--models", "test_resnet", "--random-init", *option) == 2
    assert re.search(message, capsys.readouterr().err)


def test_n_bootstrap_is_bounded_before_any_work(converted, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", str(converted), "--output", str(tmp_path), "--models", "test_resnet", "--n-bootstrap",
              "10000000000"])
    assert exit_info.value.code == 2 and "expected a whole number from 0 to 100,000" in capsys.readouterr().err


def test_a_model_folder_that_is_a_link_is_refused_and_what_it_points_to_kept(converted, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "metrics.json").write_text("a file of the user's")
    (tmp_path / "run").mkdir()
    runfolder.model_dir(tmp_path / "run", "test_resnet").symlink_to(elsewhere)
    assert evaluate(converted, tmp_path / "run", "--models", "test_resnet", "--random-init", "--limit", "8") == 2
    assert "is a symbolic link; the harness writes in a run's own folders only" in capsys.readouterr().err
    assert (elsewhere / "metrics.json").read_text() == "a file of the user's"


def test_stale_results_are_deleted_but_nothing_the_harness_did_not_write(tmp_path, caplog):
    from focus_common.ownership import NotWrittenHere, Written

    from harness import artifacts

    model_dir = tmp_path / "model"
    parts = model_dir / "parts"
    parts.mkdir(parents=True)
    Written(parts).replace(parts / "part-00000.parquet", b"rows")
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    (model_dir / "metrics.json").symlink_to(outside)
    Written(model_dir).replace(model_dir / "predictions.parquet", b"old")
    stale = [parts, model_dir / "metrics.json", model_dir / "predictions.parquet"]

    def check() -> None:
        artifacts.check_config(model_dir / "config.json", {"model": "a"}, ["model"], holds="predictions",
                               stale=stale, resume=True, is_main=True)
    # A link is no file the harness wrote: nothing is deleted, and the message names it.
    with pytest.raises(NotWrittenHere, match=f"^{model_dir / 'metrics.json'}: not a file this toolkit wrote there"):
        check()
    assert outside.read_text() == "{}" and (model_dir / "metrics.json").is_symlink()
    (model_dir / "metrics.json").unlink()
    (parts / "notes.txt").write_text("a user's notes")
    with pytest.raises(NotWrittenHere, match=f"^{parts / 'notes.txt'}: not a file this toolkit wrote there"):
        check()
    assert (parts / "part-00000.parquet").exists() and (parts / "notes.txt").exists()
    (parts / "notes.txt").unlink()
    # What the harness wrote goes, a write it began and was killed in too (recorded before it was written).
    staged = parts / ".part-00001.parquet.0123abcd"
    written = Written(parts)
    written._save(written.records() | {staged.name: {"staged": True}})
    staged.write_bytes(b"half written")
    check()
    assert not parts.exists() and not (model_dir / "predictions.parquet").exists()
    assert "stale, making them again" in caplog.text
