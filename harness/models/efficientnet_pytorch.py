"""EfficientNet-PyTorch weights as timm names: the source of the paper's EfficientNet weights.

Checkpoints in EfficientNet-PyTorch naming (``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``)
are recognised by their keys and renamed to timm's ``tf_efficientnet_*`` names, tensor by tensor.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual
from torch import nn

from harness.models.mismatch import CheckpointMismatchError, architecture_name, classifier_hint, mismatch_message

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
        head_hint = None if unmapped or uncovered else classifier_hint(model, reshaped)
        hint = head_hint or (
            "Check that the variant matches (efficientnet-b4 → tf_efficientnet_b4, "
            "efficientnet-lite0 → tf_efficientnet_lite0)."
        )
        raise CheckpointMismatchError(
            f"EfficientNet-PyTorch weights ({len(state_dict)} tensors) do not fit {architecture_name(model)} "
            f"({len(expected)} tensors, {len(blocks)} blocks): "
            f"{mismatch_message(uncovered, unmapped, mismatched)}. {hint}"
        )
    return {k: converted[k] for k in expected if k in converted}
