"""Model specs: which library a model string names, the paper's preset, wildcards and models files.

One syntax for every source (``--models``, ``--models-file``, ``--checkpoint SPEC=PATH``):

    resnet50.tv_in1k                          timm registry name, with or without a pretrained tag
    hf-hub:timm/resnet18.a1_in1k              timm model from a Hugging Face Hub repo (or its cache)
    local-dir:/path/to/folder                 timm model saved by timm.models.save_for_hf
    'convnext_*'                              timm wildcard (with --pretrained-only: every pretrained tag)
    torchvision:mobilenet_v3_large/IMAGENET1K_V1   torchvision model with torchvision's weights (default: DEFAULT)
    open_clip:ViT-B-32/laion2b_s34b_b79k      CLIP zero-shot classifier (also open_clip:hf-hub:ORG/NAME)
    transformers:google/vit-base-patch16-224  transformers image classifier (a Hub repo id or a folder)
    paper                                     the paper's five models (PAPER_MODELS)
"""

from __future__ import annotations

import fnmatch
import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from focus_common.inputs import read_small_text

SOURCES = ("timm", "torchvision", "open_clip", "transformers")
_PREFIXES = {"torchvision:": "torchvision", "open_clip:": "open_clip", "transformers:": "transformers"}
_FOLDER_PREFIXES = ("hf-hub:", "local-dir:")  # timm's and open_clip's: a Hub repo or a folder follows
_WILDCARD_CHARACTERS = "*?["
_SPACES = " \t"  # what separates words on a line; any other blank or invisible character is named
PAPER_PRESET = "paper"
MAX_MODELS_FILE_BYTES = 1 << 20

# The paper's five models (Section 4) with the weights the authors used: torchvision's original
# ImageNet weights (pretrained=True, IMAGENET1K_V1) for the first three, and for the EfficientNets
# the TensorFlow AutoAugment weights that EfficientNet-PyTorch ships, as timm ports them.
PAPER_MODELS: tuple[str, ...] = (
    "torchvision:resnet50/IMAGENET1K_V1",
    "torchvision:wide_resnet50_2/IMAGENET1K_V1",
    "torchvision:mobilenet_v3_large/IMAGENET1K_V1",
    "tf_efficientnet_b4.aa_in1k",
    "tf_efficientnet_b7.aa_in1k",
)
PAPER_DISPLAY_NAMES: dict[str, str] = dict(zip(PAPER_MODELS, (
    "ResNet50", "Wide-ResNet50-2", "MobileNet-v3-large", "EfficientNet-b4", "EfficientNet-b7")))
# Where each preset's weights come from, as the README's table of the paper preset says.
_TORCHVISION_NOTE = ("torchvision's original ImageNet weights (IMAGENET1K_V1, what pretrained=True loaded), "
                     "through torchvision's weights API, as in the paper.")
_EFFICIENTNET_NOTE = ("The TensorFlow release's AutoAugment weights, the ones EfficientNet-PyTorch (the paper's "
                      "source) ships since July 2019, ported by timm; {size}x{size} input as in the paper.")
PAPER_WEIGHT_NOTES: dict[str, str] = {
    **{spec: _TORCHVISION_NOTE for spec in PAPER_MODELS[:3]},
    "tf_efficientnet_b4.aa_in1k": _EFFICIENTNET_NOTE.format(size=380),
    "tf_efficientnet_b7.aa_in1k": _EFFICIENTNET_NOTE.format(size=600),
}


def model_source(spec: str) -> tuple[str, str]:
    """(library, name within it) of a spec.

    >>> model_source("torchvision:resnet50/IMAGENET1K_V1"), model_source("hf-hub:timm/resnet18.a1_in1k")
    (('torchvision', 'resnet50/IMAGENET1K_V1'), ('timm', 'hf-hub:timm/resnet18.a1_in1k'))
    """
    source, name = next(((source, spec[len(prefix):]) for prefix, source in _PREFIXES.items()
                         if spec.startswith(prefix)), ("timm", spec))
    if name in ("", *_FOLDER_PREFIXES):  # `local-dir:` alone would read ./config.json
        raise ValueError(f"--models {spec!r}: name a model after {spec!r}")
    return source, name


