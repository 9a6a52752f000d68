"""harness/explanations.py and harness/gradcam.py: maps on models built to look at one region, image selection, focus-gradcam end to end."""

import doctest
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import timm
import torch
from torch import nn

from focus_common import locks
import focus_dataset as fd
from harness import distributed, explanations, gradcam, runfolder, scoring
from harness.data import decode_image
from harness.explanations import (
    GRADCAM_DIR,
    INDEX_FILE,
    RECORDS_FILE,
    find_target_layer,
    gradcam_maps,
    guided_backprop,
    guided_model,
    plot_panel,
    select_failures,
)
from harness.gradcam import main

REPO = Path(__file__).resolve().parents[1]
FAST = ["--models", "test_resnet", "--random-init", "--batch-size", "4", "--quiet"]
HEIGHT, WIDTH = 48, 64  # not square: a transposed map would show


class TwoClassConvNet(nn.Module):
    """conv -> ReLU -> global average pool -> linear: positive weights, so class 0 grows with any signal."""

    def __init__(self, activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), activation())
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.features[0].weight.copy_(0.1 * torch.rand_like(self.features[0].weight))  # below ReLU6 saturation
            self.head.weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def top_left_signal(seed=0) -> torch.Tensor:
    """An input that is zero except in its top-left quadrant."""
    image = torch.zeros(1, 3, HEIGHT, WIDTH)
    generator = torch.Generator().manual_seed(seed)
    image[..., : HEIGHT // 2, : WIDTH // 2] = torch.rand(3, HEIGHT // 2, WIDTH // 2, generator=generator)
    return image


def quadrant_share(values: np.ndarray) -> float:
    """The share of a non-negative map's mass in the top-left quadrant."""
    values = np.abs(values)
    return float(values[: HEIGHT // 2, : WIDTH // 2].sum() / values.sum())


def predictions_table(converted, correct=None) -> pa.Table:
    """A predictions file for the sample release: wrong where `correct` says so (default: every other image)."""
    annotations = fd.annotation_table(fd.load_focus(converted))
    n = annotations.num_rows
    correct = np.arange(n) % 2 == 0 if correct is None else np.asarray(correct)
    label = annotations.column("label").to_numpy()
    columns = {name: annotations.column(name) for name in scoring.ANNOTATION_COLUMNS}
    columns.update(
        prediction=pa.array(np.where(correct, label, -1)),
        top5_ids=pa.array([[0, 1, 2, 3, 4]] * n, pa.list_(pa.int32())),
        top5_probs=pa.array([[p, 0, 0, 0, 0] for p in np.linspace(0.1, 0.9, n)], pa.list_(pa.float32())),
        top5_correct=pa.array(correct), correct=pa.array(correct),
    )
    schema = scoring.PREDICTION_SCHEMA
    return pa.table({field.name: columns[field.name].cast(field.type) for field in schema}, schema=schema)


@pytest.fixture(scope="module")
def broken_release(sample_release, tmp_path_factory):
    """The sample release with one image that cannot be decoded; (release, good file name, broken file name)."""
    release = Path(shutil.copytree(sample_release, tmp_path_factory.mktemp("broken") / "focus"))
    good, broken = sorted(p.relative_to(release).as_posix() for p in release.rglob("*.jpg"))[:2]
    (release / broken).write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG \xff\xd9")
    return release, good, broken


def write_predictions(run_dir, table, model="test_resnet"):
    """A run folder as focus-eval leaves it for one model with random weights (seed 0): run.json, config.json
    and the predictions."""
    model_dir = runfolder.model_dir(run_dir, model)
    model_dir.mkdir(parents=True)
    pq.write_table(table, model_dir / runfolder.PREDICTIONS_FILE)
    runfolder.write_json(run_dir / runfolder.RUN_FILE, {"models": [model]})
    runfolder.write_json(model_dir / runfolder.CONFIG_FILE, {"model": model, "weights": "random-init",
                                                             "random_init": True, "init_seed": 0, "sha256": None,
                                                             "label_space": "imagenet"})
    return run_dir


# ---------------------------------------------------------------------------------- the maps

def test_doctests_pass():
    assert doctest.testmod(explanations).failed == 0


def test_maps_have_the_input_size():
    model = timm.create_model("test_resnet").eval()
    inputs = torch.rand(2, 3, HEIGHT, WIDTH)
    _, layer = find_target_layer(model)
    cams = gradcam_maps(model, layer, inputs, [3, 7])
    assert cams.shape == (2, HEIGHT, WIDTH) and cams.min() >= 0 and cams.max() <= 1
    assert guided_backprop(guided_model(model), inputs[:1], 3).shape == (HEIGHT, WIDTH, 3)


def test_smoothed_maps_average_over_horizontal_flips():
    # The authors' aug_smooth averages the maps of an image and of its mirror (mapped back), so the
    # smoothed map of a mirrored image is the mirrored map; a plain map need not be.
    torch.manual_seed(0)  # weights whose plain map is not all zeros, whatever ran before
    model = timm.create_model("test_resnet").eval()
    inputs = torch.rand(1, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0))
    _, layer = find_target_layer(model)
    smoothed, mirrored = (gradcam_maps(model, layer, x, [3])[0] for x in (inputs, inputs.flip(-1)))
    np.testing.assert_allclose(mirrored, smoothed[:, ::-1], atol=1e-5)
    plain, plain_mirrored = (gradcam_maps(model, layer, x, [3], aug_smooth=False)[0] for x in (inputs, inputs.flip(-1)))
    assert not np.allclose(plain_mirrored, plain[:, ::-1], atol=1e-3)
    assert not np.allclose(plain, smoothed, atol=1e-3)


@pytest.mark.parametrize("activation", [nn.ReLU, nn.ReLU6, nn.SiLU])
def test_maps_peak_where_the_only_signal_is(activation):
    model = TwoClassConvNet(activation).eval()
    inputs = top_left_signal()
    name, layer = find_target_layer(model)
    assert name == "features"  # no timm attribute: the last child that holds a convolution
    cam = gradcam_maps(model, layer, inputs, [0])[0]
    row, column = np.unravel_index(cam.argmax(), cam.shape)
    assert row < HEIGHT // 2 and column < WIDTH // 2
    assert quadrant_share(cam) > 0.9
    guided = guided_backprop(guided_model(model), inputs, 0)
    if activation is not nn.SiLU:  # SiLU passes gradients at 0 too, so its guided map spreads by design
        assert quadrant_share(guided) > 0.9


def test_guided_backpropagation_stops_negative_gradients_at_relu6():
    # Class 1 has negative weights: every gradient reaching the ReLU6 is negative, so plain gradients
    # are non-zero and guided ones are zero. pytorch_grad_cam alone guides nn.ReLU only.
    model = TwoClassConvNet(nn.ReLU6).eval()
    inputs = top_left_signal().requires_grad_(True)
    model(inputs)[0, 1].backward()
    assert inputs.grad.abs().sum() > 0
    assert np.abs(guided_backprop(guided_model(model), inputs.detach(), 1)).sum() == 0
    assert isinstance(model.features[1], nn.ReLU6)  # the model itself is left as it was


def test_target_layer_is_the_last_convolutional_stage_per_architecture():
    assert find_target_layer(timm.create_model("test_resnet"))[0] == "layer4"
    assert find_target_layer(timm.create_model("test_efficientnet"))[0] == "bn2"
    assert find_target_layer(timm.create_model("test_convnext"))[0] == "stages"
    model = timm.create_model("test_resnet")
    assert find_target_layer(model, "layer3.0.conv1") == ("layer3.0.conv1", model.layer3[0].conv1)


def test_unknown_target_layer_is_reported_with_close_names():
    expected = (r"--target-layer 'layer9' is not a module of ResNet\. Close names: "
                r"\['layer4', 'layer3', 'layer2', 'layer1', 'layer4.0'\]; top-level modules: ")
    with pytest.raises(ValueError, match=expected):
        find_target_layer(timm.create_model("test_resnet"), "layer9")


def test_panel_shows_the_original_first_then_the_maps_on_the_models_input():
    original = np.zeros((30, 90, 3), np.uint8)  # wide, unlike the square model input
    image = np.zeros((16, 16, 3), np.float32)
    figure = plot_panel(original, image, np.zeros((16, 16), np.float32), np.zeros((16, 16, 3), np.uint8), "t")
    pictures = [ax.images[0].get_array().shape for ax in figure.axes]
    assert pictures == [(30, 90, 3), (16, 16, 3), (16, 16, 3)]
    assert [ax.get_title() for ax in figure.axes] == ["original", "Grad-CAM (model input)", "Guided Grad-CAM"]
    assert figure.axes[0].get_aspect() == 1.0  # drawn with its aspect kept


# ---------------------------------------------------------------------------------- which images

def test_failures_are_misclassified_uncommon_images_most_uncommon_then_most_confident_first(converted):
    table = predictions_table(converted)
    chosen = select_failures(table, max_images=100)
    rows = {name: i for i, name in enumerate(table.column("file_name").to_pylist())}
    correct = table.column("correct").to_pylist()
    uncommon = table.column("num_uncommon").to_pylist()
    confidence = [p[0] for p in table.column("top5_probs").to_pylist()]
    expected = sorted((i for i in range(table.num_rows) if not correct[i] and uncommon[i] > 0),
                      key=lambda i: (-uncommon[i], -confidence[i]))
    assert [rows[name] for name in chosen] == expected and len(expected) > 3
    assert select_failures(table, max_images=2) == chosen[:2]


# ---------------------------------------------------------------------------------- focus-gradcam end to end

def test_named_images_give_panels_an_index_and_records(converted, tmp_path):
    names = fd.annotation_table(fd.load_focus(converted)).column("file_name").to_pylist()[:3]
    assert main(["--data", str(converted), "--output", str(tmp_path), *FAST,
                 "--images", names[0], "/" + names[1], names[2], "--max-images", "2"]) == 0
    out = runfolder.model_dir(tmp_path, "test_resnet") / GRADCAM_DIR
    records = json.loads((out / RECORDS_FILE).read_text())
    assert records["target_layer"] == "layer4" and records["input_size"] == [3, 160, 160]
    assert records["aug_smooth"] is True and "smoothed as the authors did (aug_smooth" in (out / INDEX_FILE).read_text()
    assert [r["file_name"] for r in records["images"]] == names[:2]
    index = (out / INDEX_FILE).read_text()
    for record in records["images"]:
        assert (out / record["panel"]).stat().st_size > 1000 and f'src="{record["panel"]}"' in index
        assert record["map_size"] == [160, 160]
        assert record["predicted_name"] == timm.data.ImageNetInfo().index_to_description(
            record["predicted_id"]).split(",")[0]
        assert f"{record['file_name']}   true: {record['true_class']}" in index
        assert f"predicted: {record['predicted_name']} (ImageNet {record['predicted_id']}" in index
    assert sorted(p.name for p in out.glob("*.png")) == sorted(r["panel"] for r in records["images"])


def test_maps_follow_the_preprocessing_recorded_in_the_header(converted, tmp_path):
    names = fd.annotation_table(fd.load_focus(converted)).column("file_name").to_pylist()[:1]
    assert main(["--data", str(converted), "--output", str(tmp_path), *FAST, "--images", *names,
                 "--preprocess", "timm", "--img-size", "128"]) == 0
    records = json.loads((runfolder.model_dir(tmp_path, "test_resnet") / GRADCAM_DIR / RECORDS_FILE).read_text())
    assert records["preprocessing"]["protocol"] == "timm" and records["preprocessing"]["custom"] is True
    assert records["input_size"] == [3, 128, 128] and records["images"][0]["map_size"] == [128, 128]


def test_no_aug_smooth_gives_plain_maps_and_says_so(converted, tmp_path, monkeypatch):
    smoothing = []
    plain_maps = explanations.gradcam_maps

    def recording_maps(*args, aug_smooth=True):
        smoothing.append(aug_smooth)
        return plain_maps(*args, aug_smooth=aug_smooth)

    monkeypatch.setattr(explanations, "gradcam_maps", recording_maps)
    names = fd.annotation_table(fd.load_focus(converted)).column("file_name").to_pylist()[:2]
    assert main(["--data", str(converted), "--output", str(tmp_path), *FAST, "--images", *names,
                 "--no-aug-smooth"]) == 0
    out = runfolder.model_dir(tmp_path, "test_resnet") / GRADCAM_DIR
    assert smoothing == [False] and json.loads((out / RECORDS_FILE).read_text())["aug_smooth"] is False
    assert "without test-time smoothing (--no-aug-smooth)" in (out / INDEX_FILE).read_text()


def test_each_panel_starts_with_the_original_image_as_decoded(converted, tmp_path, monkeypatch):
    shown = {}

    def recording_plot_panel(original, image, cam, guided, title):
        shown[title.split("   ")[0]] = (original.shape, image.shape)
        return plot_panel(original, image, cam, guided, title)

    monkeypatch.setattr(explanations, "plot_panel", recording_plot_panel)
    dataset = fd.load_focus(converted)
    names = dataset["file_name"][:4]
    assert main(["--data", str(converted), "--output", str(tmp_path), *FAST, "--images", *names]) == 0
    images = dataset.cast_column("image", datasets.Image(decode=False))
    sizes = {row["file_name"]: decode_image(row["image"]["bytes"]).size for row in images.select(range(4))}
    assert shown == {name: ((height, width, 3), (160, 160, 3)) for name, (width, height) in sizes.items()}
    assert any(width != height for width, height in sizes.values())  # the aspect shows


def test_undecodable_image_is_named(broken_release, tmp_path, capsys):
    release, good, broken = broken_release
    assert main(["--data", str(release), "--output", str(tmp_path), *FAST, "--images", good, broken]) == 2
    error = capsys.readouterr().err
    assert f"error: test_resnet: {broken} cannot be decoded (" in error and "leave it out of --images" in error


def test_an_error_in_another_process_stops_this_one_too(converted, tmp_path, capsys, monkeypatch):
    # gather_object as in a two-process run whose other process could not decode its image.
    other = OSError("cat-snow/9.jpg cannot be decoded on process 1")
    monkeypatch.setattr(distributed, "gather_object", lambda objects: [*objects, other])
    names = fd.annotation_table(fd.load_focus(converted)).column("file_name").to_pylist()[:1]
    assert main(["--data", str(converted), "--output", str(tmp_path), *FAST, "--images", *names]) == 2
    assert "error: test_resnet: cat-snow/9.jpg cannot be decoded on process 1" in capsys.readouterr().err
    assert not (runfolder.model_dir(tmp_path, "test_resnet") / GRADCAM_DIR / INDEX_FILE).exists()


@pytest.mark.slow
def test_two_processes_both_stop_at_an_image_one_of_them_cannot_decode(broken_release, tmp_path):
    # The broken image is the second process's: before, the first waited for it in gather_object for ever.
    release, good, broken = broken_release
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               str(REPO / "harness" / "gradcam.py"), "--data", str(release), "--output", str(tmp_path), *FAST,
               "--images", good, broken]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode != 0
    # Both processes stop with the error; the main process says it, once.
    assert result.stderr.count(f"error: test_resnet: {broken} cannot be decoded") == 1, result.stderr[-3000:]


def test_run_predictions_give_the_misclassified_uncommon_images(converted, tmp_path):
    table = predictions_table(converted)
    run = write_predictions(tmp_path / "run", table)
    assert main(["--data", str(converted), *FAST, "--run", str(run), "--max-images", "3"]) == 0
    records = json.loads((runfolder.model_dir(run, "test_resnet") / GRADCAM_DIR / RECORDS_FILE).read_text())
    assert [r["file_name"] for r in records["images"]] == select_failures(table, 3)
    assert all(r["num_uncommon"] > 0 for r in records["images"]) and "from" in records["source"]


def test_run_without_predictions_is_reported(converted, tmp_path, capsys):
    write_predictions(tmp_path / "run", predictions_table(converted), model="other_model")
    assert main(["--data", str(converted), *FAST, "--run", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert re.search(r"'test_resnet' is not a model of the run \(it evaluated \['other_model'\]\)\. "
                     r"Run `focus-eval --data \.\.\. --models test_resnet", error), error


def test_run_without_misclassified_uncommon_images_is_reported(converted, tmp_path, capsys):
    table = predictions_table(converted, correct=np.ones(48, bool))
    run = write_predictions(tmp_path / "run", table)
    assert main(["--data", str(converted), *FAST, "--run", str(run)]) == 2
    uncommon = sum(n > 0 for n in table.column("num_uncommon").to_pylist())
    assert (f"holds no misclassified image with an uncommon attribute (0 of 48 images are misclassified, "
            f"{uncommon} have an uncommon attribute). Name the images with --images.") in capsys.readouterr().err


def test_unknown_file_names_are_reported_with_close_names(converted, tmp_path, capsys):
    assert main(["--data", str(converted), "--output", str(tmp_path), *FAST,
                 "--images", "bird-grass/1.jpg", "bird-gras/1.jpg", "nowhere.jpg"]) == 2
    error = capsys.readouterr().err
    assert "2 file name(s) not in the dataset: ['bird-gras/1.jpg', 'nowhere.jpg']. Close names: ['bird-grass/1.jpg'" \
           in error, error


def test_unknown_target_layer_stops_the_command(converted, tmp_path, capsys):
    assert main(["--data", str(converted), "--output", str(tmp_path), *FAST, "--images", "bird-grass/1.jpg",
                 "--target-layer", "layer9"]) == 2
    assert "error: test_resnet: --target-layer 'layer9' is not a module of ResNet" in capsys.readouterr().err


def test_layer_without_a_spatial_map_is_reported(converted, tmp_path, capsys):
    args = ["--data", str(converted), "--output", str(tmp_path), *FAST, "--images", "bird-grass/1.jpg"]
    args[args.index("test_resnet")] = "test_vit"
    assert main(args) == 2
    assert re.search(r"Grad-CAM needs a spatial feature map \(batch, channels, height, width\); layer 'blocks' of "
                     r"test_vit gives shape \(1, \d+, \d+\)\. Name a convolutional layer with --target-layer",
                     capsys.readouterr().err)


def test_a_layer_whose_output_is_not_a_tensor_is_reported(converted, tmp_path, capsys):
    # A transformers model's default layer (its backbone) returns an output object, not a tensor.
    pytest.importorskip("transformers")
    from conftest import tiny_vit_folder

    tiny_vit_folder(tmp_path / "vit")
    spec = f"transformers:{tmp_path / 'vit'}"
    args = ["--data", str(converted), "--output", str(tmp_path / "out"), *FAST, "--images", "bird-grass/1.jpg"]
    args[args.index("test_resnet")] = spec
    assert main(args) == 2
    assert (f"error: {spec}: Grad-CAM needs a spatial feature map (batch, channels, height, width); layer 'model.vit' "
            f"of {spec} gives a BaseModelOutputWithPooling, not a tensor. Name a convolutional layer with "
            f"--target-layer." in capsys.readouterr().err)


def test_max_images_must_be_positive(converted, tmp_path, capsys):
    # Checked by the parser, before anything loads (a usage error: exit 2).
    with pytest.raises(SystemExit) as stop:
        main(["--data", str(converted), "--output", str(tmp_path), *FAST, "--images", "a.jpg", "--max-images", "0"])
    assert stop.value.code == 2
    assert "--max-images: expected a whole number from 1 to 10,000, got '0'" in capsys.readouterr().err


def test_images_come_from_a_run_or_a_list_not_both(converted, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--data", str(converted), *FAST, "--run", str(tmp_path), "--images", "a.jpg"])
    assert "argument --images: not allowed with argument --run" in capsys.readouterr().err


def test_non_finite_logits_are_an_error_naming_the_model_and_the_first_image_not_blank_panels(converted, tmp_path,
                                                                                           capsys):
    model = timm.create_model("test_resnet")
    checkpoint = tmp_path / "nan.pth"
    torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                for k, v in model.state_dict().items()}, checkpoint)
    names = fd.annotation_table(fd.load_focus(converted)).column("file_name").to_pylist()[:2]
    args = ["--data", str(converted), "--output", str(tmp_path / "run"), *FAST, "--images", *names]
    args[args.index("--random-init")] = f"--checkpoint=test_resnet={checkpoint}"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (f"error: test_resnet: test_resnet gave non-finite logits (NaN or infinity) for 2 image(s) of a batch, "
            f"the first {names[0]}: its weights are broken") in err
    assert not list((runfolder.model_dir(tmp_path / "run", "test_resnet") / GRADCAM_DIR).glob("*.png"))


def test_non_finite_maps_are_an_error_naming_the_model_and_the_first_image(converted, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(explanations, "gradcam_maps", lambda model, layer, inputs, targets, aug_smooth: np.full(
        (len(targets), *inputs.shape[2:]), np.nan, np.float32))
    names = fd.annotation_table(fd.load_focus(converted)).column("file_name").to_pylist()[:1]
    assert main(["--data", str(converted), "--output", str(tmp_path), *FAST, "--images", *names]) == 2
    assert (f"error: test_resnet: test_resnet gave non-finite Grad-CAM maps (NaN or infinity) for 1 image(s) of a "
            f"batch, the first {names[0]}") in capsys.readouterr().err


def test_a_second_gradcam_of_the_same_model_into_one_folder_stops_naming_the_first(converted, tmp_path, capsys):
    model_dir = runfolder.model_dir(tmp_path, "test_resnet")
    model_dir.mkdir(parents=True)
    names = fd.annotation_table(fd.load_focus(converted)).column("file_name").to_pylist()[:1]
    with locks.folder_lock(model_dir, "focus-gradcam of test_resnet"):
        assert main(["--data", str(converted), "--output", str(tmp_path), *FAST, "--images", *names]) == 2
    err = capsys.readouterr().err
    assert f"error: test_resnet: {model_dir} is in use by focus-gradcam of test_resnet (pid {os.getpid()} on " in err
    assert not (model_dir / GRADCAM_DIR).exists()


def test_a_stale_lock_of_a_killed_gradcam_is_detected_and_taken(converted, tmp_path, caplog):
    model_dir = runfolder.model_dir(tmp_path, "test_resnet")
    model_dir.mkdir(parents=True)
    (model_dir / locks.LOCK_FILE).write_text("focus-gradcam of test_resnet (pid 999999 on host, since then)")
    names = fd.annotation_table(fd.load_focus(converted)).column("file_name").to_pylist()[:1]
    assert main(["--data", str(converted), "--output", str(tmp_path), *FAST, "--images", *names]) == 0
    assert "a stale lock of focus-gradcam of test_resnet (pid 999999" in caplog.text
    handle = open(model_dir / locks.LOCK_FILE)  # let go of: another command may take it
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert handle.read() == ""
    handle.close()
