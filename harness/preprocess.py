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

The resolved preprocessing is one frozen record, `Preprocessing` (config.json records its `to_dict()`;
a run's record is read back with `Preprocessing.from_dict`, which checks it). The tensor is made in two
halves that the harness keeps apart (harness/transforms.py):

- geometry, in DataLoader workers: the decoded image resized and cropped, as a uint8 (3, H, W)
  tensor. A batch of these moves a quarter of the bytes of float32 to a GPU, and one decoded batch
  can serve every model that shares the geometry;
- normalisation, on the device in each model's step: ``x.float().div(255)``, then
  ``(x - mean) / std``: torchvision's ToTensor and Normalize, the same float32 arithmetic, so the
  tensor is exactly theirs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from harness.settings import (  # noqa: F401 - the choices and bounds this module applies
    CROP_MODES,
    DEFAULT_PROTOCOL,
    INTERPOLATIONS,
    MAX_CROP_PCT,
    MAX_IMG_SIZE,
    MAX_RESIZE,
    MIN_CROP_PCT,
    OVERRIDES,
    PROTOCOLS,
)

# The authors' geometry; the input size, mean and std stay the model's own.
PAPER_GEOMETRY = {"crop_pct": 1.0, "crop_mode": "center", "interpolation": "bilinear"}
# How messages name each setting: as the command line's option, or as the key of a model's preprocessing config.
_OPTION_NAMES = {key: f"--{key.replace('_', '-')}" for key in OVERRIDES}
_CONFIG_NAMES = {key: key for key in OVERRIDES} | {"img_size": "input_size"}


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How an image becomes a model's input, as config.json records it ("preprocessing").

    protocol        "paper" (the authors' resize and centre crop) or "timm" (the model's own config)
    custom          True when a timm validate.py override (--img-size, --crop-pct, ...) was given
    input_size      (3, H, W), the crop
    resize          the size resized to before the crop, floor(crop / crop_pct): the shorter side (crop_mode
                    center), the longer (border), or both sides (squash); (h, w) when not square
    crop_pct        crop / resize (1.0 under the paper protocol: no 0.875 crop)
    crop_mode       "center", "squash" or "border"
    interpolation   the resize filter: "bilinear", "bicubic", ...
    mean, std       the normalisation, 3 values each
    """

    protocol: str
    custom: bool
    input_size: tuple[int, int, int]
    resize: int | tuple[int, int]
    crop_pct: float
    crop_mode: str
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def geometry(self) -> tuple:
        """What decoding, resizing and cropping depend on (not the normalisation): inputs of equal geometry are
        the same uint8 tensors, so models that agree on it share one decoded batch."""
        return self.input_size, self.resize, self.crop_pct, self.crop_mode, self.interpolation

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (lists for tuples), as config.json, features.json and gradcam.json hold it."""
        record = dataclasses.asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in record.items()}

    @classmethod
    def from_dict(cls, record: Any, source: str = "preprocessing") -> "Preprocessing":
        """A recorded preprocessing, checked as the command line's is: a run folder's config may be damaged."""
        fields = [field.name for field in dataclasses.fields(cls)]
        if not isinstance(record, dict) or set(record) != set(fields):
            raise ValueError(f"{source}: expected a preprocessing record with the keys {fields}, got "
                             f"{str(record)[:200]}")
        try:
            preprocessing = cls(
                protocol=str(record["protocol"]), custom=bool(record["custom"]),
                input_size=_sizes(record["input_size"], 3), resize=_resize(record["resize"]),
                crop_pct=float(record["crop_pct"]), crop_mode=str(record["crop_mode"]),
                interpolation=str(record["interpolation"]), mean=_channels(record["mean"]),
                std=_channels(record["std"]))
            check_preprocessing(preprocessing)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: not a usable preprocessing ({err})") from None
        return preprocessing

    def summary(self) -> str:
        """In a few words (reports, logs): protocol, resize→crop, filter, what is not usual.

        >>> resolve_preprocessing({"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.485, 0.456,
        ...     0.406), "std": (0.229, 0.224, 0.225), "crop_pct": 0.875, "crop_mode": "center"}, "timm").summary()
        'timm: 256→224 bicubic'
        """
        words = [f"{_size_text(self.resize)}→{_size_text(self.input_size[1:])} {self.interpolation}"]
        if self.crop_mode != "center":
            words.append(self.crop_mode)
        if self.custom:
            words.append(f"mean {_values_text(self.mean)} std {_values_text(self.std)}")
        return f"{self.protocol}{' (custom)' if self.custom else ''}: " + ", ".join(words)


