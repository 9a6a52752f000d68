"""focus-probe's arithmetic: the probes of the paper's Tables 5 and 6, pure functions of arrays.

Kattakinda & Feizi (ICML 2022), Tables 5 and 6. A *probe* is a binary linear classifier trained, for one
class and one location, on the penultimate features of that class's images only, to tell whether the
location is present. Train and test sets each hold as many images with the location as without (30%
of them for test), so chance is 50% (Table 5). The probe's weights with its bias, compared by cosine
similarity with each row of the model's own classifier (weights with bias), name the ImageNet classes
whose evidence the location resembles (Table 6: car/snow -> snowplow, dogsled, snowmobile).

Every cell that a balanced split can hold is trained, as the paper's Table 5 shows cells of a few images
(ship/indoors has 3 with the location): that takes MIN_SPLIT_IMAGES (2) images with the location and as
many without, one of each to train and one to test. Cells with fewer than `min_images` on either side are
"small"; only cells that cannot be split are "too small" and not trained. Images of the class without the
location (including those whose location is "none") are the negatives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from tqdm.auto import tqdm

from focus_tools import schema
from harness import scoring
from harness.settings import MIN_SPLIT_IMAGES

# The probe targets: every location except "none" (ambiguous, or none of these places).
PROBE_LOCATIONS = [name for name in schema.LOCATION_NAMES if name != "none"]
INTERVAL_CONFIDENCE = 0.95  # of the probe accuracies' Wilson intervals


def location_presence(locations: list[list[int]], num_locations: int = len(schema.LOCATION_NAMES)) -> np.ndarray:
    """(images, locations) bool matrix: whether each image's location set holds each location id.

    >>> location_presence([[1], [6, 7], []], 9).nonzero()
    (array([0, 1, 1]), array([1, 6, 7]))
    """
    lengths = np.fromiter((len(v) for v in locations), dtype=np.int64, count=len(locations))
    rows = np.repeat(np.arange(len(locations)), lengths)
    ids = np.fromiter((i for v in locations for i in v), dtype=np.int64, count=int(lengths.sum()))
    presence = np.zeros((len(locations), num_locations), dtype=bool)
    presence[rows, ids] = True
    return presence


def balanced_split(present: np.ndarray, *, test_size: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train and a test set, each with exactly as many positives as negatives.

    As many images without the location as with it (the smaller side whole, the larger sampled), then
    a stratified split holding out `test_size` of each side (at least one image).
    """
    present = np.asarray(present, dtype=bool)
    positives, negatives = np.flatnonzero(present), np.flatnonzero(~present)
    n = min(len(positives), len(negatives))
    if n < MIN_SPLIT_IMAGES:
        raise ValueError(f"a balanced split needs at least {MIN_SPLIT_IMAGES} images with and {MIN_SPLIT_IMAGES} "
                         f"without the location, got {len(positives)} with and {len(negatives)} without")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size}")
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(positives, n, replace=False), rng.choice(negatives, n, replace=False)])
    n_test_side = min(max(1, round(test_size * n)), n - 1)
    train, test = train_test_split(chosen, test_size=2 * n_test_side, stratify=present[chosen],
                                   random_state=int(rng.integers(2**31)))
    return np.sort(train), np.sort(test)


def fit_probe(features: np.ndarray, present: np.ndarray, *, test_size: float = 0.3, seed: int = 0,
              C: float = 1.0) -> dict[str, Any]:
    """Train one probe on a balanced split; its test accuracy and its weights [w, b] on the raw features.

    The logistic regression sees standardised features (for a well-conditioned fit); the scaling is
    folded back into the weights, so that `weights` is the probe on the features themselves and can be
    compared with the model's classifier rows (Table 6).
    """
    train, test = balanced_split(present, test_size=test_size, seed=seed)
    scaler = StandardScaler().fit(features[train])
    classifier = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(features[train]), present[train])
    n_correct = int((classifier.predict(scaler.transform(features[test])) == present[test]).sum())
    w = classifier.coef_[0] / scaler.scale_
    b = classifier.intercept_[0] - w @ scaler.mean_
    return {"accuracy": n_correct / len(test), "n_correct": n_correct, "n_train": len(train), "n_test": len(test),
            "weights": np.append(w, b)}


def check_probe_options(min_images: int, test_size: float) -> None:
    if min_images < MIN_SPLIT_IMAGES:
        raise ValueError(f"--min-images must be at least {MIN_SPLIT_IMAGES} (one image each side to train and to "
                         f"test), "
                         f"got {min_images}")
    if not 0 < test_size < 1:
        raise ValueError(f"--test-size must be a fraction in (0, 1), got {test_size}")


