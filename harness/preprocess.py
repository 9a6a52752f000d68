"""The model's input tensor: one place for focus-eval, focus-probe and focus-gradcam.

Two protocols, with timm validate.py's overrides on top of either (`--img-size`, `--crop-pct`,
`--crop-mode`, `--interpolation`, `--mean`, `--std`):

- ``paper``: how the authors evaluated every model (their public evaluation code): the image
  converted to RGB, torchvision ``Resize(s)`` (shorter side to s, bilinear, antialiased, on the PIL
  image), ``CenterCrop(s)``, ``ToTensor``, ``Normalize(mean, std)``, with no 0.875 crop. s is the
  model's input size and mean/std its own, both from its own preprocessing config (224 and ImageNet's
  mean/std for ResNet50, Wide-ResNet50-2 and MobileNet-v3-large; 380 and 600 for EfficientNet-b4
  and -b7), so the paper's five models get exactly the authors' tensors. The default for ImageNet
  classifiers (timm, torchvision).
- ``timm``: the model's own preprocessing config, in timm's data-config terms: timm's
  ``resolve_data_config`` for a timm model (e.g. 256→224 bicubic), the weights' own transforms for
  torchvision, the preprocess config of a CLIP model, a transformers image processor. The default
  for CLIP zero-shot and transformers classifiers, which are evaluated as their authors preprocess.

The resolved preprocessing is one dict (keys in harness/runfolder.py), recorded in config.json. The
tensor is made in two halves that the harness keeps apart:

- geometry, in DataLoader workers: the decoded image resized and cropped, as a uint8 (3, H, W)
  tensor. A batch of these moves a quarter of the bytes of float32 to a GPU, and one decoded batch
  can serve every model that shares the geometry;
- normalisation, on the device in each model's step: ``x.float().div(255)``, then
  ``(x - mean) / std``: torchvision's ToTensor and Normalize, the same float32 arithmetic, so the
  tensor is exactly theirs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import PIL.Image
import timm.data
import torch

PROTOCOLS = ("paper", "timm")
# The protocol a model gets when --preprocess is not given, by the library it comes from.
DEFAULT_PROTOCOL = {"timm": "paper", "torchvision": "paper", "open_clip": "timm", "transformers": "timm"}
CROP_MODES = ("center", "squash", "border")  # timm's eval crop modes
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "box", "hamming", "lanczos")  # timm's names for PIL's filters
# The authors' geometry; the input size, mean and std stay the model's own.
PAPER_GEOMETRY = {"crop_pct": 1.0, "crop_mode": "center", "interpolation": "bilinear"}
OVERRIDES = ("img_size", "crop_pct", "crop_mode", "interpolation", "mean", "std")  # as timm validate.py's
# Bounds on the overrides: every worker resizes each image to input size / crop_pct, so a crop_pct of
# 0.001 or an input of 10^5 pixels would ask for gigapixel images.
MAX_IMG_SIZE, MIN_CROP_PCT, MAX_CROP_PCT = 4096, 0.1, 2.0


def check_overrides(overrides: dict[str, Any]) -> None:
    """A ValueError naming the first override that timm's transforms cannot take."""
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ValueError(f"unknown preprocessing override(s) {unknown}; the overrides are {list(OVERRIDES)}")
    if overrides.get("img_size") is not None and not 1 <= overrides["img_size"] <= MAX_IMG_SIZE:
        raise ValueError(f"--img-size must be a number of pixels from 1 to {MAX_IMG_SIZE}, got {overrides['img_size']}")
    if overrides.get("crop_pct") is not None and not MIN_CROP_PCT <= overrides["crop_pct"] <= MAX_CROP_PCT:
        raise ValueError(f"--crop-pct must be a fraction (crop size / resize size, e.g. 0.875) from {MIN_CROP_PCT} to "
                         f"{MAX_CROP_PCT}, got {overrides['crop_pct']}")
    if overrides.get("crop_mode") not in (None, *CROP_MODES):
        raise ValueError(f"--crop-mode must be one of {list(CROP_MODES)}, got {overrides['crop_mode']!r}")
    if overrides.get("interpolation") not in (None, *INTERPOLATIONS):
        raise ValueError(f"--interpolation must be one of {list(INTERPOLATIONS)}, got {overrides['interpolation']!r}")
    for key in ("mean", "std"):
        values = overrides.get(key)
        if values is not None and len(values) not in (1, 3):
            raise ValueError(f"--{key} takes 1 value (for every channel) or 3 (R G B), got {len(values)}: {values}")
    if overrides.get("std") is not None and min(overrides["std"]) <= 0:
        raise ValueError(f"--std must be positive, got {overrides['std']}")


