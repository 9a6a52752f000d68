"""Hugging Face transformers image classifiers: ``transformers:ORG/NAME`` or ``transformers:PATH``.

The model is loaded with ``AutoModelForImageClassification`` from a local folder (a path, or the
repo's snapshot in the Hugging Face cache, downloaded only when HF_HUB_OFFLINE is unset) and
preprocessed as its image processor says (its resize, crop, interpolation, mean and std, expressed
in timm's data-config terms). Its label space follows from its labels: 1000 labels are an
ImageNet-1k head, scored with the paper's mapping; ten labels naming the FOCUS (or CIFAR-10) classes
are a FOCUS head, reordered to FOCUS's class order. Its config is read and its head bounded first,
its size counted on the meta device, and transformers is told to load the weights files chosen (and
hashed) here. transformers is an optional extra (``pip install 'focus-benchmark[transformers]'``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from harness.models import bounds, hf_cache
from harness.models.adapters import LinearHeadClassifier, last_linear
from harness.models.checkpoints import load_checkpoint
from harness.models.failures import loading
from harness.models.identity import WeightsFile, folder_weights, identify

SNAPSHOT_PATTERNS = ("*.json", "*.safetensors", "pytorch_model*.bin")
# What transformers loads from a folder, in its order: one file, or shards named by an index.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
# CIFAR-10's names for the classes FOCUS calls otherwise.
SYNONYMS = {"airplane": "plane", "aeroplane": "plane", "automobile": "car"}
# PIL's resampling filters (the image processors' `resample`) by number, as timm names them.
RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
NUM_IMAGENET_CLASSES = 1000


def _transformers():
    try:
        import transformers
    except ImportError as error:
        raise ModuleNotFoundError("transformers: models need the transformers package: pip install "
                                  "'focus-benchmark[transformers]' (or pip install transformers)") from error
    return transformers


def label_order(labels: Sequence[str], class_names: Sequence[str]) -> list[int] | None:
    """For ten labels naming the FOCUS classes (CIFAR-10 spellings too), the label index of each FOCUS class.

    >>> label_order(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    ...             ["truck", "car", "plane", "ship", "cat", "dog", "horse", "deer", "frog", "bird"])
    [9, 1, 0, 8, 3, 5, 7, 4, 6, 2]
    """
    names = [SYNONYMS.get(label.strip().lower(), label.strip().lower()) for label in labels]
    if sorted(names) != sorted(class_names):
        return None
    return [names.index(name) for name in class_names]


def _is_generic(labels: Sequence[str]) -> bool:
    """Labels a config gets when none were given (LABEL_0, LABEL_1, ...)."""
    return all(re.fullmatch(r"LABEL_\d+", label) for label in labels)


def label_space_of(labels: Sequence[str], class_names: Sequence[str], imagenet_names: Sequence[str],
                   spec: str) -> tuple[str, list[int] | None]:
    """("imagenet", None) for an ImageNet-1k head, ("focus", order) for a FOCUS/CIFAR-10 head; else an error."""
    if len(labels) == NUM_IMAGENET_CLASSES:
        agree = sum(label.split(",")[0].strip().lower() == name.lower() for label, name in zip(labels, imagenet_names))
        if _is_generic(labels) or agree >= 0.99 * NUM_IMAGENET_CLASSES:
            return "imagenet", None
        raise ValueError(f"{spec}: its 1000 labels are not ImageNet-1k's classes in ImageNet's order (only {agree} "
                         f"agree, e.g. label 0 is {labels[0]!r}), so the paper's mapping does not apply")
    order = label_order(labels, class_names)
    if order is not None:
        return "focus", order
    shown = ", ".join(repr(label) for label in labels[:6]) + (", ..." if len(labels) > 6 else "")
    raise ValueError(f"{spec}: its head has {len(labels)} labels ({shown}). FOCUS scores ImageNet-1k heads (1000 "
                     f"labels) and heads over the ten FOCUS classes {list(class_names)} (CIFAR-10's names too)")


def data_config(processor_config: dict[str, Any], spec: str) -> dict[str, Any]:
    """An image processor's preprocessing in timm's data-config terms.

    Covers the processors of ViT, DeiT, BEiT, ConvNeXt, Swin, ResNet and the like: resize to a square
    (``size`` height/width: crop_mode "squash") or the shorter side (``shortest_edge``: "center"),
    then an optional center crop; ConvNeXt's ``crop_pct`` below 384 px.
    """
    config = dict(processor_config)
    if not config.get("do_rescale", True) or abs(config.get("rescale_factor", 1 / 255) - 1 / 255) > 1e-9:
        raise ValueError(f"{spec}: its image processor does not rescale pixels by 1/255 "
                         f"(do_rescale={config.get('do_rescale')}, rescale_factor={config.get('rescale_factor')})")
    size = config.get("size") or {}
    if isinstance(size, int):
        size = {"shortest_edge": size}
    crop = config.get("crop_size") if config.get("do_center_crop") else None
    crop = {"height": crop, "width": crop} if isinstance(crop, int) else crop
    if "height" in size and "width" in size and size["height"] == size["width"]:
        scale, mode = size["height"], "squash"
    elif "shortest_edge" in size:
        scale, mode = size["shortest_edge"], "center"
    else:
        raise ValueError(f"{spec}: image processor size {size} has no equivalent here (a square or a shorter "
                         f"side); evaluate it with --preprocess paper")
    if crop:
        if crop["height"] != crop["width"]:
            raise ValueError(f"{spec}: a non-square crop {crop} has no equivalent here; use --preprocess paper")
        input_size, crop_pct = crop["height"], crop["height"] / scale
    elif config.get("crop_pct") and mode == "center" and scale < 384:  # ConvNeXt: resize scale/crop_pct, crop
        input_size, crop_pct = scale, config["crop_pct"]
    else:
        input_size, crop_pct = scale, 1.0
    resample = config.get("resample", 2)
    mean, std = (config["image_mean"], config["image_std"]) if config.get("do_normalize", True) else ((0.0,) * 3,
                                                                                                      (1.0,) * 3)
    return {"input_size": (3, input_size, input_size), "interpolation": RESAMPLE.get(int(resample), "bilinear"),
            "mean": tuple(mean), "std": tuple(std), "crop_pct": crop_pct, "crop_mode": mode}


def _folder(spec: str, name: str, need_weights: bool) -> tuple[Path, str]:
    path = Path(name).expanduser()
    if path.is_dir():
        return path, "local-dir"
    if name.startswith((".", "/", "~")) or name.partition("@")[0].count("/") > 1:
        raise FileNotFoundError(f"{spec}: {path} is not a folder; transformers: takes a Hub repo id (ORG/NAME) or "
                                f"a folder saved with save_pretrained")
    patterns = SNAPSHOT_PATTERNS if need_weights else ("*.json",)
    return hf_cache.fetch_snapshot(name, patterns, what=f"The model {spec!r}",
                              alternative="pass a folder saved with save_pretrained as transformers:PATH"), "hub-cache"


def _weights_files(spec: str, folder: Path, from_hub: bool) -> list[Path]:
    """The files transformers loads from the folder: its one weights file, or the shards its index names."""
    chosen = folder_weights(folder, WEIGHT_FILES, what=spec, from_hub=from_hub)
    if chosen is None:
        raise hf_cache.WeightsNotFoundError(f"{spec}: {folder} holds no weights ({' or '.join(WEIGHT_FILES)}); pass "
                                            f"a folder saved with save_pretrained")
    if not chosen.name.endswith(".index.json"):
        return [chosen]
    index = bounds.read_config(chosen, "a sharded weights index (weight_map: tensor name -> shard file)",
                               required=("weight_map",))
    weight_map = index["weight_map"]
    shards = set(weight_map.values()) if isinstance(weight_map, dict) else {None}
    if not all(isinstance(shard, str) and Path(shard).name == shard and (folder / shard).is_file() for shard in shards):
        raise ValueError(f"{chosen}: its weight_map must name shard files of {folder} (names, not paths), and they "
                         f"must be there")
    return [folder / shard for shard in sorted(shards)]


def _sha256_of(files: list[WeightsFile]) -> str | None:
    """The weights file's SHA-256; for weights in several shards, the SHA-256 of their SHA-256s."""
    if len(files) == 1:
        return files[0].sha256
    if not files:
        return None
    return hashlib.sha256("".join(f.sha256 for f in files).encode()).hexdigest()


