"""The model's input tensor from a decoded image, as harness.preprocess.Preprocessing says: the geometry (resize and
crop, in DataLoader workers, as uint8) and the normalisation (on the device, in each model's step)."""

from __future__ import annotations

from collections.abc import Callable

import PIL.Image
import timm.data
import torch

from harness.preprocess import Preprocessing


def geometry_transform(preprocessing: Preprocessing) -> Callable[[PIL.Image.Image], torch.Tensor]:
    """The resize and crop of `preprocessing`, ending in a uint8 (3, H, W) tensor (no scaling).

    timm's eval transform without its normalisation: with the paper protocol, torchvision's
    Resize(s) and CenterCrop(s) (timm builds them when crop_pct is 1.0).
    """
    return timm.data.create_transform(
        input_size=preprocessing.input_size, interpolation=preprocessing.interpolation,
        crop_pct=preprocessing.crop_pct, crop_mode=preprocessing.crop_mode,
        mean=preprocessing.mean, std=preprocessing.std, normalize=False)


def normalize(images: torch.Tensor, preprocessing: Preprocessing) -> torch.Tensor:
    """uint8 images (..., 3, H, W) as the model's float32 input: ToTensor's scaling, then Normalize."""
    # 255 as a tensor on the device, not a Python number: CUDA divides by a CPU scalar as a multiplication
    # by its reciprocal, which differs from ToTensor's true division in the last bit for half the values.
    scale = torch.tensor(255.0, device=images.device)
    mean = torch.as_tensor(preprocessing.mean, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    std = torch.as_tensor(preprocessing.std, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    return (images.float().div(scale) - mean) / std


def model_input(image: PIL.Image.Image, preprocessing: Preprocessing) -> torch.Tensor:
    """One RGB image as the model's input (3, H, W): the geometry, then the normalisation."""
    return normalize(geometry_transform(preprocessing)(image), preprocessing)
