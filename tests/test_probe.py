"""harness/probe.py: the probes' statistics on planted signals, and focus-probe end to end on the sample release."""

import doctest
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import timm
import torch

from focus_tools import convert, sample, statistics
from focus_common import locks
import focus_dataset as fd
from harness import artifacts, distributed, probe_features, probe_report, runfolder, scoring
from harness import probe_cells as probe_cells_module
from focus_common.ownership import MANIFEST, Written
from harness.probe import main
from harness.probe_cells import (
    INTERVAL_CONFIDENCE,
    PROBE_LOCATIONS,
    add_similar_classes,
    balanced_split,
    classifier_matrix,
    cosine_similarities,
    fit_probe,
    location_presence,
    probe_cells,
)
from harness.probe_features import (
    FEATURES_CONFIG_FILE,
    FEATURES_FILE,
    FEATURES_PARTS_DIR,
    feature_resumable,
    features_matrix,
)
from harness.probe_report import PROBES_HEATMAP, PROBES_JSON, PROBES_MD, probes_json

REPO = Path(__file__).resolve().parents[1]
FAST = ["--models", "test_resnet", "--random-init", "--batch-size", "8", "--workers", "0", "--quiet",
        "--min-images", "2"]


def planted(n_per_side=300, dim=32, strength=4.0, seed=0):
    """Features in which the location is encoded along one direction, plus noise."""
    rng = np.random.default_rng(seed)
    present = np.repeat([True, False], n_per_side)
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    features = rng.normal(size=(2 * n_per_side, dim)) + strength * present[:, None] * direction + 5.0
    return features.astype(np.float32), present, direction


# ---------------------------------------------------------------------------------- statistics

@pytest.mark.parametrize("module", [probe_cells_module, probe_features, probe_report])
def test_doctests_pass(module):
    assert doctest.testmod(module).failed == 0


def test_linearly_encoded_location_gives_probe_accuracy_near_one():
    features, present, _ = planted()
    probe = fit_probe(features, present, seed=1)
    assert probe["accuracy"] >= 0.97
    assert probe["n_train"] + probe["n_test"] == 600 and probe["n_test"] == 180


def test_shuffled_location_labels_give_chance_accuracy():
    features, present, _ = planted(n_per_side=600)
    shuffled = np.random.default_rng(3).permutation(present)
    accuracies = [fit_probe(features, shuffled, seed=seed)["accuracy"] for seed in range(3)]
    assert abs(np.mean(accuracies) - 0.5) < 0.06


def test_probe_weights_act_on_the_raw_features():
    # The standardisation is folded into [w, b]: sign(x.w + b) reproduces the probe on raw features,
    # which is what makes them comparable with the model's classifier rows.
    features, present, direction = planted()
    weights = fit_probe(features, present, seed=1)["weights"]
    predicted = features @ weights[:-1] + weights[-1] > 0
    assert (predicted == present).mean() >= 0.97
    assert cosine_similarities(weights[None, :-1], direction[None])[0, 0] > 0.5


def test_balanced_split_holds_as_many_with_as_without_in_train_and_test():
    present = np.r_[np.ones(25, bool), np.zeros(80, bool)]
    train, test = balanced_split(present, test_size=0.3, seed=0)
    assert present[train].sum() == (~present[train]).sum() == 17
    assert present[test].sum() == (~present[test]).sum() == 8
    assert not set(train) & set(test)
    again = balanced_split(present, test_size=0.3, seed=0)
    assert all((a == b).all() for a, b in zip((train, test), again))


def test_balanced_split_needs_two_images_each_side():
    with pytest.raises(ValueError, match="at least 2 images with and 2 without the location, got 1 with and 9 without"):
        balanced_split(np.r_[True, np.zeros(9, bool)])


