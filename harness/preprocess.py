"""The model's input tensor, made in two halves that the harness keeps apart.

- Geometry, in DataLoader workers: the decoded RGB image resized and cropped, as a uint8 (3, H, W)
  tensor. A batch of these moves a quarter of the bytes of float32 to a GPU, and one decoded batch
  can serve every model that shares the geometry.
- Normalisation, on the device in each model's step: ``x.float().div(255)``, then ``(x - mean) / std``:
  torchvision's ToTensor and Normalize, the same float32 arithmetic, so the tensor is exactly theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import PIL.Image
import timm.data
import torch


def geometry_transform(data_config: dict[str, Any]) -> Callable[[PIL.Image.Image], torch.Tensor]:
    """The resize and crop of a timm data config, ending in a uint8 (3, H, W) tensor (no scaling)."""
    return timm.data.create_transform(**data_config, normalize=False)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 images (..., 3, H, W) as the model's float32 input: ToTensor's scaling, then Normalize."""
    # 255 as a tensor on the device, not a Python number: CUDA divides by a CPU scalar as a multiplication
    # by its reciprocal, which differs from ToTensor's true division in the last bit for half the values.
    scale = torch.tensor(255.0, device=images.device)
    mean = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    return (images.float().div(scale) - mean) / std
