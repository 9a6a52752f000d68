"""torchvision models with torchvision's own weights: ``torchvision:NAME`` or ``torchvision:NAME/WEIGHTS``.

The weights are torchvision's weights API entries (``ResNet50_Weights.IMAGENET1K_V1``; without
``/WEIGHTS``, the architecture's ``DEFAULT``), read from torchvision's cache
(``$TORCH_HOME/hub/checkpoints``, the file torchvision itself downloads to). The paper evaluated
ResNet50, Wide-ResNet50-2 and MobileNet-v3-large with ``IMAGENET1K_V1`` (``pretrained=True``).
With HF_HUB_OFFLINE set nothing is downloaded, and a missing file is an error saying where to put it.
A file there is taken only if its SHA-256 begins with the prefix its name carries (torchvision's names,
``resnet50-0676ba61.pth``, as torch.hub's ``check_hash=True``): a file placed by hand under that name
is not thereby torchvision's weights.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from focus_common import network
from harness.models import hf_cache
from harness.models.adapters import LinearHeadClassifier, last_linear
from harness.models.checkpoints import load_checkpoint
from harness.models.failures import loading
from harness.models.identity import WeightsFile, identify, name_hash
from harness.models.mismatch import pretrained_head_advice
from harness.models.timm_models import UnknownModelError, close_names


def parse_name(name: str) -> tuple[str, Any]:
    """(architecture, weights enum entry) of ``NAME[/WEIGHTS]``, each checked against torchvision."""
    arch, _, weights_name = name.partition("/")
    architectures = torchvision.models.list_models(module=torchvision.models)
    if arch not in architectures:
        raise UnknownModelError(
            f"Unknown torchvision classification model {arch!r}. Close names: "
            f"{', '.join(close_names(arch, architectures)) or '(none)'}; list them with "
            f"torchvision.models.list_models(module=torchvision.models).")
    enum = torchvision.models.get_model_weights(arch)
    if not weights_name:
        return arch, enum.DEFAULT
    try:
        return arch, enum[weights_name]
    except KeyError:
        raise UnknownModelError(f"torchvision has no weights {weights_name!r} for {arch!r}; its weights are "
                                f"{[w for w in enum.__members__ if w != 'DEFAULT']}") from None


def weights_path(weights: Any) -> Path:
    """Where torchvision keeps (or would download) a weights entry's file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _advice(spec: str, weights: Any, path: Path) -> str:
    return (f"Put the file {weights.url} at {path} (torchvision's cache: $TORCH_HOME/hub/checkpoints; on a "
            f"machine with network, torchvision.models.get_model_weights({weights.__class__.__name__!r})."
            f"{weights.name}.get_state_dict() downloads it there), or pass a local file with --checkpoint "
            f"{spec}=PATH")


def _fetch_weights(spec: str, weights: Any) -> Path:
    path = weights_path(weights)
    if path.is_file():
        return path
    advice = _advice(spec, weights, path)
    if hf_cache.offline():
        raise hf_cache.WeightsNotFoundError(f"torchvision's weights {weights} for {spec!r} not found: not in "
                                       f"torchvision's cache and HF_HUB_OFFLINE is set. {advice}.")
    if (why := network.unreachable(weights.url)) is not None:
        raise hf_cache.WeightsNotFoundError(f"torchvision's weights {weights} for {spec!r} not found: not in "
                                            f"torchvision's cache, and its server cannot be reached ({why}); "
                                            f"{network.OFFLINE_ADVICE}. {advice}.")
    try:
        torch.hub.load_state_dict_from_url(weights.url, progress=False, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        raise hf_cache.WeightsNotFoundError(f"torchvision's weights {weights} for {spec!r} not found: not cached, "
                                       f"and the download failed ({error}). {advice}.") from error
    return path


def data_config(weights: Any) -> dict[str, Any]:
    """The weights' own preprocessing (torchvision's ImageClassification transform) in timm's terms."""
    transform = weights.transforms()
    crop, resize = transform.crop_size[0], transform.resize_size[0]
    return {"input_size": (3, crop, crop), "interpolation": transform.interpolation.value,
            "mean": tuple(transform.mean), "std": tuple(transform.std), "crop_pct": crop / resize,
            "crop_mode": "center"}


def create(spec: str, name: str, *, checkpoint: str | os.PathLike | None = None, num_classes: int | None = None,
           random_init: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """A torchvision model with its weights, and where they came from (see harness.models.create_model)."""
    arch, weights = parse_name(name)
    pretrained_classes = len(weights.meta["categories"])
    use_pretrained = checkpoint is None and not random_init
    if use_pretrained and num_classes is not None and num_classes != pretrained_classes:
        raise ValueError(pretrained_head_advice(spec, pretrained_classes, num_classes))
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes or pretrained_classes)
    weights_file, checkpoint_format = None, None
    if use_pretrained:
        path = _fetch_weights(spec, weights)
        advice = f"It is not torchvision's {weights}: delete it. {_advice(spec, weights, path)}."
        weights_file = identify(path, claimed=name_hash(path), advice=advice)
        with loading(spec, weights_file.path):
            model.load_state_dict(torch.load(weights_file.path, map_location="cpu", weights_only=True))
        source = f"torchvision:{weights}"
    elif checkpoint is not None:
        loaded = load_checkpoint(model, checkpoint)
        weights_file, checkpoint_format = WeightsFile(loaded["file"], loaded["sha256"]), loaded["format"]
        source = f"checkpoint:{checkpoint}"
    else:
        source = "random-init"
    return LinearHeadClassifier(model, last_linear(model)), {
        "architecture": arch,
        "weights": source,
        "weights_file": None if weights_file is None else str(weights_file.path),
        "sha256": None if weights_file is None else weights_file.sha256,
        "checkpoint_format": checkpoint_format,
        "data_config": data_config(weights),
    }
