"""harness/preprocess.py: the harness's input tensor is exactly the authors' (paper) or timm's, on real photos."""

import io
import types
from pathlib import Path

import datasets
import PIL.Image
import pytest
import skimage
import timm
import timm.data
import torch
import torchvision.transforms as T

from harness import preprocess, runfolder, transforms
from harness.data import FocusImages
from harness import models
from harness.models import PAPER_MODELS, torchvision_models

PHOTOS = Path(skimage.__file__).parent / "data"
# Real photos, neither of them square: a cat (PNG, 451x300) and a rocket (JPEG, 640x427).
PHOTO_FILES = ("chelsea.png", "rocket.jpg")
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
KEYS = ["protocol", "custom", "input_size", "resize", "crop_pct", "crop_mode", "interpolation", "mean", "std"]


def pretrained(name):
    """The model's own data config, as harness.models records it, without building the model.

    For a timm name, timm's data config resolved from its pretrained config; for a torchvision spec (the
    paper preset's first three), its weights' own transforms.
    """
    source, library_name = models.model_source(name)
    if source == "torchvision":
        return torchvision_models.data_config(torchvision_models.parse_name(library_name)[1])
    stand_in = types.SimpleNamespace(pretrained_cfg=timm.models.get_pretrained_cfg(name).to_dict())
    return timm.data.resolve_data_config(model=stand_in)


def harness_tensor(path, record):
    """The tensor the harness feeds the model: decoded and cropped in FocusImages, normalised as a step does."""
    preprocessing = preprocess.Preprocessing.from_dict(record)
    features = datasets.Features({"image": datasets.Image()})
    dataset = datasets.Dataset.from_dict({"image": [{"bytes": path.read_bytes(), "path": None}]}, features=features)
    images = FocusImages(dataset, transforms.geometry_transform(preprocessing), [0], preprocessing.input_size)
    index, image, ok = images[0]
    assert ok and image.dtype == torch.uint8
    return transforms.normalize(image[None], preprocessing)[0]


def authors_tensor(path, size, mean=IMAGENET_MEAN, std=IMAGENET_STD, **resize):
    """The authors' evaluation transform, built here from torchvision."""
    transform = T.Compose([T.Resize(size, **resize), T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)])
    return transform(PIL.Image.open(path).convert("RGB"))


@pytest.mark.parametrize("photo", PHOTO_FILES)
@pytest.mark.parametrize("model, size", [("resnet50.tv_in1k", 224), ("tf_efficientnet_b4.aa_in1k", 380)])
def test_paper_protocol_gives_exactly_the_authors_tensor(photo, model, size):
    preprocessing = preprocess.resolve_preprocessing(pretrained(model), "paper").to_dict()
    expected = authors_tensor(PHOTOS / photo, size)
    assert torch.equal(harness_tensor(PHOTOS / photo, preprocessing), expected)
    with PIL.Image.open(PHOTOS / photo) as image:
        assert torch.equal(transforms.model_input(image.convert("RGB"), preprocess.Preprocessing.from_dict(
            preprocessing)), expected)


