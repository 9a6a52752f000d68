"""Models and weights: every model the harness evaluates, in the form people have it.

``create_model(spec)`` builds a model from a spec (syntax in harness/models/specs.py: timm names,
``hf-hub:``, ``local-dir:``, ``torchvision:``, ``open_clip:``, ``transformers:``), in eval mode, with
its weights, and describes where they came from. Weights come from exactly one place, recorded in
the run metadata: the library's own pretrained weights in its local cache ("hub-cache",
"torchvision:<weights>", "local-dir"), a local checkpoint ("checkpoint:<path>"), or nothing at all
("random-init", only when asked for). Missing weights are an error that says how to fetch them,
never a silent fallback to random weights, and with HF_HUB_OFFLINE set nothing is downloaded. The file
loaded is the file hashed, and a file whose name claims a hash is checked against it
(harness/models/identity.py); the sizes a model's files ask for are bounded before they are allocated
(harness/models/bounds.py, and the preprocessing with the command line's bounds); whatever a library
raises on a model's files is a ModelLoadError naming the model and the file (harness/models/failures.py).

Every model takes normalised image batches and returns logits in its label space: "imagenet"
(1000 ImageNet-1k classes, scored with the paper's mapping) or "focus" (the ten FOCUS classes in
CLASS_NAMES order: CLIP zero-shot heads, heads fine-tuned on FOCUS). Models from other libraries
have timm's feature interface too (harness/models/adapters.py), so the probes work on all of them.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from focus_tools.schema import CLASS_NAMES
from harness import preprocess
from harness.models import bounds, specs
from harness.models.checkpoints import CHECKPOINT_SUFFIXES, load_checkpoint, read_checkpoint
from harness.models.efficientnet_pytorch import convert_efficientnet_pytorch, is_efficientnet_pytorch
from harness.models.failures import ModelLoadError, loading
from harness.models.hf_cache import WeightsNotFoundError
from harness.models.identity import WeightsIdentityError
from harness.models.info import ModelInfo
from harness.models.mismatch import CheckpointMismatchError, head_size_advice
from harness.models.specs import (
    PAPER_DISPLAY_NAMES,
    PAPER_MODELS,
    PAPER_WEIGHT_NOTES,
    SOURCES,
    display_name,
    expand_specs,
    model_source,
    read_models_file,
)
from harness.models.timm_models import (
    LITE0_MODEL,
    LITE0_SHA256,
    UnknownModelError,
    lite0_checkpoint_path,
)
from focus_common.inputs import sha256_file

__all__ = [
    "CHECKPOINT_SUFFIXES", "LABEL_SPACE_CLASSES", "LITE0_MODEL", "LITE0_SHA256", "ModelInfo", "PAPER_DISPLAY_NAMES",
    "PAPER_MODELS", "PAPER_WEIGHT_NOTES", "SOURCES", "CheckpointMismatchError", "ModelLoadError", "UnknownModelError",
    "WeightsIdentityError", "WeightsNotFoundError", "check_model_name", "convert_efficientnet_pytorch", "create_model",
    "display_name", "expand_specs", "head_size_advice", "is_efficientnet_pytorch",
    "lite0_checkpoint_path", "load_checkpoint", "model_source", "num_parameters", "read_checkpoint",
    "read_models_file", "sha256_file", "specs",
]

# The number of outputs each label space expects.
LABEL_SPACE_CLASSES = {"imagenet": 1000, "focus": len(CLASS_NAMES)}
# Libraries whose models say their own label space (CLIP: the FOCUS class names; transformers: its labels).
_OWN_LABEL_SPACE = ("open_clip", "transformers")


def check_model_name(spec: str, *, pretrained: bool = True) -> str:
    """Check a spec before anything is loaded; return it (timm: its current name), or raise UnknownModelError.

    Cheap checks only (the library knows the name, the weights tag exists): a run names every bad
    spec before it spends time on the first model. transformers specs are checked when loaded.

    >>> check_model_name("torchvision:resnet50/IMAGENET1K_V1")
    'torchvision:resnet50/IMAGENET1K_V1'
    """
    source, name = model_source(spec)
    if source == "timm":
        from harness.models import timm_models

        return timm_models.check_model_name(name, pretrained=pretrained)
    if source == "torchvision":
        from harness.models import torchvision_models

        torchvision_models.parse_name(name)
    return spec


def num_parameters(model: nn.Module) -> int:
    """Return the number of parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(parameter.numel() for parameter in model.parameters())