def _sizes(values: Any, count: int) -> tuple[int, ...]:
    if not isinstance(values, (list, tuple)) or len(values) != count or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"expected {count} whole numbers, got {str(values)[:80]}")
    return tuple(values)


def _resize(value: Any) -> int | tuple[int, int]:
    return _sizes([value], 1)[0] if not isinstance(value, (list, tuple)) else _sizes(value, 2)


def _channels(values: Any) -> tuple[float, float, float]:
    if not isinstance(values, (list, tuple)) or len(values) != 3:
        raise ValueError(f"expected 3 values (R G B), got {str(values)[:80]}")
    return tuple(float(v) for v in values)


def _size_text(size: int | Sequence[int]) -> str:
    if isinstance(size, int):
        return str(size)
    return str(size[0]) if size[0] == size[1] else f"{size[0]}x{size[1]}"


def _values_text(values: Sequence[float]) -> str:
    return f"{values[0]:g}" if len(set(values)) == 1 else ",".join(f"{v:g}" for v in values)


def check_preprocessing(preprocessing: Preprocessing) -> None:
    """A ValueError naming the first setting that no command-line option could have given (a tampered record)."""
    if preprocessing.protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {preprocessing.protocol!r}")
    resize = (preprocessing.resize,) if isinstance(preprocessing.resize, int) else preprocessing.resize
    if preprocessing.input_size[0] != 3 or not all(1 <= size <= MAX_IMG_SIZE for size in preprocessing.input_size[1:]):
        raise ValueError(f"input_size {list(preprocessing.input_size)} must be 3 channels of 1 to {MAX_IMG_SIZE} "
                         f"pixels (the bounds of --img-size)")
    if not all(1 <= size <= MAX_RESIZE for size in resize):
        raise ValueError(f"resize {preprocessing.resize} must be from 1 to {MAX_RESIZE} pixels (the largest the "
                         f"bounds of --img-size and --crop-pct give)")
    check_overrides({"crop_pct": preprocessing.crop_pct, "crop_mode": preprocessing.crop_mode,
                     "interpolation": preprocessing.interpolation, "mean": list(preprocessing.mean),
                     "std": list(preprocessing.std)})


def check_overrides(overrides: dict[str, Any], names: dict[str, str] = _OPTION_NAMES) -> None:
    """A ValueError naming the first override that timm's transforms cannot take (each named as `names` says)."""
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ValueError(f"unknown preprocessing override(s) {unknown}; the overrides are {list(OVERRIDES)}")
    if overrides.get("img_size") is not None and not 1 <= overrides["img_size"] <= MAX_IMG_SIZE:
        raise ValueError(f"{names['img_size']} must be a number of pixels from 1 to {MAX_IMG_SIZE}, got "
                         f"{overrides['img_size']}")
    if overrides.get("crop_pct") is not None and not MIN_CROP_PCT <= overrides["crop_pct"] <= MAX_CROP_PCT:
        raise ValueError(f"{names['crop_pct']} must be a fraction (crop size / resize size, e.g. 0.875) from "
                         f"{MIN_CROP_PCT} to {MAX_CROP_PCT}, got {overrides['crop_pct']}")
    if overrides.get("crop_mode") not in (None, *CROP_MODES):
        raise ValueError(f"{names['crop_mode']} must be one of {list(CROP_MODES)}, got {overrides['crop_mode']!r}")
    if overrides.get("interpolation") not in (None, *INTERPOLATIONS):
        raise ValueError(f"{names['interpolation']} must be one of {list(INTERPOLATIONS)}, got "
                         f"{overrides['interpolation']!r}")
    for key in ("mean", "std"):
        values = overrides.get(key)
        if values is not None and len(values) not in (1, 3):
            raise ValueError(f"{names[key]} takes 1 value (for every channel) or 3 (R G B), got {len(values)}: "
                             f"{values}")
        if values is not None and not all(math.isfinite(v) for v in values):
            raise ValueError(f"{names[key]} must be finite numbers, got {values}")
    if overrides.get("std") is not None and min(overrides["std"]) <= 0:
        raise ValueError(f"{names['std']} must be positive, got {overrides['std']}")