def test_probe_intervals_are_the_metrics_wilson_interval():
    # One implementation: the probes use the metric's interval, clipped to exactly 1 at 100% accuracy.
    features, present, _ = planted(n_per_side=30, dim=8, strength=10.0)
    label = np.full(60, fd.CLASS_NAMES.index("car"))
    locations = [[fd.LOCATION_NAMES.index("snow" if p else "none")] for p in present]
    cell = next(c for c in probe_cells(features, label, location_presence(locations)) if c["status"] == "trained")
    low, high = scoring.load_metric_module().wilson_interval(cell["n_correct"], cell["n_test"], INTERVAL_CONFIDENCE)
    assert cell["interval"] == [float(low), float(high)]
    assert cell["accuracy"] == 1.0 and cell["interval"][1] == 1.0
    assert not hasattr(probe_cells_module, "wilson_interval") and not hasattr(probe_cells_module, "WILSON_Z")


def test_metrics_wilson_interval_is_vectorised_clipped_and_nan_for_no_images():
    wilson_interval = scoring.load_metric_module().wilson_interval
    low, high = wilson_interval(np.array([0, 5, 10, 0]), np.array([10, 10, 10, 0]))
    assert low[0] == 0.0 and high[2] == 1.0
    assert low[1] == pytest.approx(0.2366, abs=1e-4) and high[1] == pytest.approx(0.7634, abs=1e-4)
    assert np.isnan(low[3]) and np.isnan(high[3])
    with pytest.raises(ValueError, match=r"confidence must be a number strictly between 0 and 1 \(e.g. 0.95\), got 95"):
        wilson_interval(1, 2, 95)


def test_location_presence_counts_every_location_of_an_image():
    presence = location_presence([[1], [6, 7], [8], []])
    assert presence.shape == (4, len(fd.LOCATION_NAMES))
    assert presence.sum(axis=1).tolist() == [1, 2, 1, 0] and presence[1, 7] and presence[2, 8]


def test_cells_below_min_images_are_trained_and_marked_small_only_unsplittable_cells_are_too_small():
    # Before issue 9, cells below --min-images were not trained; now they are trained and marked small.
    features, present, _ = planted(n_per_side=30, dim=8, strength=10.0)
    label = np.full(60, fd.CLASS_NAMES.index("car"))
    snow = fd.LOCATION_NAMES.index("snow")
    locations = [[snow] if p else [fd.LOCATION_NAMES.index("none")] for p in present]
    cells = probe_cells(features, label, location_presence(locations), min_images=20)
    assert len(cells) == len(fd.CLASS_NAMES) * len(PROBE_LOCATIONS)
    by_pair = {(c["class"], c["location"]): c for c in cells}
    assert by_pair["car", "snow"]["status"] == "trained" and by_pair["car", "snow"]["accuracy"] > 0.9
    assert by_pair["car", "snow"]["small"] is False
    assert by_pair["car", "water"] == {"class": "car", "location": "water", "n_with": 0, "n_without": 60,
                                       "status": "too small"}
    assert by_pair["cat", "snow"]["n_with"] == by_pair["cat", "snow"]["n_without"] == 0
    assert [c["status"] for c in cells].count("trained") == 1
    stricter = {(c["class"], c["location"]): c for c in probe_cells(features, label, location_presence(locations),
                                                                      min_images=31)}
    assert stricter["car", "snow"]["status"] == "trained" and stricter["car", "snow"]["small"] is True
    assert stricter["car", "snow"]["accuracy"] == by_pair["car", "snow"]["accuracy"]
    assert [c["status"] for c in stricter.values()].count("trained") == 1


