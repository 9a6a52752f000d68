"""What the harness knows of a model once it is built: where its weights came from and what it predicts."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class ModelInfo:
    """A model built from a spec (harness.models.create_model), described for config.json and the report.

    weights is where they came from: "hub-cache", "local-dir", "torchvision:<weights>", "checkpoint:<path>" or
    "random-init"; weights_file and sha256 name the file actually loaded (None for random weights).
    data_config is the model's own preprocessing in timm's data-config terms (input_size, interpolation, mean,
    std, crop_pct, crop_mode); label_space "imagenet" (1000 ImageNet-1k classes, scored with the paper's
    mapping) or "focus" (the ten FOCUS classes). pretrained_cfg is timm's, zero_shot a CLIP head's templates,
    labels a transformers head's, init_seed the seed of random weights.
    """

    model: str
    source: str
    architecture: str
    weights: str
    weights_file: str | None
    sha256: str | None
    checkpoint_format: str | None
    num_params: int
    num_classes: int
    label_space: str
    data_config: dict[str, Any]
    pretrained_cfg: dict[str, Any] | None = None
    zero_shot: dict[str, Any] | None = None
    labels: list[str] | None = None
    init_seed: int | None = None

    @property
    def random_init(self) -> bool:
        return self.weights == "random-init"