def _check_labels(spec: str, config_file: Path, config: dict[str, Any]) -> None:
    """Bound the head before transformers makes a label for each class of it."""
    if "num_labels" in config:
        bounds.check_classes(spec, config["num_labels"], f"{config_file} num_labels")
    if isinstance(config.get("id2label"), dict):
        bounds.check_classes(spec, len(config["id2label"]), f"the number of {config_file} id2label")


@contextlib.contextmanager
def _unloadable(spec: str, folder: Path) -> Iterator[None]:
    """What transformers raises on a folder it cannot read, as a ValueError naming the folder."""
    try:
        yield
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{spec}: cannot load an image classifier and its image processor from {folder} "
                         f"({type(error).__name__}: {error})") from error


def _load(transformers, spec: str, folder: Path, files: list[Path]) -> tuple[nn.Module, Any]:
    """(model, image processor): its weights from `files` (none: random), its size counted on meta first."""
    config_file = folder / "config.json"
    raw = bounds.read_config(config_file, "a transformers model config (config.json, as save_pretrained writes it)")
    _check_labels(spec, config_file, raw)
    auto = transformers.AutoModelForImageClassification
    with loading(spec, config_file), _unloadable(spec, folder):
        processor = transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    with loading(spec, config_file):
        bounds.check_model_size(spec, lambda: auto.from_config(config), config_file, raw)
    if not files:
        with loading(spec, config_file), _unloadable(spec, folder):
            return auto.from_config(config), processor
    with loading(spec, files[0]), _unloadable(spec, folder):
        # use_safetensors makes transformers load the very files chosen (and hashed) here.
        return auto.from_pretrained(folder, config=config, local_files_only=True,
                                    use_safetensors=files[0].suffix == ".safetensors"), processor