def resolve_preprocessing(data_config: dict[str, Any], protocol: str = "paper", **overrides: Any) -> dict[str, Any]:
    """A model's preprocessing under `protocol`, overrides applied as timm's validate.py does.

    `data_config` is the model's own preprocessing in timm's data-config terms (input_size,
    interpolation, mean, std, crop_pct, crop_mode): harness.models' info["data_config"], which for a
    timm model is ``timm.data.resolve_data_config(model=model)``. `overrides` are OVERRIDES' keys;
    None means not given. Returns the dict recorded in config.json: protocol, custom (any override
    given), input_size [3, H, W], resize (see resize_size), crop_pct, crop_mode, interpolation, mean,
    std.

    >>> own = {"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.5,) * 3, "std": (0.5,) * 3,
    ...        "crop_pct": 0.875, "crop_mode": "center"}
    >>> paper = resolve_preprocessing(own, "paper")
    >>> paper["resize"], paper["interpolation"], paper["mean"], resolve_preprocessing(own, "timm")["resize"]
    (224, 'bilinear', [0.5, 0.5, 0.5], 256)
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"--preprocess must be one of {list(PROTOCOLS)}, got {protocol!r}")
    overrides = {key: value for key, value in overrides.items() if value is not None}
    check_overrides(overrides)
    config = dict(data_config)
    if protocol == "paper":
        config |= PAPER_GEOMETRY
    # timm's own resolution, the model's config standing in for its pretrained config: the overrides
    # mean exactly what they mean to timm's validate.py.
    config = timm.data.resolve_data_config(args=overrides, pretrained_cfg=config)
    return {
        "protocol": protocol, "custom": bool(overrides), "input_size": list(config["input_size"]),
        "resize": resize_size(config["input_size"], config["crop_pct"]), "crop_pct": config["crop_pct"],
        "crop_mode": config["crop_mode"], "interpolation": config["interpolation"],
        "mean": [float(v) for v in config["mean"]], "std": [float(v) for v in config["std"]],
    }


def resize_size(input_size: Sequence[int], crop_pct: float) -> int | list[int]:
    """The size the image is resized to before the crop, as timm computes it: floor(crop / crop_pct).

    The shorter side with crop_mode center, the longer with border, both sides with squash; one
    number for a square input.

    >>> resize_size([3, 224, 224], 0.875), resize_size([3, 380, 380], 1.0), resize_size([3, 224, 320], 0.9)
    (256, 380, [248, 355])
    """
    height, width = (math.floor(size / crop_pct) for size in input_size[-2:])
    return height if height == width else [height, width]


def geometry_transform(preprocessing: dict[str, Any]) -> Callable[[PIL.Image.Image], torch.Tensor]:
    """The resize and crop of `preprocessing`, ending in a uint8 (3, H, W) tensor (no scaling).

    timm's eval transform without its normalisation: with the paper protocol, torchvision's
    Resize(s) and CenterCrop(s) (timm builds them when crop_pct is 1.0).
    """
    return timm.data.create_transform(
        input_size=tuple(preprocessing["input_size"]), interpolation=preprocessing["interpolation"],
        crop_pct=preprocessing["crop_pct"], crop_mode=preprocessing["crop_mode"],
        mean=tuple(preprocessing["mean"]), std=tuple(preprocessing["std"]), normalize=False)


def normalize(images: torch.Tensor, preprocessing: dict[str, Any]) -> torch.Tensor:
    """uint8 images (..., 3, H, W) as the model's float32 input: ToTensor's scaling, then Normalize."""
    # 255 as a tensor on the device, not a Python number: CUDA divides by a CPU scalar as a multiplication
    # by its reciprocal, which differs from ToTensor's true division in the last bit for half the values.
    scale = torch.tensor(255.0, device=images.device)
    mean = torch.as_tensor(preprocessing["mean"], dtype=torch.float32, device=images.device).view(-1, 1, 1)
    std = torch.as_tensor(preprocessing["std"], dtype=torch.float32, device=images.device).view(-1, 1, 1)
    return (images.float().div(scale) - mean) / std


def model_input(image: PIL.Image.Image, preprocessing: dict[str, Any]) -> torch.Tensor:
    """One RGB image as the model's input (3, H, W): the geometry, then the normalisation."""
    return normalize(geometry_transform(preprocessing)(image), preprocessing)
