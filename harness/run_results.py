"""The results of a run folder: each model's ModelResult (its metrics.json and config.json), in the one order
every table and figure shows them, the file names of its figures, and the effective-robustness fit over the run's
models. What report.py writes and figures.py draws, both read from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from focus_tools import schema
from harness import results as results_table
from harness import robustness
from harness.preprocess import Preprocessing
from harness.runfolder import CONFIG_FILE, FAILED_FILE, METRICS_FILE, RUN_FILE, model_slug, read_json

DASH = "—"  # any value that is undefined (no image) or not published
# Each figure is a PNG (what report.md shows) with its vector versions beside it, for papers.
FIGURE3_FILE = "figure3_partitions.png"
ROBUSTNESS_FILE = "effective_robustness.png"
VECTOR_FORMATS = ("pdf", "svg")


@dataclasses.dataclass
class ModelResult:
    """One model of a run: its metrics.json, its config.json and what the report needs besides.

    `paper_name` is the paper's name for the model ("ResNet50"), to show the published numbers
    beside ours; `n_failed` counts the images that failed to decode and are left out of the metrics.
    """

    name: str
    metrics: dict[str, Any]
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    paper_name: str | None = None
    n_failed: int = 0

    @property
    def weights(self) -> str | None:
        """Where the weights came from: "hub-cache", "checkpoint:<path>", "random-init" or None."""
        return self.config.get("weights")

    @property
    def weights_name(self) -> str | None:
        """The weights in a few words: a checkpoint by its file name, not its path (config.json keeps the path).

        >>> ModelResult("m", {}, {"weights": "checkpoint:/venv/lib/site-packages/lite0/weights/lite0.pth"}).weights_name
        'checkpoint lite0.pth'
        >>> ModelResult("m", {}, {"weights": "torchvision:IMAGENET1K_V1"}).weights_name
        'torchvision:IMAGENET1K_V1'
        """
        kind, _, path = (self.weights or "").partition(":")
        if kind == "checkpoint" and path:
            return f"checkpoint {PurePath(path).name}"
        return self.weights

    @property
    def random_init(self) -> bool:
        """True for a model with random, untrained weights (--random-init)."""
        return bool(self.config.get("random_init")) or self.weights == "random-init"

    @property
    def row(self) -> dict[str, Any]:
        """The model's row of the results table (harness.results)."""
        return results_table.result_row(self.config | {"model": self.name}, self.metrics, self.n_failed)

    @property
    def preprocessing(self) -> Preprocessing | None:
        """How the model's images were preprocessed (None for runs that predate the record)."""
        recorded = self.config.get("preprocessing")
        return None if recorded is None else Preprocessing.from_dict(recorded, f"{self.name}'s {CONFIG_FILE}")

    @property
    def label(self) -> str:
        """The model's name in legends and titles, with random weights said plainly."""
        return f"{self.name} (random weights)" if self.random_init else self.name


def ordered(results: Sequence[ModelResult]) -> list[ModelResult]:
    """The models in the order of every table and figure of a run: results.csv's, best top-1 first
    (harness.results.sort_key)."""
    return sorted(results, key=lambda result: results_table.sort_key(result.metrics.get("top1"), result.name))


def figure2_file(model_name: str) -> str:
    return f"figure2_{model_slug(model_name)}.png"


def heatmaps_file(model_name: str) -> str:
    return f"heatmaps_{model_slug(model_name)}.png"


def vector_files(png_name: str) -> list[str]:
    """The vector versions written beside a figure's PNG.

    >>> vector_files(FIGURE3_FILE)
    ['figure3_partitions.pdf', 'figure3_partitions.svg']
    """
    return [str(PurePath(png_name).with_suffix(f".{kind}")) for kind in VECTOR_FORMATS]


def robustness_fit(results: Sequence[ModelResult]) -> dict[str, Any] | None:
    """The effective-robustness fit across a run's models (Taori et al. 2020), or None with fewer than three.

    Accuracy on uncommon settings (P1 ∪ P2 ∪ P3) against accuracy on common ones (P0), a line fitted
    in logit space over the models (harness.robustness.effective_robustness); each
    model's effective robustness is its vertical distance to the line, in accuracy. Models with either
    accuracy undefined are left out. Returns the fit with the models' names, in results' order.
    """
    names, common, uncommon = [], [], []
    for result in results:
        partitions = result.metrics["partitions"]
        n = sum(partitions[name]["n"] for name in schema.PARTITION_GROUPS)
        if partitions["P0"]["accuracy"] is None or not n:
            continue
        names.append(result.name)
        common.append(partitions["P0"]["accuracy"])
        uncommon.append(sum(partitions[name]["correct"] for name in schema.PARTITION_GROUPS) / n)
    if len(names) < robustness.MIN_FIT_MODELS or len(set(common)) < 2:
        return None
    return {"models": names, **robustness.effective_robustness(np.array(common), np.array(uncommon))}


def load_results(run_dir: str | Path) -> list[ModelResult]:
    """The models of a run folder that have a metrics.json: run.json's models, in its order (all without one)."""
    run_dir = Path(run_dir)
    folders = {path.parent.name: path.parent for path in run_dir.glob(f"*/{METRICS_FILE}")}
    if not folders:
        raise ValueError(
            f"No model results in {run_dir}: no */{METRICS_FILE} found. Point to a run folder the harness "
            "has finished at least one model in."
        )
    run_file = run_dir / RUN_FILE
    if not run_file.exists():
        return [_load_model(folders[slug]) for slug in sorted(folders)]
    # run.json lists the models of the run: a folder of some other or abandoned run is not reported.
    listed = read_json(run_file).get("models", [])
    return [_load_model(folders[model_slug(name)]) for name in listed if model_slug(name) in folders]


def _load_model(folder: Path) -> ModelResult:
    config_file, failed_file = folder / CONFIG_FILE, folder / FAILED_FILE
    config = read_json(config_file) if config_file.exists() else {}
    return ModelResult(
        name=config.get("model", folder.name),
        metrics=read_json(folder / METRICS_FILE),
        config=config,
        paper_name=config.get("paper_name"),
        n_failed=len(read_json(failed_file)) if failed_file.exists() else 0,
    )