@pytest.mark.parametrize("n_with, n_without, status, n_train, n_test", [
    (1, 40, "too small", None, None),  # no image with the location left for the test set
    (2, 40, "trained", 2, 2),  # the fewest: one of each side to train, one of each to test
    (3, 40, "trained", 4, 2),  # the paper's ship/indoors
    (40, 2, "trained", 2, 2),
])
def test_every_cell_a_balanced_split_can_hold_is_trained_with_its_interval(n_with, n_without, status, n_train,
                                                                           n_test):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(n_with + n_without, 4)).astype(np.float32)
    label = np.full(n_with + n_without, fd.CLASS_NAMES.index("ship"))
    indoors, none = fd.LOCATION_NAMES.index("indoors"), fd.LOCATION_NAMES.index("none")
    locations = [[indoors]] * n_with + [[none]] * n_without
    cell = next(c for c in probe_cells(features, label, location_presence(locations))
                if (c["class"], c["location"]) == ("ship", "indoors"))
    assert (cell["status"], cell["n_with"], cell["n_without"]) == (status, n_with, n_without)
    if status == "trained":
        assert (cell["n_train"], cell["n_test"], cell["small"]) == (n_train, n_test, True)
        low, high = cell["interval"]
        assert 0 <= low <= cell["accuracy"] <= high <= 1
    assert probe_cells_module.MIN_SPLIT_IMAGES == 2


def test_small_cells_are_shown_in_parentheses_and_hatched_not_hidden():
    cells = [{"class": "car", "location": "snow", "n_with": 30, "n_without": 30, "status": "trained", "small": False,
              "accuracy": 0.75, "n_correct": 15, "n_train": 40, "n_test": 20, "interval": [0.5, 0.9]},
             {"class": "ship", "location": "indoors", "n_with": 3, "n_without": 40, "status": "trained", "small": True,
              "accuracy": 0.5, "n_correct": 1, "n_train": 4, "n_test": 2, "interval": [0.1, 0.9]},
             {"class": "frog", "location": "snow", "n_with": 1, "n_without": 9, "status": "too small"}]
    header = {"model": "m", "weights": "w", "dim": 8, "num_images": 60, "dataset_fingerprint": "f", "C": 1.0,
              "test_size": 0.3, "seed": 0, "min_images": 20}
    markdown = probe_report.format_probes(cells, header)
    table5 = markdown.split("## Table 5")[1].split("## Every cell")[0]
    grid = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in table5.splitlines()
            if line.count("|") == len(PROBE_LOCATIONS) + 2}
    snow, indoors = PROBE_LOCATIONS.index("snow"), PROBE_LOCATIONS.index("indoors")
    assert grid["car"][snow].strip(" |") == "75.0" and grid["ship"][indoors].strip(" |") == "(50.0)"
    assert grid["frog"][snow].strip(" |") == "—"
    assert "| ship | indoors | 3 | 40 | trained (small) | 4 | 2 | 50.0 | 10.0–90.0 |" in markdown
    assert "| frog | snow | 1 | 9 | too small | — | — | — | — |" in markdown
    assert "those with fewer than 20 on a side are small, shown in parentheses" in markdown
    assert probes_json(cells, header)["cells"][1]["small"] is True
    axes = probe_report.plot_heatmap(cells, "t").axes[0]
    assert [p.get_hatch() for p in axes.patches] == ["///"]
    assert "(50.0)" in [t.get_text() for t in axes.texts]


def test_cosine_ranking_puts_the_planted_classifier_row_first():
    rng = np.random.default_rng(0)
    probe = rng.normal(size=17)
    classifier = rng.normal(size=(40, 17))
    classifier[23] = 2.0 * probe + 0.3 * rng.normal(size=17)  # scale does not matter to a cosine
    classifier[5] = -probe
    cells = [{"class": "car", "location": "snow", "status": "trained", "weights": probe},
             {"class": "car", "location": "water", "status": "too small"}]
    add_similar_classes(cells, classifier, [f"c{i}" for i in range(40)], k=3)
    best = cells[0]["similar_classes"]
    assert [c["id"] for c in best][0] == 23 and best[0]["name"] == "c23" and best[0]["cosine"] > 0.95
    assert best[0]["cosine"] >= best[1]["cosine"] >= best[2]["cosine"]
    assert 5 not in [c["id"] for c in best] and "similar_classes" not in cells[1]
    assert cosine_similarities(probe, classifier)[0, 5] == pytest.approx(-1)


