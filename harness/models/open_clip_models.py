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

from focus_common.inputs import read_small_text
from harness.models import hf_cache
from harness.models.adapters import LinearHeadSizes
from harness.models.checkpoints import load_checkpoint
from harness.models.timm_models import UnknownModelError, close_names
from focus_common.inputs import sha256_file

HF_HUB_PREFIX, LOCAL_DIR_PREFIX = "hf-hub:", "local-dir:"
# What an open_clip Hub repo holds: its config (model and preprocessing) and its weights.
REPO_CONFIG = "open_clip_config.json"
REPO_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
MAX_PROMPTS_BYTES = 1 << 20


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

    Blank lines and lines starting with ``#`` are left out.
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


def create(spec: str, name: str, *, class_names: Sequence[str], checkpoint: str | os.PathLike | None = None,
           random_init: bool = False, prompts: str | os.PathLike | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A zero-shot FOCUS classifier from an open_clip model, and where its weights came from."""
    open_clip = _open_clip()
    use_pretrained = checkpoint is None and not random_init
    weights_file, pretrained, force_preprocess, quick_gelu = None, None, None, False
    if name.startswith((HF_HUB_PREFIX, LOCAL_DIR_PREFIX)):
        if name.startswith(HF_HUB_PREFIX):
            folder = hf_cache.fetch_snapshot(name[len(HF_HUB_PREFIX):], [REPO_CONFIG, *(REPO_WEIGHTS if use_pretrained
                                                                                     else ())],
                                        what=f"Pretrained weights for {spec!r}",
                                        alternative=f"pass a local file with --checkpoint {spec}=PATH")
        else:
            folder = Path(name[len(LOCAL_DIR_PREFIX):]).expanduser()
        # open_clip reads the folder's config, and its weights when there are any.
        model_name, arch, source = f"{LOCAL_DIR_PREFIX}{folder}", name, "hub-cache"
        if name.startswith(LOCAL_DIR_PREFIX):
            source = "local-dir"
        if use_pretrained:
            weights_file = next((folder / f for f in REPO_WEIGHTS if (folder / f).is_file()), None)
            if weights_file is None:
                raise hf_cache.WeightsNotFoundError(f"{spec}: {folder} holds no weights ({' or '.join(REPO_WEIGHTS)})")
    else:
        arch, _, tag = name.partition("/")
        if arch not in open_clip.list_models():
            raise UnknownModelError(f"Unknown open_clip model {arch!r}. Close names: "
                                    f"{', '.join(close_names(arch, open_clip.list_models())) or '(none)'}")
        model_name, source = arch, "hub-cache"
        if use_pretrained:
            if not tag:
                raise UnknownModelError(f"{spec}: name the weights as open_clip:{arch}/TAG, one of "
                                        f"{open_clip.list_pretrained_tags_by_model(arch) or '(none)'} (or pass "
                                        f"--checkpoint {spec}=PATH, or --random-init)")
            weights_file = _weights_of_tag(spec, arch, tag)
            pretrained = str(weights_file)
            # Given a file, open_clip no longer knows the tag's preprocessing, nor that OpenAI's weights were
            # trained with QuickGELU (built with GELU they give other features, silently): pass both on.
            tag_cfg = open_clip.get_pretrained_cfg(arch, tag)
            force_preprocess = {key: value for key, value in tag_cfg.items()
                                if key in ("mean", "std", "interpolation", "resize_mode")}
            quick_gelu = bool(tag_cfg.get("quick_gelu"))
    model = open_clip.create_model(model_name, pretrained=pretrained, load_weights=use_pretrained,
                                   force_preprocess_cfg=force_preprocess, force_quick_gelu=quick_gelu)
    checkpoint_format = None
    if checkpoint is not None:
        loaded = load_checkpoint(model, checkpoint)
        weights_file, checkpoint_format, source = loaded["file"], loaded["format"], f"checkpoint:{checkpoint}"
    if random_init:
        source = "random-init"
    model.eval()
    templates = default_templates() if prompts is None else read_prompts(prompts)
    embeddings = open_clip.build_zero_shot_classifier(model, open_clip.get_tokenizer(model_name), list(class_names),
                                                      templates, num_classes_per_batch=None)
    classifier = ZeroShotClassifier(model.visual, embeddings, float(model.logit_scale.detach().exp()))
    return classifier, {
        "architecture": arch,
        "weights": source,
        "weights_file": None if weights_file is None else str(weights_file),
        "sha256": None if weights_file is None else sha256_file(weights_file),
        "checkpoint_format": checkpoint_format,
        "data_config": _preprocess_config(open_clip, model, spec),
        "zero_shot": {"class_names": list(class_names), "num_templates": len(templates),
                      "templates": "CLIP's ImageNet templates (open_clip OPENAI_IMAGENET_TEMPLATES)" if prompts is None
                      else str(Path(prompts).resolve()),
                      "templates_sha256": None if prompts is None else sha256_file(prompts),
                      "logit_scale": classifier.logit_scale},
    }