def check_data_config(data_config: dict[str, Any], source: str) -> None:
    """A ValueError naming the first setting of a model's own preprocessing config (timm's data config, an image
    processor's, an open_clip preprocess config) outside the bounds of the command line's overrides.

    A config file is input as much as the command line: an input size of 10^5 pixels would have every
    DataLoader worker resize each image to ten gigapixels.
    """
    try:
        channels, *sizes = _sizes(list(data_config.get("input_size") or ()), 3)
        if channels != 3:
            raise ValueError(f"input_size must have 3 channels (RGB), got {channels}")
        for size in sizes:
            check_overrides({"img_size": size}, _CONFIG_NAMES)
        check_overrides({key: list(value) if key in ("mean", "std") else value for key, value in data_config.items()
                         if key in ("crop_pct", "mean", "std") and value is not None}, _CONFIG_NAMES)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from None


def resolve_preprocessing(data_config: dict[str, Any], protocol: str = "paper", **overrides: Any) -> Preprocessing:
    """A model's preprocessing under `protocol`, overrides applied as timm's validate.py does.

    `data_config` is the model's own preprocessing in timm's data-config terms (input_size,
    interpolation, mean, std, crop_pct, crop_mode): harness.models' info["data_config"], which for a
    timm model is ``timm.data.resolve_data_config(model=model)``. `overrides` are OVERRIDES' keys;
    None means not given. Returns the Preprocessing (custom: any override given; resize: see resize_size).

    >>> own = {"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.5,) * 3, "std": (0.5,) * 3,
    ...        "crop_pct": 0.875, "crop_mode": "center"}
    >>> paper = resolve_preprocessing(own, "paper")
    >>> paper.resize, paper.interpolation, paper.mean, resolve_preprocessing(own, "timm").resize
    (224, 'bilinear', (0.5, 0.5, 0.5), 256)
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
    import timm.data  # imported where it is needed: a command's --help must not wait for it

    config = timm.data.resolve_data_config(args=overrides, pretrained_cfg=config)
    resize = resize_size(config["input_size"], config["crop_pct"])
    return Preprocessing(
        protocol=protocol, custom=bool(overrides), input_size=tuple(int(v) for v in config["input_size"]),
        resize=resize if isinstance(resize, int) else tuple(resize), crop_pct=float(config["crop_pct"]),
        crop_mode=config["crop_mode"], interpolation=config["interpolation"],
        mean=tuple(float(v) for v in config["mean"]), std=tuple(float(v) for v in config["std"]))


def resize_size(input_size: Sequence[int], crop_pct: float) -> int | list[int]:
    """The size the image is resized to before the crop, as timm computes it: floor(crop / crop_pct).

    The shorter side with crop_mode center, the longer with border, both sides with squash; one
    number for a square input.

    >>> resize_size([3, 224, 224], 0.875), resize_size([3, 380, 380], 1.0), resize_size([3, 224, 320], 0.9)
    (256, 380, [248, 355])
    """
    height, width = (math.floor(size / crop_pct) for size in input_size[-2:])
    return height if height == width else [height, width]
