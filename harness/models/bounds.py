"""A model's config files read safely, and the sizes they ask for bounded before anything is allocated.

A config file (timm's config.json, open_clip_config.json, a transformers config.json) says how big a
model is: its classes, widths, depths, image size. A damaged or hostile one can ask for tens of
gigabytes, which the library would allocate before anything looked. So the config is read here first
(bounded, UTF-8, a JSON object, errors naming the file), its head bounded by MAX_CLASSES, and the
architecture it describes built on PyTorch's meta device, which allocates nothing, to count its
parameters and buffers: above MAX_PARAMETERS, or above the memory available now, it is refused,
naming the config and its largest sizes, before the real build. Architectures that a library defines
in code (timm and torchvision names, open_clip's built-in configs) have their sizes fixed by that
code; only their head is bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
import torch
from torch import nn

from focus_common.inputs import read_json
from focus_common.messages import quote

# Twice the largest image classifier published (RegNet-Y 10B SEER): 80 GB of float32.
MAX_PARAMETERS = 20_000_000_000
MAX_CLASSES = 100_000  # ImageNet-22k has 21,843 classes
MAX_CONFIG_BYTES = 16 * 2**20
_SHOWN_SIZES = 4
# Not sizes of the network: a label's index; the head, bounded (and named) on its own.
_NOT_SIZES = {"label2id", "num_classes", "num_labels"}
_FLOAT32_BYTES = 4  # models are built in float32


def read_config(path: Path, what: str, required: Sequence[str] = ()) -> dict[str, Any]:
    """A model's JSON config: a bounded read of UTF-8 JSON holding an object with the `required` keys.

    Every failure is a ValueError naming the file and `what` it should be.
    """
    advice = f"Expected {what}; save the model again or fetch the file again."
    config = read_json(path, what, MAX_CONFIG_BYTES, advice=advice)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: holds a JSON {type(config).__name__}, not an object. {advice}")
    missing = [key for key in required if key not in config]
    if missing:
        raise ValueError(f"{path}: has no {quote(missing[0])}. {advice}")
    return config


def check_classes(spec: str, count: Any, field: str) -> None:
    """Refuse a head size that is not a whole number of classes from 1 to MAX_CLASSES."""
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_CLASSES:
        raise ValueError(f"{spec}: {field} is {quote(count)}; a classifier head has from 1 to {MAX_CLASSES:,} classes "
                         f"(ImageNet-22k has 21,843). Check the config.")


def largest_sizes(config: Mapping[str, Any], shown: int = _SHOWN_SIZES) -> str:
    """The config's largest whole numbers (but its head's), named by their keys, for a message.

    >>> largest_sizes({"num_classes": 1000, "model_args": {"embed_dim": 16384, "depth": 48}})
    'model_args.embed_dim=16,384, model_args.depth=48'
    """
    sizes = sorted(_whole_numbers(config), key=lambda item: -item[1])[:shown]
    return ", ".join(f"{key}={value:,}" for key, value in sizes) or "no sizes"


def _whole_numbers(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, int]]:
    for key, value in config.items():
        if key in _NOT_SIZES:
            continue
        if isinstance(value, Mapping):
            yield from _whole_numbers(value, f"{prefix}{key}.")
        elif isinstance(value, int) and not isinstance(value, bool):
            yield f"{prefix}{key}", value


def available_memory() -> int:
    """The bytes of memory available now (psutil's estimate: free, and reclaimable caches)."""
    return psutil.virtual_memory().available


def check_model_size(spec: str, build: Callable[[], nn.Module], config_file: Path,
                     config: Mapping[str, Any]) -> int:
    """The parameters and buffers of the model `build` makes, counted on the meta device (nothing is
    allocated); refused above MAX_PARAMETERS or the memory available, naming the config and its largest sizes."""
    with torch.device("meta"):
        model = build()
    if isinstance(getattr(model, "num_classes", None), int):  # a head set elsewhere in the config (timm's model_args)
        check_classes(spec, model.num_classes, f"the number of classes {config_file} gives")
    count = sum(t.numel() for t in model.parameters()) + sum(t.numel() for t in model.buffers())
    needed, available = _FLOAT32_BYTES * count, available_memory()
    if count > MAX_PARAMETERS or needed > available:
        bound = (f"more than the {MAX_PARAMETERS:,} this harness builds" if count > MAX_PARAMETERS
                 else f"more than the {available / 1e9:,.1f} GB of memory available")
        raise ValueError(f"{spec}: {config_file} describes a model of {count:,} parameters and buffers "
                         f"({largest_sizes(config)}), {needed / 1e9:,.1f} GB of float32: {bound}. Check the "
                         f"config's sizes: it is damaged, or not an image classifier's.")
    return count