def test_paper_protocol_is_the_authors_geometry_for_the_five_paper_models():
    sizes = {name: preprocess.resolve_preprocessing(pretrained(name)).input_size[1] for name in PAPER_MODELS}
    assert sizes == dict(zip(PAPER_MODELS, (224, 224, 224, 380, 600)))
    for name in PAPER_MODELS:
        preprocessing = preprocess.resolve_preprocessing(pretrained(name)).to_dict()
        assert list(preprocessing) == KEYS
        assert preprocessing | {"input_size": None, "resize": None} == {
            "protocol": "paper", "custom": False, "input_size": None, "resize": None, "crop_pct": 1.0,
            "crop_mode": "center", "interpolation": "bilinear", "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
        assert preprocessing["resize"] == preprocessing["input_size"][1]  # no 0.875 crop


def test_paper_protocol_at_600_pixels_is_the_authors_tensor():
    preprocessing = preprocess.resolve_preprocessing(pretrained("tf_efficientnet_b7.aa_in1k")).to_dict()
    expected = authors_tensor(PHOTOS / "chelsea.png", 600)
    assert torch.equal(harness_tensor(PHOTOS / "chelsea.png", preprocessing), expected)


@pytest.mark.parametrize("model", ["resnet50.tv_in1k", "mobilenetv3_large_100.ra_in1k", "tf_efficientnet_b4.aa_in1k"])
def test_timm_protocol_reproduces_timms_transform(model):
    data_config = pretrained(model)
    preprocessing = preprocess.resolve_preprocessing(data_config, "timm").to_dict()
    assert {key: preprocessing[key] for key in ("crop_pct", "crop_mode", "interpolation")} == {
        key: data_config[key] for key in ("crop_pct", "crop_mode", "interpolation")}
    assert preprocessing["input_size"] == list(data_config["input_size"]) and not preprocessing["custom"]
    with PIL.Image.open(PHOTOS / "rocket.jpg") as image:
        expected = timm.data.create_transform(**data_config)(image.convert("RGB"))
    assert torch.equal(harness_tensor(PHOTOS / "rocket.jpg", preprocessing), expected)


def test_timm_protocol_records_its_resize_then_crop():
    preprocessing = preprocess.resolve_preprocessing(pretrained("resnet50.tv_in1k"), "timm").to_dict()
    assert (preprocessing["resize"], preprocessing["input_size"]) == (256, [3, 224, 224])
    assert preprocess.Preprocessing.from_dict(preprocessing).summary() == "timm: 256→224 bilinear"
    b4 = preprocess.resolve_preprocessing(pretrained("tf_efficientnet_b4.aa_in1k"), "timm").to_dict()
    assert preprocess.Preprocessing.from_dict(b4).summary() == "timm: 412→380 bicubic"
    paper = preprocess.resolve_preprocessing(pretrained("tf_efficientnet_b4.aa_in1k"), "paper").to_dict()
    assert preprocess.Preprocessing.from_dict(paper).summary() == "paper: 380→380 bilinear"


@pytest.mark.parametrize("overrides, expected", [
    ({"img_size": 300}, {"input_size": [3, 300, 300], "resize": 300}),
    ({"crop_pct": 0.875}, {"resize": 256, "crop_pct": 0.875}),
    ({"interpolation": "bicubic"}, {"interpolation": "bicubic"}),
    ({"crop_mode": "squash"}, {"crop_mode": "squash"}),
    ({"mean": [0.5], "std": [0.25, 0.5, 0.75]}, {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.5, 0.75]}),
])
def test_each_override_changes_its_own_key_only(overrides, expected):
    model = pretrained("resnet50.tv_in1k")
    plain = preprocess.resolve_preprocessing(model, "paper").to_dict()
    changed = preprocess.resolve_preprocessing(model, "paper", **overrides).to_dict()
    assert changed == plain | expected | {"custom": True}


@pytest.mark.parametrize("overrides, resize, size, normalize", [
    ({"img_size": 300}, 300, 300, {}),
    ({"crop_pct": 0.875}, 256, 224, {}),
    ({"interpolation": "bicubic"}, 224, 224, {}),
    ({"mean": [0.5], "std": [0.25]}, 224, 224, {"mean": [0.5] * 3, "std": [0.25] * 3}),
])
def test_overrides_change_the_tensor_as_torchvision_would(overrides, resize, size, normalize):
    preprocessing = preprocess.resolve_preprocessing(pretrained("resnet50.tv_in1k"), "paper", **overrides).to_dict()
    interpolation = T.InterpolationMode(overrides.get("interpolation", "bilinear"))
    transform = T.Compose([T.Resize(resize, interpolation=interpolation), T.CenterCrop(size), T.ToTensor(),
                           T.Normalize(normalize.get("mean", IMAGENET_MEAN), normalize.get("std", IMAGENET_STD))])
    with PIL.Image.open(PHOTOS / "chelsea.png") as image:
        expected = transform(image.convert("RGB"))
    assert torch.equal(harness_tensor(PHOTOS / "chelsea.png", preprocessing), expected)