def display_name(spec: str) -> str:
    """The paper's name for a preset model ("ResNet50"), else the spec itself."""
    return PAPER_DISPLAY_NAMES.get(spec, spec)


def _is_wildcard(spec: str) -> bool:
    """Whether a spec is a pattern: a plain timm or torchvision name with * ? or [ (a folder or repo never is).

    >>> _is_wildcard("convnext_*"), _is_wildcard("torchvision:resnet*"), _is_wildcard("local-dir:/runs/[1]")
    (True, True, False)
    """
    source, name = model_source(spec)
    plain = source == "torchvision" or (source == "timm" and not name.startswith(_FOLDER_PREFIXES))
    return plain and any(char in name for char in _WILDCARD_CHARACTERS)


def _expand_wildcard(spec: str, pretrained_only: bool) -> list[str]:
    import timm

    source, name = model_source(spec)
    if source == "torchvision":
        import torchvision

        names = [f"torchvision:{n}" for n in fnmatch.filter(torchvision.models.list_models(module=torchvision.models),
                                                            name)]
    else:
        names = timm.list_pretrained(name) if pretrained_only else timm.list_models(name)
    if not names:
        what = "pretrained timm tags" if pretrained_only and source == "timm" else f"{source} models"
        raise ValueError(f"--models {spec!r}: no {what} match")
    return names


def expand_specs(specs: Iterable[str], *, pretrained_only: bool = False) -> list[str]:
    """The specs with the preset ``paper`` and wildcards expanded, in order, each once.

    >>> expand_specs(["tf_efficientnet_lite0", "paper"])[:3]
    ['tf_efficientnet_lite0', 'torchvision:resnet50/IMAGENET1K_V1', 'torchvision:wide_resnet50_2/IMAGENET1K_V1']
    >>> expand_specs(["resnet18.a?_in1k"], pretrained_only=True)
    ['resnet18.a1_in1k', 'resnet18.a2_in1k', 'resnet18.a3_in1k']
    """
    expanded = []
    for spec in specs:
        if spec == PAPER_PRESET:
            expanded += PAPER_MODELS
        elif _is_wildcard(spec):
            expanded += _expand_wildcard(spec, pretrained_only)
        else:
            expanded.append(spec)
    return list(dict.fromkeys(expanded))


def read_models_file(path: str | os.PathLike) -> list[str]:
    """The specs in a models file: one per line; blank lines and ``#`` comments left out.

    Lines end at a newline only (as editors number them); a leading byte-order mark is dropped, and a
    spec holding a space or an invisible character (a control or format character such as U+200B, or a
    line or paragraph separator such as U+2028) is refused, naming the line: it would name another model.
    """
    path = Path(path)
    text = read_small_text(path, "--models-file: one model spec per line", MAX_MODELS_FILE_BYTES)
    specs = []
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        invisible = next((char for char in spec if char not in _SPACES and (
            char.isspace() or unicodedata.category(char)[0] in "CZ")), None)
        if invisible is not None:
            raise ValueError(f"--models-file {path}, line {number}: {spec[:80]!r} holds the invisible character "
                             f"U+{ord(invisible):04X} ({unicodedata.name(invisible, 'unnamed')}); write the spec "
                             f"without it")
        if any(char in _SPACES for char in spec):
            raise ValueError(f"--models-file {path}, line {number}: {spec[:80]!r} is not one model spec (one per "
                             f"line, no spaces)")
        specs.append(spec)
    if not specs:
        raise ValueError(f"--models-file {path}: lists no model; write one spec per line")
    return specs