def create_model(
    name: str,
    *,
    pretrained: bool = True,
    checkpoint: str | os.PathLike | None = None,
    num_classes: int | None = None,
    random_init: bool = False,
    label_space: str | None = None,
    prompts: str | os.PathLike | None = None,
) -> tuple[nn.Module, ModelInfo]:
    """Create the model a spec names, in eval mode with its weights, and describe where they came from.

    Weights come from ``checkpoint`` when given (a file, or a folder saved by timm's save_for_hf),
    else from the library's pretrained weights in its local cache (downloaded only when
    HF_HUB_OFFLINE is unset), else -- only with ``random_init=True`` -- nowhere. ``label_space``
    ("imagenet" or "focus") sets the head a timm or torchvision model is built with (10 classes for a
    head fine-tuned on FOCUS, loaded from ``checkpoint``); CLIP and transformers models have their own
    and may only confirm it. ``prompts`` is a file of prompt templates for a CLIP model.

    Returns (model, info), info a ModelInfo (harness/models/info.py). Whatever a library raises on the
    model's files is a ModelLoadError (a ValueError) naming the spec and the file.
    """
    if random_init and checkpoint is not None:
        raise ValueError(
            f"random_init=True and checkpoint={str(checkpoint)!r} contradict each other: a model gets "
            f"either random weights or the checkpoint's. Drop one of them."
        )
    if not (pretrained or random_init or checkpoint is not None):
        raise ValueError(
            f"pretrained=False leaves {name!r} without weights. Pass a checkpoint, or random_init=True "
            f"to build it with random weights on purpose (tests, throughput benchmarks)."
        )
    if label_space is not None and label_space not in LABEL_SPACE_CLASSES:
        raise ValueError(f"label_space must be one of {list(LABEL_SPACE_CLASSES)}, got {label_space!r}")
    source, library_name = model_source(name)
    if checkpoint is not None:  # recorded absolute: a run's weights are the same file from any folder
        checkpoint = Path(checkpoint).resolve()
    if prompts is not None and source != "open_clip":
        raise ValueError(f"--prompts applies to CLIP models (open_clip:...), not to {name!r}")
    if num_classes is None and source not in _OWN_LABEL_SPACE and label_space == "focus":
        num_classes = LABEL_SPACE_CLASSES["focus"]
    if num_classes is not None:
        bounds.check_classes(name, num_classes, "num_classes")
    with loading(name, checkpoint or _files_of(library_name)):
        model, info = _create(name, source, library_name, checkpoint=checkpoint, num_classes=num_classes,
                              random_init=random_init, prompts=prompts)
    preprocess.check_data_config(info["data_config"], f"{name}: its preprocessing config")
    model.eval()
    own = info.pop("label_space", None)
    if own is not None and label_space is not None and label_space != own:
        raise ValueError(f"{name} predicts the {own} classes (label space {own!r}); it cannot be scored with "
                         f"--label-space {label_space}. Leave --label-space unset for it.")
    resolved = own or label_space or "imagenet"
    outputs = model.num_classes
    if num_classes is None and outputs != LABEL_SPACE_CLASSES[resolved]:
        raise ValueError(f"{name} has {outputs} outputs, but label space {resolved!r} scores "
                         f"{LABEL_SPACE_CLASSES[resolved]}. FOCUS scores ImageNet-1k heads (1000 outputs, "
                         f"--label-space imagenet) and heads over the ten FOCUS classes (--label-space focus).")
    return model, ModelInfo(model=name, source=source, **info, num_params=num_parameters(model), num_classes=outputs,
                            label_space=resolved)


def _files_of(library_name: str) -> str:
    """Where a model's files are, as much as its spec says (its library's own modules say which file)."""
    if library_name.startswith("local-dir:"):
        return library_name.removeprefix("local-dir:")
    if library_name.startswith("hf-hub:"):
        return f"the Hugging Face repo {library_name.removeprefix('hf-hub:')}"
    return f"the files of {library_name}"


def _create(name: str, source: str, library_name: str, *, checkpoint: Path | None, num_classes: int | None,
            random_init: bool, prompts: str | os.PathLike | None) -> tuple[nn.Module, dict]:
    """The model and its description from its library's module."""
    if source == "timm":
        from harness.models import timm_models

        model, info = timm_models.create(library_name, checkpoint=checkpoint, num_classes=num_classes,
                                         random_init=random_init)
    elif source == "torchvision":
        from harness.models import torchvision_models

        model, info = torchvision_models.create(name, library_name, checkpoint=checkpoint, num_classes=num_classes,
                                                random_init=random_init)
    elif source == "open_clip":
        from harness.models import open_clip_models

        model, info = open_clip_models.create(name, library_name, class_names=CLASS_NAMES, checkpoint=checkpoint,
                                              random_init=random_init, prompts=prompts)
        info["label_space"] = "focus"
    else:
        from harness.labels import imagenet_class_names
        from harness.models import hf_transformers

        model, info = hf_transformers.create(name, library_name, class_names=CLASS_NAMES,
                                             imagenet_names=imagenet_class_names(), checkpoint=checkpoint,
                                             random_init=random_init)
    return model, info