def test_classifier_rows_hold_the_bias_last():
    model = timm.create_model("test_resnet")
    rows = classifier_matrix(model)
    assert rows.shape == (1000, model.num_features + 1)
    assert np.allclose(rows[:, -1], model.get_classifier().bias.detach().numpy())


def test_classifier_that_is_not_linear_is_refused_with_the_reason():
    model = timm.create_model("test_resnet", num_classes=0)
    with pytest.raises(ValueError, match=r"linear classifier .* ResNet.get_classifier\(\) is a Identity"):
        classifier_matrix(model)


def test_too_few_images_for_table6_rows_are_rejected():
    cells = [{"class": "car", "location": "snow", "status": "trained", "weights": np.ones(5)}]
    with pytest.raises(ValueError, match="classifier takes 9 features, the probes 4"):
        add_similar_classes(cells, np.ones((3, 10)), ["a", "b", "c"], k=2)


# ---------------------------------------------------------------------------------- focus-probe end to end

@pytest.fixture(scope="module")
def probe_run(converted, tmp_path_factory):
    output = tmp_path_factory.mktemp("probe") / "run"
    assert main(["--data", str(converted), "--output", str(output), *FAST, "--save-every", "16"]) == 0
    return output


def test_default_min_images_still_trains_the_cells_of_a_small_sample_and_marks_them(probe_run, converted, tmp_path):
    # Before issue 9 the 48-image sample trained no probe at the default --min-images 20 and exited 0.
    run = shutil.copytree(probe_run, tmp_path / "run")
    assert main(["--data", str(converted), "--output", str(run), *FAST[:-2]]) == 0
    results = json.loads((runfolder.model_dir(run, "test_resnet") / PROBES_JSON).read_text())
    trained = [c for c in results["cells"] if c["status"] == "trained"]
    assert results["min_images"] == 20 and trained and all(c["small"] for c in trained)
    assert all(min(c["n_with"], c["n_without"]) >= 2 for c in trained)
    assert all(min(c["n_with"], c["n_without"]) < 2 for c in results["cells"] if c["status"] == "too small")


def test_features_are_cached_as_fixed_size_float32_lists_per_file_name(probe_run, converted):
    model_dir = runfolder.model_dir(probe_run, "test_resnet")
    table = pq.read_table(model_dir / FEATURES_FILE)
    assert table.schema.field("features").type == pa.list_(pa.float32(), 96)
    ground_truth = fd.annotation_table(fd.load_focus(converted))
    assert table.column("file_name").to_pylist() == ground_truth.column("file_name").to_pylist()
    assert np.isfinite(features_matrix(table)).all()
    config = json.loads((model_dir / FEATURES_CONFIG_FILE).read_text())
    assert config["dataset_fingerprint"] == statistics.dataset_fingerprint(ground_truth)
    assert len(config["sha256"]) == 64 and config["failed_images"] == []
    assert len(list((model_dir / FEATURES_PARTS_DIR).glob("part-*.parquet"))) == 3  # 48 images, 16 a part