def test_squash_resizes_both_sides_and_loses_the_aspect():
    preprocessing = preprocess.resolve_preprocessing(pretrained("resnet50.tv_in1k"), "paper",
                                                     crop_mode="squash").to_dict()
    transform = T.Compose([T.Resize((224, 224)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    with PIL.Image.open(PHOTOS / "rocket.jpg") as image:
        assert torch.equal(harness_tensor(PHOTOS / "rocket.jpg", preprocessing), transform(image.convert("RGB")))


def test_overrides_apply_on_top_of_the_timm_protocol_as_in_timms_validate():
    name = "mobilenetv3_large_100.ra_in1k"
    overrides = {"img_size": 256, "crop_pct": 0.95}
    preprocessing = preprocess.resolve_preprocessing(pretrained(name), "timm", **overrides).to_dict()
    # What timm's validate.py resolves from the model and its command line.
    model = types.SimpleNamespace(pretrained_cfg=timm.models.get_pretrained_cfg(name).to_dict())
    validate = timm.data.resolve_data_config(args=overrides, model=model)
    assert preprocessing["input_size"] == list(validate["input_size"]) == [3, 256, 256]
    assert (preprocessing["crop_pct"], preprocessing["interpolation"]) == (0.95, "bicubic")
    with PIL.Image.open(PHOTOS / "rocket.jpg") as image:
        expected = timm.data.create_transform(**validate)(image.convert("RGB"))
    assert torch.equal(harness_tensor(PHOTOS / "rocket.jpg", preprocessing), expected)


def test_an_undecodable_image_is_a_zero_uint8_tensor_of_the_input_size():
    preprocessing = preprocess.resolve_preprocessing(pretrained("resnet50.tv_in1k"))
    features = datasets.Features({"image": datasets.Image()})
    broken = io.BytesIO(b"\xff\xd8\xff\xe0 this is no JPEG").getvalue()
    dataset = datasets.Dataset.from_dict({"image": [{"bytes": broken, "path": None}]}, features=features)
    _, image, ok = FocusImages(dataset, transforms.geometry_transform(preprocessing), [0],
                               preprocessing.input_size)[0]
    assert not ok and image.dtype == torch.uint8 and image.shape == (3, 224, 224) and not image.any()


@pytest.mark.parametrize("overrides, message", [
    ({"img_size": 0}, "--img-size must be a number of pixels from 1 to 4096, got 0"),
    ({"img_size": 100_000}, "--img-size must be a number of pixels from 1 to 4096, got 100000"),
    ({"crop_pct": 0.0},
     r"--crop-pct must be a fraction \(crop size / resize size, e.g. 0.875\) from 0.1 to 2.0, got 0.0"),
    ({"crop_pct": 1e-9}, r"--crop-pct must be a fraction .* from 0.1 to 2.0, got 1e-09"),
    ({"crop_mode": "middle"}, r"--crop-mode must be one of \['center', 'squash', 'border'\], got 'middle'"),
    ({"interpolation": "cubic"}, "--interpolation must be one of .*, got 'cubic'"),
    ({"mean": [0.5, 0.5]}, r"--mean takes 1 value \(for every channel\) or 3 \(R G B\), got 2: \[0.5, 0.5\]"),
    ({"std": [0.0]}, r"--std must be positive, got \[0.0\]"),
])
def test_bad_overrides_are_named_with_the_offending_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        preprocess.resolve_preprocessing(pretrained("resnet50.tv_in1k"), "paper", **overrides).to_dict()


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match=r"--preprocess must be one of \['paper', 'timm'\], got 'tf'"):
        preprocess.resolve_preprocessing(pretrained("resnet50.tv_in1k"), "tf").to_dict()


@pytest.mark.parametrize(("changes", "message"), [
    ({"input_size": [3, 40_000, 40_000], "resize": 40_000},
     r"input_size \[3, 40000, 40000\] must be 3 channels of 1 to 4096 pixels \(the bounds of --img-size\)"),
    ({"resize": 10**6}, r"resize 1000000 must be from 1 to 40960 pixels"),
])
def test_a_tampered_run_record_is_bounded_as_the_command_line_is(changes, message):
    record = preprocess.resolve_preprocessing(pretrained("resnet50.tv_in1k")).to_dict() | changes
    with pytest.raises(ValueError, match=rf"the run's config.json: not a usable preprocessing \({message}"):
        preprocess.Preprocessing.from_dict(record, "the run's config.json")


def test_a_models_own_preprocessing_config_is_bounded_as_the_command_line_is():
    config = pretrained("resnet50.tv_in1k")
    preprocess.check_data_config(config, "resnet50.tv_in1k")
    with pytest.raises(ValueError, match=r"^m: input_size must be a number of pixels from 1 to 4096, got 100000$"):
        preprocess.check_data_config(config | {"input_size": (3, 224, 100_000)}, "m")
    with pytest.raises(ValueError, match=r"^m: input_size must have 3 channels \(RGB\), got 1$"):
        preprocess.check_data_config(config | {"input_size": (1, 224, 224)}, "m")
    with pytest.raises(ValueError, match=r"^m: expected 3 whole numbers, got \['big', 224, 224\]$"):
        preprocess.check_data_config(config | {"input_size": ("big", 224, 224)}, "m")
    with pytest.raises(ValueError, match=r"^m: mean must be finite numbers, got \[nan, 0.5, 0.5\]$"):
        preprocess.check_data_config(config | {"mean": (float("nan"), 0.5, 0.5)}, "m")