def probe_cells(features: np.ndarray, label: np.ndarray, presence: np.ndarray, *, min_images: int = 20,
                test_size: float = 0.3, seed: int = 0, C: float = 1.0, progress: bool = False) -> list[dict[str, Any]]:
    """Table 5: one record per (class, location) pair, in CLASS_NAMES x PROBE_LOCATIONS order.

    Every record has class, location, n_with, n_without and status: "trained" for every cell a balanced
    split can hold (MIN_SPLIT_IMAGES a side), "too small" for the others. Trained ones add small
    (fewer than `min_images` on a side), accuracy, n_correct, n_train, n_test, interval (95% Wilson)
    and weights.
    """
    check_probe_options(min_images, test_size)
    cells = []
    pairs = [(c, l) for c in range(len(schema.CLASS_NAMES)) for l in range(len(PROBE_LOCATIONS))]
    for class_id, location_id in tqdm(pairs, desc="probes", disable=not progress):
        rows = np.flatnonzero(label == class_id)
        present = presence[rows, schema.LOCATION_NAMES.index(PROBE_LOCATIONS[location_id])]
        cell = {"class": schema.CLASS_NAMES[class_id], "location": PROBE_LOCATIONS[location_id],
                "n_with": int(present.sum()), "n_without": int((~present).sum())}
        fewest = min(cell["n_with"], cell["n_without"])
        if fewest < MIN_SPLIT_IMAGES:
            cells.append(cell | {"status": "too small"})
            continue
        # One stream per cell: a cell's split does not depend on which other cells were trained.
        cell_seed = int(np.random.default_rng([seed, class_id, location_id]).integers(2**31))
        cells.append(cell | {"status": "trained", "small": fewest < min_images,
                             **fit_probe(features[rows], present, test_size=test_size, seed=cell_seed, C=C)})
    trained = [cell for cell in cells if cell["status"] == "trained"]
    if trained:
        # The metric's Wilson interval (one implementation): the harness uses the metric's code.
        low, high = scoring.load_metric_module().wilson_interval(
            [cell["n_correct"] for cell in trained], [cell["n_test"] for cell in trained], INTERVAL_CONFIDENCE)
        for cell, cell_low, cell_high in zip(trained, low, high):
            cell["interval"] = [float(cell_low), float(cell_high)]
    return cells


def cosine_similarities(probes: np.ndarray, classifier: np.ndarray) -> np.ndarray:
    """Cosine similarity of each probe [w, b] (rows of `probes`) with each classifier row [W_i, b_i].

    >>> cosine_similarities(np.array([[1.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 1.0]])).round(3)
    array([[ 1.   ,  0.   , -0.707]])
    """
    probes, classifier = np.atleast_2d(probes), np.atleast_2d(classifier)
    norms = np.linalg.norm(probes, axis=1)[:, None] * np.linalg.norm(classifier, axis=1)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, probes @ classifier.T / norms, 0.0)


def top_k(similarities: np.ndarray, k: int) -> np.ndarray:
    """Column ids of the k largest values per row, largest first (ties by lower id)."""
    return np.argsort(-similarities, axis=1, kind="stable")[:, :k]


def classifier_matrix(model: nn.Module) -> np.ndarray:
    """The model's classifier as rows [W_i, b_i] (classes x (features + 1)), from timm's get_classifier()."""
    head = model.get_classifier()
    if isinstance(head, nn.Linear) or (isinstance(head, nn.Conv2d) and head.kernel_size == (1, 1)):
        weight = head.weight.detach().float().reshape(head.weight.shape[0], -1).cpu().numpy()
        bias = (np.zeros(weight.shape[0], np.float32) if head.bias is None
                else head.bias.detach().float().cpu().numpy())
        return np.concatenate([weight, bias[:, None]], axis=1)
    raise ValueError(f"Table 6 needs a linear classifier (nn.Linear or a 1x1 nn.Conv2d); {type(model).__name__}."
                     f"get_classifier() is a {type(head).__name__}. Use a model with a linear head.")


def parse_pairs(items: list[str] | None) -> list[tuple[str, str]] | None:
    """`--pairs car/snow plane/water` as [(class, location)], each name checked."""
    if items is None:
        return None
    pairs = []
    for item in items:
        class_name, sep, location = item.partition("/")
        if not sep or class_name not in schema.CLASS_NAMES or location not in PROBE_LOCATIONS:
            raise ValueError(f"--pairs expects CLASS/LOCATION with a class of {schema.CLASS_NAMES} and a "
                             f"location of {PROBE_LOCATIONS}, got {item!r}")
        pairs.append((class_name, location))
    return pairs


def add_similar_classes(cells: list[dict[str, Any]], classifier: np.ndarray, names: list[str], k: int,
                        pairs: list[tuple[str, str]] | None = None) -> None:
    """Table 6: the k classifier rows most similar to each chosen trained probe, into cell["similar_classes"]."""
    chosen = [cell for cell in cells if cell["status"] == "trained"
              and (pairs is None or (cell["class"], cell["location"]) in pairs)]
    if not chosen:
        return
    if classifier.shape[1] != len(chosen[0]["weights"]):
        raise ValueError(f"the classifier takes {classifier.shape[1] - 1} features, the probes "
                         f"{len(chosen[0]['weights']) - 1}: the penultimate features are not the classifier's input")
    similarities = cosine_similarities(np.stack([cell["weights"] for cell in chosen]), classifier)
    for cell, row, ids in zip(chosen, similarities, top_k(similarities, k)):
        cell["similar_classes"] = [{"id": int(i), "name": names[i], "cosine": float(row[i])} for i in ids]