def test_probes_md_shows_the_numbers_of_probes_json(probe_run):
    model_dir = runfolder.model_dir(probe_run, "test_resnet")
    results = json.loads((model_dir / PROBES_JSON).read_text(), parse_constant=lambda c: pytest.fail(c))
    markdown = (model_dir / PROBES_MD).read_text()
    assert (model_dir / PROBES_HEATMAP).stat().st_size > 1000
    assert results["num_images"] == 48 and results["min_images"] == 2 and "Random weights" in markdown
    trained = [c for c in results["cells"] if c["status"] == "trained"]
    assert trained and len(results["cells"]) == 80
    for cell in results["cells"]:
        if cell["status"] == "trained":
            low, high = cell["interval"]
            row = (f"| {cell['class']} | {cell['location']} | {cell['n_with']} | {cell['n_without']} | trained | "
                   f"{cell['n_train']} | {cell['n_test']} | {100 * cell['accuracy']:.1f} | "
                   f"{100 * low:.1f}–{100 * high:.1f} |")
            assert row in markdown
            assert cell["n_test"] % 2 == 0 and cell["n_train"] % 2 == 0
            names = ", ".join(f"{c['name']} {c['cosine']:.2f}" for c in cell["similar_classes"])
            assert f"| {cell['class']} | {cell['location']} | {names} |" in markdown
            assert len(cell["similar_classes"]) == 3  # --top-k: the paper's 3 (issue 9; it was 5)
        else:
            assert f"| {cell['class']} | {cell['location']} | {cell['n_with']} | {cell['n_without']} | too small |" \
                   in markdown
    grid_row = next(line for line in markdown.splitlines() if line.startswith(f"| {trained[0]['class']} | ")
                    and line.count("|") == len(PROBE_LOCATIONS) + 2)
    column = PROBE_LOCATIONS.index(trained[0]["location"])
    assert grid_row.split("|")[2 + column].strip() == f"{100 * trained[0]['accuracy']:.1f}"


def test_second_run_reads_the_cached_features(probe_run, converted, caplog):
    features = runfolder.model_dir(probe_run, "test_resnet") / FEATURES_FILE
    before = features.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="focus-probe"):
        assert main(["--data", str(converted), "--output", str(probe_run), *FAST, "--pairs", "dog/indoors",
                     "horse/rocks"]) == 0
    assert "features from the cache" in caplog.text and features.stat().st_mtime_ns == before
    assert "no Table 6 row for horse/rocks: too few images to split (fewer than 2 with or without the location)" \
        in caplog.text
    results = json.loads((features.parent / PROBES_JSON).read_text())
    assert [c for c in results["cells"] if "similar_classes" in c] == [
        c for c in results["cells"] if (c["class"], c["location"]) == ("dog", "indoors") and c["status"] == "trained"]


def test_killed_extraction_resumes_from_its_parts(probe_run, converted, tmp_path):
    model_dir = runfolder.model_dir(probe_run, "test_resnet")
    copy = tmp_path / "run"
    (copy / "test_resnet" / FEATURES_PARTS_DIR).mkdir(parents=True)
    # What a killed extraction leaves: its config and first part, recorded in the folders' manifests.
    for name in (FEATURES_CONFIG_FILE, f"{FEATURES_PARTS_DIR}/part-00000.parquet", MANIFEST,
                 f"{FEATURES_PARTS_DIR}/{MANIFEST}"):
        (copy / "test_resnet" / name).write_bytes((model_dir / name).read_bytes())
    assert main(["--data", str(converted), "--output", str(copy), *FAST, "--save-every", "100"]) == 0
    resumed = pq.read_table(copy / "test_resnet" / FEATURES_FILE)
    assert len(list((copy / "test_resnet" / FEATURES_PARTS_DIR).glob("part-*"))) == 2
    original = features_matrix(pq.read_table(model_dir / FEATURES_FILE))
    assert np.allclose(features_matrix(resumed), original, atol=1e-5)


def test_parts_that_do_not_merge_are_an_error_message_not_a_traceback(probe_run, converted, tmp_path, capsys):
    run = shutil.copytree(probe_run, tmp_path / "run")
    model_dir = runfolder.model_dir(run, "test_resnet")
    (model_dir / FEATURES_FILE).unlink()
    stranger = pq.read_table(next((model_dir / FEATURES_PARTS_DIR).glob("part-*.parquet"))).slice(0, 1)
    stranger = stranger.set_column(0, "file_name", pa.array(["not-in-the-dataset.jpg"]))
    artifacts.write_part(model_dir / FEATURES_PARTS_DIR, stranger)
    assert main(["--data", str(converted), "--output", str(run), *FAST]) == 2  # returned, not raised
    # The stranger would merge again on a plain rerun: the advice is to start afresh.
    assert (f"error: test_resnet: {model_dir}: features for 49 of 48 images; rerun with --no-resume"
            in capsys.readouterr().err)
    assert main(["--data", str(converted), "--output", str(run), *FAST, "--no-resume"]) == 0


