"""Label spaces: the paper's ImageNet-1k → FOCUS mapping and the FOCUS prediction of a model.

FOCUS scores ImageNet-1k classifiers with a fixed mapping M from ImageNet classes to the ten FOCUS
classes (Kattakinda & Feizi, ICML 2022, Section 4): a prediction is correct iff the top-1 ImageNet
class maps to the true FOCUS class, and a top-1 class outside M counts as wrong. This module encodes
M once and turns logits into FOCUS class ids under that rule ("paper"), under the ImageNet-A/R
convention of an argmax over the mapped classes only ("restricted"), or for models whose head
already has the ten FOCUS classes (label space "focus").
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from focus_tools import schema
from focus_tools.schema import CLASS_NAMES
from harness.settings import LABEL_SPACES, MAPPINGS  # noqa: F401 - the choices this module scores

NUM_IMAGENET_CLASSES = 1000
UNMAPPED = -1  # FOCUS id of an ImageNet class outside the mapping: never equal to a true label

# The paper's mapping M (FOCUS class → ImageNet-1k class indices), in CLASS_NAMES order.
IMAGENET_TO_FOCUS: dict[str, tuple[int, ...]] = {
    "truck": (407, 555, 569, 654, 675, 717, 757, 779, 864, 867),
    "car": (436, 468, 511, 609, 627, 656, 705, 734, 751, 817),
    "plane": (404, 895),
    "ship": (403, 472, 510, 554, 625, 628, 693, 724, 780, 814, 914),
    "cat": tuple(range(281, 285 + 1)),
    "dog": (*range(151, 268 + 1), *range(273, 275 + 1)),
    "horse": (339, 340),
    "deer": (351, 352, 353),
    "frog": (30, 31, 32),
    "bird": (*range(7, 24 + 1), *range(80, 100 + 1), *range(127, 146 + 1)),
}

if list(IMAGENET_TO_FOCUS) != CLASS_NAMES:
    raise ImportError(
        f"IMAGENET_TO_FOCUS lists the classes {list(IMAGENET_TO_FOCUS)}, but schema.CLASS_NAMES "
        f"is {CLASS_NAMES}; the mapping must follow CLASS_NAMES, which owns the class ids."
    )


@lru_cache(maxsize=1)
def _focus_index() -> np.ndarray:
    index = np.full(NUM_IMAGENET_CLASSES, UNMAPPED, dtype=np.int64)
    for focus_id, name in enumerate(CLASS_NAMES):
        imagenet_ids = np.asarray(IMAGENET_TO_FOCUS[name])
        if (index[imagenet_ids] != UNMAPPED).any():
            twice = imagenet_ids[index[imagenet_ids] != UNMAPPED].tolist()
            raise ValueError(f"IMAGENET_TO_FOCUS maps the ImageNet classes {twice} to two FOCUS classes.")
        index[imagenet_ids] = focus_id
    index.flags.writeable = False  # shared by every caller through the cache
    return index


def imagenet_to_focus_index() -> np.ndarray:
    """Return the FOCUS class id of each ImageNet-1k class (length 1000), -1 where unmapped.

    >>> index = imagenet_to_focus_index()
    >>> index[282].item(), index[0].item(), (index >= 0).sum().item()
    (4, -1, 226)
    """
    return _focus_index().copy()


def mapped_imagenet_ids() -> np.ndarray:
    """Return the sorted ImageNet-1k class ids that map to a FOCUS class (226 of them)."""
    return np.flatnonzero(_focus_index() != UNMAPPED)


def _check_num_classes(logits: torch.Tensor, expected: int, label_space: str) -> None:
    if logits.ndim != 2 or logits.shape[1] != expected:
        raise ValueError(
            f"label_space={label_space!r} expects logits of shape (batch, {expected}), got "
            f"{tuple(logits.shape)}. Use label_space='imagenet' for ImageNet-1k heads (1000 classes) "
            f"and label_space='focus' for heads fine-tuned on the {len(CLASS_NAMES)} FOCUS classes."
        )


def focus_predictions(
    logits: torch.Tensor, label_space: str = "imagenet", mapping: str = "paper"
) -> torch.Tensor:
    """Return the predicted FOCUS class id (int64, -1 for an unmapped top-1) per row of ``logits``.

    label_space "imagenet" takes (batch, 1000) logits: mapping "paper" maps the top-1 of all 1000
    classes (the paper's rule), mapping "restricted" takes the argmax over the mapped classes only
    (the ImageNet-A/R convention; never -1). label_space "focus" takes (batch, 10) logits in
    CLASS_NAMES order and ignores ``mapping``.

    >>> logits = torch.zeros(2, 1000)
    >>> logits[0, 282] = 5.0                    # tiger cat
    >>> logits[1, 0], logits[1, 207] = 5.0, 1.0  # tench on top, golden retriever second
    >>> focus_predictions(logits).tolist(), focus_predictions(logits, mapping="restricted").tolist()
    ([4, -1], [4, 5])
    """
    if label_space not in LABEL_SPACES:
        raise ValueError(f"label_space must be one of {LABEL_SPACES}, got {label_space!r}.")
    if label_space == "focus":
        _check_num_classes(logits, len(CLASS_NAMES), label_space)
        return logits.argmax(dim=1)
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {MAPPINGS}, got {mapping!r}.")
    _check_num_classes(logits, NUM_IMAGENET_CLASSES, label_space)
    focus_index = torch.from_numpy(_focus_index().copy()).to(logits.device)
    if mapping == "paper":
        return focus_index[logits.argmax(dim=1)]
    mapped = torch.from_numpy(mapped_imagenet_ids()).to(logits.device)
    return focus_index[mapped[logits[:, mapped].argmax(dim=1)]]


def topk_predictions(logits: torch.Tensor, k: int = 5,
                     among: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the ``k`` most probable class ids (int64) and their softmax probabilities (float32).

    Both have shape (batch, k), best first; ``k`` is capped at the number of classes. For an
    ImageNet-1k head the ids are ImageNet class ids (the top-5 of the predictions file). With
    ``among`` (class ids), the top ``k`` of those classes only, with their probabilities over all
    classes: under the restricted mapping, the top-5 of the mapped classes, whose first is the
    prediction, so that top-5 accuracy is never below top-1.

    >>> logits = torch.zeros(1, 1000)
    >>> logits[0, 0], logits[0, 282] = 5.0, 1.0  # tench, then tiger cat
    >>> topk_predictions(logits, 2)[0].tolist()
    [[0, 282]]
    >>> topk_predictions(logits, 2, among=mapped_imagenet_ids())[0][0, 0].item()
    282
    """
    if k < 1:
        raise ValueError(f"k must be a positive number of classes, got {k}.")
    probs = logits.float().softmax(dim=1)
    if among is None:
        top_probs, top_ids = probs.topk(min(k, logits.shape[1]), dim=1)
        return top_ids, top_probs
    among = torch.as_tensor(among, device=logits.device)
    top_probs, positions = probs[:, among].topk(min(k, len(among)), dim=1)
    return among[positions], top_probs


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """Return a short readable name per ImageNet-1k class, by id (from timm's ImageNetInfo).

    >>> imagenet_class_names()[282]
    'tiger cat'
    """
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    # WordNet descriptions list synonyms ("tabby, tabby cat"); the first one reads best in a report.
    return tuple(info.index_to_description(i).split(",")[0] for i in range(NUM_IMAGENET_CLASSES))


def class_names(num_classes: int) -> list[str]:
    """Return a name per output of a classifier head: ImageNet-1k names for 1000 classes, the FOCUS classes for
    a head in the "focus" label space (10), else 'class i'.

    >>> class_names(1000)[282], class_names(10)[2], class_names(3)
    ('tiger cat', 'plane', ['class 0', 'class 1', 'class 2'])
    """
    if num_classes == NUM_IMAGENET_CLASSES:
        return list(imagenet_class_names())
    if num_classes == len(CLASS_NAMES):
        return list(CLASS_NAMES)
    return [f"class {i}" for i in range(num_classes)]
