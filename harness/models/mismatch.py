"""Why a checkpoint does not fit a model, in words: the error, the keys that differ, and the advice for a head of
another size. Shared by checkpoints.py and efficientnet_pytorch.py (which renames before it checks)."""

from __future__ import annotations

from torch import nn

SHOW_KEYS = 5  # keys quoted per kind in an error message


class CheckpointMismatchError(ValueError):
    """A checkpoint whose tensor names or shapes do not fit the model."""


def quote_keys(keys: list[str]) -> str:
    more = f", ... ({len(keys) - SHOW_KEYS} more)" if len(keys) > SHOW_KEYS else ""
    return ", ".join(keys[:SHOW_KEYS]) + more


def mismatch_message(
    missing: list[str], unexpected: list[str], mismatched: list[tuple[str, tuple, tuple]]
) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (in the model, not the checkpoint): {quote_keys(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (in the checkpoint, not the model): {quote_keys(unexpected)}")
    if mismatched:
        shapes = [f"{key} (checkpoint {list(got)}, model {list(want)})" for key, got, want in mismatched]
        parts.append(f"{len(mismatched)} with another shape: {quote_keys(shapes)}")
    return "; ".join(parts)


def architecture_name(model: nn.Module) -> str:
    return getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)


def classifier_hint(model: nn.Module, reshaped: dict[str, tuple]) -> str | None:
    """Name the common case of a head of another size (a fine-tuned checkpoint), else None."""
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier")
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier or ())
    heads = {f"{name}.{param}" for name in names for param in ("weight", "bias")}
    if not reshaped or not set(reshaped) <= heads:
        return None
    return head_size_advice(next(iter(reshaped.values()))[0], getattr(model, "num_classes", None))


def head_size_advice(checkpoint_classes: int, model_classes: int | None) -> str:
    """What to do when a checkpoint's head has another number of classes than the model built for it.

    >>> print(head_size_advice(1000, 10))  # doctest: +NORMALIZE_WHITESPACE
    Only the classifier differs: the checkpoint has a 1000-class head, the model was built with 10 classes
    (--label-space focus). For an ImageNet-1k head use --label-space imagenet (the default).
    """
    text = (f"Only the classifier differs: the checkpoint has a {checkpoint_classes}-class head, the model was "
            f"built with {model_classes} classes")
    if model_classes == 10:
        text += " (--label-space focus)"
    if checkpoint_classes == 1000:
        return text + ". For an ImageNet-1k head use --label-space imagenet (the default)."
    if checkpoint_classes == 10:
        return text + (". For a head fine-tuned on the ten FOCUS classes (in FOCUS's class order) use "
                       "--label-space focus.")
    return text + (f". FOCUS scores ImageNet-1k heads (--label-space imagenet) and 10-class FOCUS heads "
                   f"(--label-space focus); a {checkpoint_classes}-class head is neither (Python: "
                   f"create_model(..., num_classes={checkpoint_classes}) builds it).")


def pretrained_head_advice(name: str, pretrained_classes: int, num_classes: int) -> str:
    """Why pretrained weights cannot give a head of `num_classes`, and what to pass instead."""
    if num_classes == 10 and pretrained_classes == 1000:
        return (f"{name}'s pretrained weights have a 1000-class ImageNet-1k head, and --label-space focus needs "
                f"a head fine-tuned on the ten FOCUS classes: pass such weights with --checkpoint {name}=PATH, "
                f"or leave --label-space at imagenet to score the ImageNet head with the paper's mapping.")
    return (f"num_classes={num_classes} differs from the {pretrained_classes} classes of {name!r}'s pretrained "
            f"weights, so its head would be random. Pass the fine-tuned weights as a checkpoint "
            f"(--checkpoint {name}=PATH), or leave num_classes unset.")