def nan_checkpoint(path):
    """test_resnet's weights, every float NaN (as focus-eval's test of non-finite logits makes them)."""
    model = timm.create_model("test_resnet")
    torch.save({name: torch.full_like(tensor, float("nan")) if tensor.is_floating_point() else tensor
                for name, tensor in model.state_dict().items()}, path)
    return path


def test_non_finite_features_are_an_error_naming_the_model_and_the_first_image_and_are_not_cached(converted, tmp_path,
                                                                                                 capsys):
    checkpoint = nan_checkpoint(tmp_path / "nan.pth")
    args = ["--data", str(converted), "--output", str(tmp_path / "run"), *FAST, "--limit", "8"]
    args[args.index("--random-init")] = "--checkpoint"
    args.insert(args.index("--checkpoint") + 1, f"test_resnet={checkpoint}")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error: test_resnet: test_resnet gave non-finite features (NaN or infinity) for 8 image(s) of a batch" in err
    assert re.search(r"the first [a-z]+-[^ ]+\.jpg: ", err) and "Input X contains NaN" not in err and err.count("\n") == 1
    model_dir = runfolder.model_dir(tmp_path / "run", "test_resnet")
    assert not (model_dir / FEATURES_FILE).exists() and not list(model_dir.glob(f"{FEATURES_PARTS_DIR}/part-*"))


def test_a_second_probe_of_the_same_model_into_one_folder_stops_naming_the_first(probe_run, converted, tmp_path,
                                                                                 capsys):
    run = shutil.copytree(probe_run, tmp_path / "run")
    model_dir = runfolder.model_dir(run, "test_resnet")
    before = (model_dir / PROBES_JSON).stat().st_mtime_ns
    with locks.folder_lock(model_dir, "focus-probe of test_resnet"):
        assert main(["--data", str(converted), "--output", str(run), *FAST]) == 2
    err = capsys.readouterr().err
    assert f"error: test_resnet: {model_dir} is in use by focus-probe of test_resnet (pid {os.getpid()} on " in err
    assert "wait for it to finish, or write to another --output" in err
    assert (model_dir / PROBES_JSON).stat().st_mtime_ns == before


def test_a_stale_lock_of_a_killed_probe_is_detected_and_taken(probe_run, converted, tmp_path, caplog):
    run = shutil.copytree(probe_run, tmp_path / "run")
    model_dir = runfolder.model_dir(run, "test_resnet")
    (model_dir / locks.LOCK_FILE).write_text("focus-probe of test_resnet (pid 999999 on host, since then)")
    assert main(["--data", str(converted), "--output", str(run), *FAST]) == 0
    assert "a stale lock of focus-probe of test_resnet (pid 999999" in caplog.text
    handle = open(model_dir / locks.LOCK_FILE)  # let go of: another command may take it
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert handle.read() == ""
    handle.close()


