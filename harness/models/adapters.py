"""Models from other libraries behind timm's interface, which the harness's analyses use.

The harness calls ``model(images)`` for logits, and the feature probes call timm's
``forward_features`` / ``forward_head(pre_logits=True)`` / ``get_classifier()`` / ``num_features``.
``LinearHeadClassifier`` gives any classifier whose last step is a linear layer (torchvision's
models, transformers' image classifiers) that interface without changing the model: a hook reads
the head's input, which is the pooled penultimate feature vector.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def last_linear(model: nn.Module) -> str | None:
    """The dotted name of the last nn.Linear registered in `model` (its classifier head), or None."""
    return next((name for name, module in reversed(list(model.named_modules())) if isinstance(module, nn.Linear)),
                None)


class LinearHeadSizes:
    """timm's `num_features` and `num_classes` for a classifier whose `head` is an nn.Linear."""

    head: nn.Linear

    @property
    def num_features(self) -> int:
        return self.head.in_features

    @property
    def num_classes(self) -> int:
        return self.head.out_features


class LinearHeadClassifier(LinearHeadSizes, nn.Module):
    """A classifier ending in a linear head, with timm's feature interface.

    `call(model, images)` gives the wrapped model's logits (e.g. ``model(pixel_values=x).logits`` for
    transformers); `head` is the dotted name of its final nn.Linear; `order`, when given, reorders
    the outputs (a CIFAR-10 head in FOCUS's class order). The wrapped model is ``self.model``.
    """

    def __init__(self, model: nn.Module, head: str | None, call: Callable[[nn.Module, torch.Tensor], torch.Tensor]
                 | None = None, order: Sequence[int] | None = None):
        super().__init__()
        self.model = model
        self.head_name = head
        self._call = call or (lambda module, images: module(images))
        self.register_buffer("order", None if order is None else torch.as_tensor(order), persistent=False)

    @property
    def head(self) -> nn.Linear:
        if self.head_name is None:
            raise ValueError(f"{type(self.model).__name__} has no linear classifier head, so it has no pooled "
                             f"penultimate features to probe or compare with")
        return self.model.get_submodule(self.head_name)

    def _ordered(self, logits: torch.Tensor) -> torch.Tensor:
        return logits if self.order is None else logits[:, self.order]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._ordered(self._call(self.model, images))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """The head's input: the pooled penultimate features (the whole model runs, head included)."""
        captured: list[torch.Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
        try:
            self._call(self.model, images)
        finally:
            handle.remove()
        return captured[-1]

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self._ordered(self.head(features))

    def get_classifier(self) -> nn.Linear:
        """The head, its rows in the order of this model's outputs."""
        if self.order is None:
            return self.head
        head = self.head
        ordered = nn.Linear(head.in_features, head.out_features, bias=head.bias is not None)
        with torch.no_grad():
            ordered.weight.copy_(head.weight[self.order])
            if head.bias is not None:
                ordered.bias.copy_(head.bias[self.order])
        return ordered
