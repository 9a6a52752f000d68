"""Checkpoint files: reading a state dict safely, and loading it into a model with every mismatch named.

A checkpoint file is read with ``torch.load(weights_only=True)`` (or safetensors, its header checked
first), so a file cannot run code when it is read. The file read is the file hashed
(harness/models/identity.py). Weights in EfficientNet-PyTorch naming are converted first
(harness/models/efficientnet_pytorch.py).
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import safetensors
import safetensors.torch
import torch
from torch import nn

from harness.models.efficientnet_pytorch import convert_efficientnet_pytorch, is_efficientnet_pytorch
from harness.models.mismatch import (
    CheckpointMismatchError,
    architecture_name,
    classifier_hint,
    mismatch_message,
)
from harness.models.identity import check_safetensors, folder_weights, identify

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
# The weights file of a folder saved by timm's save_for_hf (or any Hugging Face model folder), in the
# order timm itself prefers them.
FOLDER_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
                       "open_clip_pytorch_model.bin")
_CONTAINER_KEYS = ("state_dict", "model", "module", "state_dict_ema", "model_ema")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP and torch.compile


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


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The weights file a checkpoint path names: the file itself, or the weights file of a model folder.

    A folder is one saved by timm's ``save_for_hf`` (config.json and model.safetensors) or any
    Hugging Face model folder holding one of FOLDER_WEIGHT_FILES; one holding several is refused.
    """
    path = Path(path)
    if not path.is_dir():
        return path
    found = folder_weights(path, FOLDER_WEIGHT_FILES, what=f"Checkpoint folder {path}")
    if found is None:
        raise FileNotFoundError(
            f"Checkpoint folder {path} holds none of {list(FOLDER_WEIGHT_FILES)}. Pass a folder saved by "
            f"timm.models.save_for_hf (config.json + model.safetensors) or a {'/'.join(CHECKPOINT_SUFFIXES)} file."
        )
    return found


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str | None]:
    """Read a .pth/.pt/.bin (tensors only) or .safetensors file, or a model folder's weights, on the CPU.

    Returns the state dict, with wrapper prefixes ("module.", "_orig_mod.") removed, and the key of
    the container it was found in ("state_dict", "model", ...; None for a bare state dict).
    """
    path = checkpoint_file(path)
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
        check_safetensors(path)
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
    head_hint = None if missing or unexpected else classifier_hint(
        model, {k: got for k, got, _ in mismatched}
    )
    hint = head_hint or (
        f"Check that it was saved from the timm model {architecture_name(model)!r} (timm names, or "
        f"EfficientNet-PyTorch names for tf_efficientnet_* models)."
    )
    raise CheckpointMismatchError(
        f"{source} does not fit {architecture_name(model)} ({len(state_dict)} tensors, the model has "
        f"{len(expected)}): {mismatch_message(missing, unexpected, mismatched)}. {hint}"
    )


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file into ``model`` in place; convert EfficientNet-PyTorch names first.

    Raises CheckpointMismatchError naming the missing, unexpected and reshaped keys when it does not
    fit. Returns what the run metadata records: file (the weights file read), sha256 (of that file, hashed
    once), format ("timm" or "efficientnet-pytorch"), container_key and num_tensors.
    """
    file = checkpoint_file(path)
    state_dict, container_key = read_checkpoint(file)
    weights = identify(file)
    checkpoint_format = "timm"
    if is_efficientnet_pytorch(state_dict):
        state_dict = convert_efficientnet_pytorch(state_dict, model)
        checkpoint_format = "efficientnet-pytorch"
    _check_fits(state_dict, model, f"Checkpoint {path}")
    expected = model.state_dict()
    filled = {k: expected[k] for k in expected if k not in state_dict}  # num_batches_tracked only
    model.load_state_dict({**state_dict, **filled}, strict=True)
    return {
        "file": weights.path,
        "sha256": weights.sha256,
        "format": checkpoint_format,
        "container_key": container_key,
        "num_tensors": len(state_dict),
    }