def test_cached_features_of_other_data_are_refused_until_no_resume(probe_run, converted, tmp_path, capsys):
    run = shutil.copytree(probe_run, tmp_path / "run")
    args = ["--data", str(converted), "--output", str(run), *FAST, "--limit", "40"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert re.search(r"holds features made with other settings \(dataset_fingerprint: cached '\w+', now '\w+'; "
                     r"num_images: cached 48, now 40\)\. Pass --no-resume", error), error
    assert main([*args, "--no-resume"]) == 0
    table = pq.read_table(runfolder.model_dir(run, "test_resnet") / FEATURES_FILE)
    assert table.num_rows == 40


def test_cached_features_of_other_preprocessing_are_refused(probe_run, converted, tmp_path, capsys):
    run = shutil.copytree(probe_run, tmp_path / "run")
    config = json.loads((runfolder.model_dir(run, "test_resnet") / FEATURES_CONFIG_FILE).read_text())
    assert config["preprocessing"]["protocol"] == "paper" and "preprocessing" in probe_features.FEATURE_IDENTITY_KEYS
    assert main(["--data", str(converted), "--output", str(run), *FAST, "--img-size", "128"]) == 2
    error = capsys.readouterr().err
    assert "holds features made with other settings (preprocessing: cached {'protocol': 'paper'" in error
    assert "'input_size': [3, 128, 128]" in error


def test_features_and_parts_without_their_config_are_recomputed(probe_run, converted, tmp_path, caplog):
    # Nothing says what they were computed from (another checkpoint, another dataset): not reused.
    run = shutil.copytree(probe_run, tmp_path / "run")
    model_dir = runfolder.model_dir(run, "test_resnet")
    original = pq.read_table(model_dir / FEATURES_FILE)
    (model_dir / FEATURES_CONFIG_FILE).unlink()
    stale = original.set_column(1, "features", pa.array([[0.0] * 96] * original.num_rows, pa.list_(pa.float32(), 96)))
    # Written by the toolkit (recorded in the folders' manifests), so that they are its own to delete.
    runfolder.write_parquet(model_dir / FEATURES_FILE, stale)
    for part in (model_dir / FEATURES_PARTS_DIR).glob("part-*.parquet"):
        runfolder.write_parquet(part, stale.slice(0, 16))
    with caplog.at_level(logging.INFO, logger="focus-probe"):
        assert main(["--data", str(converted), "--output", str(run), *FAST]) == 0
    assert (f"{model_dir}: features.parquet, features-parts without features.json (how they were made): "
            f"stale, making them again") in caplog.text
    assert "features from the cache" not in caplog.text
    recomputed = pq.read_table(model_dir / FEATURES_FILE)
    assert np.allclose(features_matrix(recomputed), features_matrix(original), atol=1e-5)
    assert json.loads((model_dir / FEATURES_CONFIG_FILE).read_text())["num_images"] == 48


def test_every_process_refuses_other_data_alike_and_only_the_main_process_deletes(tmp_path):
    config = {"model": "m", "sha256": "a" * 64, "dataset_fingerprint": "new", "num_images": 40}
    runfolder.write_json(tmp_path / FEATURES_CONFIG_FILE, config | {"dataset_fingerprint": "old"})
    message = (r"holds features made with other settings \(dataset_fingerprint: cached 'old', now 'new'\)\. "
               r"Pass --no-resume")
    for main_process in (True, False):
        with pytest.raises(ValueError, match=message):
            feature_resumable(tmp_path, 2).check_config(config, resume=True, is_main=main_process)
    (tmp_path / FEATURES_CONFIG_FILE).write_text("{")
    for main_process in (True, False):
        with pytest.raises(ValueError, match=r"features.json cannot be read \(.*\)\. Pass --no-resume"):
            feature_resumable(tmp_path, 2).check_config(config, resume=True, is_main=main_process)
    (tmp_path / FEATURES_CONFIG_FILE).unlink()
    Written(tmp_path).replace(tmp_path / FEATURES_FILE, b"stale")  # the toolkit's own, stale without its config
    feature_resumable(tmp_path, 2).check_config(config, resume=True, is_main=False)
    assert (tmp_path / FEATURES_FILE).exists()
    feature_resumable(tmp_path, 2).check_config(config, resume=True, is_main=True)
    assert not (tmp_path / FEATURES_FILE).exists()


def test_no_resume_deletes_only_the_probes_own_files(probe_run, converted, tmp_path):
    run = shutil.copytree(probe_run, tmp_path / "run")
    model_dir = runfolder.model_dir(run, "test_resnet")
    others = [model_dir / runfolder.PREDICTIONS_FILE, model_dir / runfolder.CONFIG_FILE,
              model_dir / "gradcam" / "index.html"]
    for path in others:
        path.parent.mkdir(exist_ok=True)
        path.write_text("not the probe's")
    before = (model_dir / FEATURES_FILE).stat().st_mtime_ns
    assert main(["--data", str(converted), "--output", str(run), *FAST, "--no-resume"]) == 0
    assert all(path.read_text() == "not the probe's" for path in others)
    assert (model_dir / FEATURES_FILE).stat().st_mtime_ns != before


def test_an_error_in_another_process_stops_this_one_too(probe_run, converted, tmp_path, capsys, monkeypatch):
    # gather_object as in a two-process run whose other process could not write its files.
    monkeypatch.setattr(distributed, "gather_object", lambda objects: [*objects, OSError("disk full on process 1")])
    run = shutil.copytree(probe_run, tmp_path / "run")
    assert main(["--data", str(converted), "--output", str(run), *FAST]) == 2
    assert "error: test_resnet: disk full on process 1" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--pairs", "car-snow"], "--pairs expects CLASS/LOCATION .* got 'car-snow'"),
    (["--pairs", "car/none"], "--pairs expects CLASS/LOCATION .* got 'car/none'"),
    (["--min-images", "1"], "--min-images must be at least 2 .* got 1"),
    (["--test-size", "1.5"], r"--test-size must be a fraction in \(0, 1\), got 1.5"),
    (["--categories", "unicorn"], "unknown name 'unicorn'"),
])
def test_bad_options_are_reported_with_the_offending_value(converted, tmp_path, capsys, extra, message):
    assert main(["--data", str(converted), "--output", str(tmp_path), *FAST, *extra]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_unknown_model_is_reported_with_close_names(converted, tmp_path, capsys):
    args = ["--data", str(converted), "--output", str(tmp_path), *FAST]
    args[args.index("test_resnet")] = "test_resnt"
    assert main(args) == 2
    assert "Unknown timm model 'test_resnt'. Close timm names: test_resnet" in capsys.readouterr().err


@pytest.mark.slow
def test_make_demos_sample_trains_probes(tmp_path, capsys):
    # `make demo`'s data: focus-dataset sample --num-images 200 --seed 0, converted. Before, no probe was trained.
    release = sample.write_sample_release(tmp_path / "release", 200, seed=0)
    convert.convert(release, tmp_path / "focus")
    assert main(["--data", str(tmp_path / "focus"), "--output", str(tmp_path / "run"), *FAST[:-2]]) == 0
    results = json.loads((runfolder.model_dir(tmp_path / "run", "test_resnet") / PROBES_JSON).read_text())
    trained = [c for c in results["cells"] if c["status"] == "trained"]
    assert len(trained) >= 20  # 51, every one of them small (fewer than 20 images on a side)
    assert "## Table 6" in capsys.readouterr().out and all(len(c["similar_classes"]) == 3 for c in trained)


def two_processes(*args, timeout=600):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               str(REPO / "harness" / "probe.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=timeout)


@pytest.mark.slow
def test_two_processes_give_the_same_features(probe_run, converted, tmp_path):
    output = tmp_path / "two"
    result = two_processes("--data", str(converted), "--output", str(output), *FAST, "--batch-size", "5")
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = (pq.read_table(runfolder.model_dir(run, "test_resnet") / FEATURES_FILE) for run in (probe_run, output))
    assert two.column("file_name").to_pylist() == one.column("file_name").to_pylist()
    assert np.allclose(features_matrix(two), features_matrix(one), atol=1e-5)


@pytest.mark.slow
def test_two_processes_both_refuse_features_of_other_data(probe_run, converted, tmp_path):
    # Before: only the main process checked, and the other one waited at the barrier for ever.
    run = shutil.copytree(probe_run, tmp_path / "run")
    result = two_processes("--data", str(converted), "--output", str(run), *FAST, "--limit", "40", timeout=300)
    assert result.returncode != 0
    # Both processes refuse; the main process says so, once.
    assert result.stderr.count("holds features made with other settings (dataset_fingerprint") == 1, \
        result.stderr[-3000:]