def create(spec: str, name: str, *, class_names: Sequence[str], imagenet_names: Sequence[str],
           checkpoint: str | os.PathLike | None = None, random_init: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """A transformers image classifier behind timm's interface, and where its weights came from."""
    transformers = _transformers()
    use_pretrained = checkpoint is None and not random_init
    folder, source = _folder(spec, name, use_pretrained)
    files = _weights_files(spec, folder, from_hub=source == "hub-cache") if use_pretrained else []
    weights = [identify(file) for file in files]
    model, processor = _load(transformers, spec, folder, files)
    data = data_config(processor.to_dict(), spec)
    weights_file, checkpoint_format, sha256 = None, None, _sha256_of(weights)
    if use_pretrained:
        weights_file = files[0] if len(files) == 1 else folder
    elif checkpoint is not None:
        loaded = load_checkpoint(model, checkpoint)
        weights_file, checkpoint_format, sha256 = loaded["file"], loaded["format"], loaded["sha256"]
        source = f"checkpoint:{checkpoint}"
    else:
        source = "random-init"
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    label_space, order = label_space_of(labels, class_names, imagenet_names, spec)
    classifier = LinearHeadClassifier(model, last_linear(model), call=lambda m, x: m(pixel_values=x).logits,
                                      order=order)
    return classifier, {
        "architecture": type(model).__name__,
        "weights": source,
        "weights_file": None if weights_file is None else str(weights_file),
        "sha256": sha256,
        "checkpoint_format": checkpoint_format,
        "data_config": data,
        "label_space": label_space,
        "labels": None if order is None else [labels[i] for i in order],
    }
