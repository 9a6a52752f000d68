"""CLIP-style zero-shot classifiers through open_clip: ``open_clip:ARCH/TAG``, ``open_clip:hf-hub:ORG/NAME``.

A CLIP model classifies FOCUS's ten classes zero-shot: each class name is put into every prompt
template (CLIP's 80 ImageNet templates by default, or ``--prompts FILE``), the text embeddings are
normalised, averaged per class and normalised again (open_clip's ``build_zero_shot_classifier``),
and an image's logits are its normalised image embedding times those class embeddings, times the
model's logit scale. The label space is therefore ``focus``, and the preprocessing the model's own
(its image size, resize mode, interpolation, mean and std).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from focus_common import network
from focus_common.inputs import read_small_text, sha256_file
from harness.models import bounds, hf_cache
from harness.models.adapters import LinearHeadSizes
from harness.models.checkpoints import load_checkpoint
from harness.models.failures import loading
from harness.models.identity import WeightsFile, folder_weights, identify
from harness.models.timm_models import UnknownModelError, close_names

HF_HUB_PREFIX, LOCAL_DIR_PREFIX = "hf-hub:", "local-dir:"
# What an open_clip Hub repo holds: its config (model and preprocessing) and its weights.
REPO_CONFIG = "open_clip_config.json"
REPO_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
# What open_clip looks for in a folder, in its order (open_clip.factory._find_checkpoint_in_dir), then any file
# with one of the suffixes.
_FOLDER_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                        "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth", "model.safetensors",
                        "pytorch_model.bin", "pytorch_model.pth", "model.pth")
_FOLDER_SUFFIXES = (".safetensors", ".bin", ".pth")
MAX_PROMPTS_BYTES = 1 << 20
# Each template is encoded once per class: CLIP's ImageNet set has 80. A batch of texts through the text tower
# holds activations of (texts x context length x width): MAX_TEXTS_PER_BATCH bounds it.
MAX_TEMPLATES, MAX_TEXTS_PER_BATCH = 1000, 1000


def _open_clip():
    try:
        import open_clip
    except ImportError as error:
        raise ModuleNotFoundError("open_clip: models need the open_clip_torch package: pip install "
                                  "'focus-benchmark[clip]' (or pip install open_clip_torch)") from error
    return open_clip


class ZeroShotClassifier(LinearHeadSizes, nn.Module):
    """A CLIP image tower with a linear head made from text: logits = scale * normalise(image features) @ E.

    E holds one normalised class embedding per column. The head is an nn.Linear without bias (its
    weight scale * E^T), so the harness's feature probes see the normalised image embedding as the
    penultimate features and the class embeddings as the classifier, as for any other model.
    """

    def __init__(self, visual: nn.Module, class_embeddings: torch.Tensor, logit_scale: float):
        super().__init__()
        self.visual = visual
        self.head = nn.Linear(class_embeddings.shape[0], class_embeddings.shape[1], bias=False)
        with torch.no_grad():
            self.head.weight.copy_(logit_scale * class_embeddings.T)
        self.logit_scale = logit_scale

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(images), dim=-1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.head(features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(images))

    def get_classifier(self) -> nn.Linear:
        return self.head


def read_prompts(path: str | os.PathLike) -> list[str]:
    """Prompt templates from a text file: one per line, each with one ``{}`` for the class name.

    Blank lines and lines starting with ``#`` are left out; more than MAX_TEMPLATES are refused.
    """
    path = Path(path)
    text = read_small_text(path, "--prompts: prompt templates, one per line, e.g. 'a photo of a {}.'",
                           MAX_PROMPTS_BYTES)
    templates = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.count("{}") != 1 or line.replace("{}", "").count("{") or line.replace("{}", "").count("}"):
            shown = line if len(line) <= 80 else line[:77] + "..."
            raise ValueError(f"{path}, line {number}: {shown!r} must hold exactly one '{{}}' (where the class "
                             f"name goes) and no other braces")
        templates.append(line)
    if not templates:
        raise ValueError(f"{path}: holds no prompt template; write one per line, e.g. 'a photo of a {{}}.'")
    if len(templates) > MAX_TEMPLATES:
        raise ValueError(f"{path}: holds {len(templates):,} prompt templates, more than {MAX_TEMPLATES:,}: each is "
                         f"encoded through the text tower once per class (CLIP's ImageNet set has 80). Keep the "
                         f"templates you mean.")
    return templates


def default_templates() -> list[str]:
    """CLIP's 80 ImageNet prompt templates (open_clip's OPENAI_IMAGENET_TEMPLATES), as format strings."""
    return [template("{}") for template in _open_clip().OPENAI_IMAGENET_TEMPLATES]


def _weights_of_tag(spec: str, arch: str, tag: str) -> Path:
    open_clip = _open_clip()
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise UnknownModelError(f"open_clip has no pretrained tag {tag!r} for {arch!r}; its tags: {tags or '(none)'}")
    alternative = f"pass a local file with --checkpoint {spec}=PATH"
    if cfg.get("hf_hub"):
        # "org/name/" holds the default weight files, "org/name/file.bin" names one.
        repo_id, _, filename = cfg["hf_hub"].rstrip("/").rpartition("/") if not cfg["hf_hub"].endswith("/") else (
            cfg["hf_hub"].rstrip("/"), "", "")
        files = (filename,) if filename else REPO_WEIGHTS
        return hf_cache.fetch_file(repo_id, files, what=f"Pretrained weights for {spec!r}", alternative=alternative)
    if hf_cache.offline():
        raise hf_cache.WeightsNotFoundError(f"Pretrained weights for {spec!r} not found: they are downloaded from "
                                       f"{cfg['url']} and HF_HUB_OFFLINE is set; download it on a machine with "
                                       f"network and {alternative}")
    if (why := network.unreachable(cfg["url"])) is not None:
        raise hf_cache.WeightsNotFoundError(f"Pretrained weights for {spec!r} not found: they are downloaded from "
                                            f"{cfg['url']}, which cannot be reached ({why}); "
                                            f"{network.OFFLINE_ADVICE}, download them on a machine with network "
                                            f"and {alternative}")
    return Path(open_clip.download_pretrained(cfg))


def _preprocess_config(open_clip, model: nn.Module, spec: str) -> dict[str, Any]:
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][-1]
    modes = {"shortest": "center", "squash": "squash"}
    if cfg.get("resize_mode", "shortest") not in modes:
        raise ValueError(f"{spec}: open_clip resize mode {cfg['resize_mode']!r} (letterboxing) has no equivalent "
                         f"here; evaluate it with --preprocess paper")
    return {"input_size": (3, size, size), "interpolation": cfg.get("interpolation", "bicubic"),
            "mean": tuple(cfg["mean"]), "std": tuple(cfg["std"]), "crop_pct": 1.0,
            "crop_mode": modes[cfg.get("resize_mode", "shortest")]}


def _folder_model(spec: str, name: str, use_pretrained: bool) -> tuple[Path, str, dict[str, Any], Path | None]:
    """(folder, weights source, config, weights file or None) of an ``hf-hub:`` or ``local-dir:`` model."""
    if name.startswith(HF_HUB_PREFIX):
        folder = hf_cache.fetch_snapshot(name[len(HF_HUB_PREFIX):], [REPO_CONFIG, *(REPO_WEIGHTS if use_pretrained
                                                                                     else ())],
                                         what=f"Pretrained weights for {spec!r}",
                                         alternative=f"pass a local file with --checkpoint {spec}=PATH")
        source = "hub-cache"
    else:
        folder, source = Path(name[len(LOCAL_DIR_PREFIX):]).expanduser(), "local-dir"
    config = bounds.read_config(folder / REPO_CONFIG, "an open_clip model config (open_clip_config.json, its model "
                                "in model_cfg)", required=("model_cfg",))
    weights = None
    if use_pretrained:
        weights = folder_weights(folder, _FOLDER_WEIGHT_FILES, what=spec, suffixes=_FOLDER_SUFFIXES,
                                 from_hub=source == "hub-cache")
        if weights is None:
            raise hf_cache.WeightsNotFoundError(f"{spec}: {folder} holds no weights ({' or '.join(REPO_WEIGHTS)})")
    return folder, source, config, weights


def _tag_model(spec: str, name: str, use_pretrained: bool) -> tuple[str, Path | None, dict[str, Any]]:
    """(architecture, weights file or None, what open_clip must be told of the tag) of ``ARCH/TAG``."""
    open_clip = _open_clip()
    arch, _, tag = name.partition("/")
    if arch not in open_clip.list_models():
        raise UnknownModelError(f"Unknown open_clip model {arch!r}. Close names: "
                                f"{', '.join(close_names(arch, open_clip.list_models())) or '(none)'}")
    if not use_pretrained:
        return arch, None, {}
    if not tag:
        raise UnknownModelError(f"{spec}: name the weights as open_clip:{arch}/TAG, one of "
                                f"{open_clip.list_pretrained_tags_by_model(arch) or '(none)'} (or pass "
                                f"--checkpoint {spec}=PATH, or --random-init)")
    weights = _weights_of_tag(spec, arch, tag)
    # Given a file, open_clip no longer knows the tag's preprocessing, nor that OpenAI's weights were
    # trained with QuickGELU (built with GELU they give other features, silently): pass both on.
    tag_cfg = open_clip.get_pretrained_cfg(arch, tag)
    preprocess = {key: value for key, value in tag_cfg.items()
                  if key in ("mean", "std", "interpolation", "resize_mode")}
    return arch, weights, {"force_preprocess_cfg": preprocess, "force_quick_gelu": bool(tag_cfg.get("quick_gelu"))}


def _build(spec: str, name: str, use_pretrained: bool) -> tuple[nn.Module, str, str, str, WeightsFile | None]:
    """(model, open_clip's name for it, architecture, weights source, weights file): the weights chosen and
    hashed here, loaded by open_clip's own load_checkpoint (its state-dict conversions)."""
    open_clip = _open_clip()
    # Tower weights of their own (an HF text model's) would be a second source of weights: never.
    options = {"load_weights": False, "pretrained_text": False, "pretrained_image": False}
    if name.startswith((HF_HUB_PREFIX, LOCAL_DIR_PREFIX)):
        folder, source, config, path = _folder_model(spec, name, use_pretrained)
        model_name, arch = f"{LOCAL_DIR_PREFIX}{folder}", name
        with loading(spec, folder / REPO_CONFIG):
            bounds.check_model_size(spec, lambda: open_clip.create_model(model_name, device="meta", **options),
                                    folder / REPO_CONFIG, config)
    else:
        arch, path, tag_options = _tag_model(spec, name, use_pretrained)
        model_name, source, options = arch, "hub-cache", options | tag_options
    weights = None if path is None else identify(path)
    with loading(spec, model_name if weights is None else weights.path):
        model = open_clip.create_model(model_name, **options)
        if weights is not None:
            open_clip.load_checkpoint(model, str(weights.path), strict=True, weights_only=True)
    return model, model_name, arch, source, weights


def _zero_shot_head(open_clip, model: nn.Module, model_name: str, class_names: Sequence[str],
                    templates: list[str]) -> torch.Tensor:
    """The class embeddings, texts encoded MAX_TEXTS_PER_BATCH at most at a time (whole classes per batch)."""
    per_batch = max(1, MAX_TEXTS_PER_BATCH // len(templates))
    return open_clip.build_zero_shot_classifier(model, open_clip.get_tokenizer(model_name), list(class_names),
                                                templates, num_classes_per_batch=per_batch)


def create(spec: str, name: str, *, class_names: Sequence[str], checkpoint: str | os.PathLike | None = None,
           random_init: bool = False, prompts: str | os.PathLike | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A zero-shot FOCUS classifier from an open_clip model, and where its weights came from."""
    open_clip = _open_clip()
    use_pretrained = checkpoint is None and not random_init
    templates = default_templates() if prompts is None else read_prompts(prompts)
    model, model_name, arch, source, weights = _build(spec, name, use_pretrained)
    checkpoint_format = None
    if checkpoint is not None:
        loaded = load_checkpoint(model, checkpoint)
        weights, checkpoint_format = WeightsFile(loaded["file"], loaded["sha256"]), loaded["format"]
        source = f"checkpoint:{checkpoint}"
    if random_init:
        source = "random-init"
    model.eval()
    embeddings = _zero_shot_head(open_clip, model, model_name, class_names, templates)
    classifier = ZeroShotClassifier(model.visual, embeddings, float(model.logit_scale.detach().exp()))
    return classifier, {
        "architecture": arch,
        "weights": source,
        "weights_file": None if weights is None else str(weights.path),
        "sha256": None if weights is None else weights.sha256,
        "checkpoint_format": checkpoint_format,
        "data_config": _preprocess_config(open_clip, model, spec),
        "zero_shot": {"class_names": list(class_names), "num_templates": len(templates),
                      "templates": "CLIP's ImageNet templates (open_clip OPENAI_IMAGENET_TEMPLATES)" if prompts is None
                      else str(Path(prompts).resolve()),
                      "templates_sha256": None if prompts is None else sha256_file(prompts),
                      "logit_scale": classifier.logit_scale},
    }
