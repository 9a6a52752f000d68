"""What focus-probe and focus-gradcam share: the models and images they analyse, from the command line or from an
earlier focus-eval run (`--run`), and the loop over the models with each failure named.

With a run, an analysis explains that run's predictions: it takes the run's models, weights, preprocessing and
images (its --limit, --subset, filters and the --seed that drew them) unless told otherwise, and refuses data
other than the run's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import datasets
import pyarrow as pa

import focus_dataset
from focus_common.messages import about
from focus_tools import statistics
from harness.data import DataSelection, check_output_outside_data, open_focus
from harness.models.preparation import ModelOptions, check_models, models_of_run

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ModelFailed(RuntimeError):
    """A model's step of a command failed; its message names the model once."""

    def __init__(self, name: str, error: BaseException):
        super().__init__(about(name, str(error)))
        self.name, self.kind = name, type(error).__name__


@dataclasses.dataclass(frozen=True)
class AnalysisInput:
    """The models an analysis explains and the images it explains them on."""

    names: list[str]
    run_configs: dict[str, dict[str, Any]]  # each model's config.json of the run (empty without one)
    dataset: datasets.Dataset
    annotations: pa.Table
    fingerprint: str
    data: str
    selection: DataSelection
    run_dir: Path | None = None


def analysis_input(data: str | None, selection: DataSelection, specs: Sequence[str], options: ModelOptions, *,
                   run: str | Path | None = None, selection_given: bool = False, cache_dir: str | None = None,
                   output: str | Path | None = None) -> AnalysisInput:
    """Resolve what to analyse: `specs` (or, with `run`, the run's models among them) on `data` (or the run's),
    with `selection` (or, with `run` and no selection of the command's own, the run's)."""
    names, configs, run_models = list(specs), {}, None
    if run is not None:
        run_models = models_of_run(run, specs)
        names, configs = run_models.names, run_models.configs
        if not selection_given and run_models.info.get("selection"):
            selection = DataSelection.from_record(run_models.info["selection"], seed=selection.seed)
            if selection.text() != "every image":
                logger.info("--run %s: the run's images, %s", run, selection.text())
    else:
        names = check_models(specs, options)
    data_of_run = data is None and run_models is not None
    if data_of_run:
        data = run_models.info.get("data")
    if not data:
        raise ValueError("--data: name the dataset (a folder written by focus-dataset convert, the release folder "
                         "or focus.zip, or a Hub dataset id)")
    if output is not None:
        check_output_outside_data(data, output)
    dataset, _ = open_focus(data, selection, cache_dir=cache_dir)
    annotations = focus_dataset.annotation_table(dataset)
    fingerprint = statistics.dataset_fingerprint(annotations)
    if run_models is not None:
        check_data_of_run(run_models.run_dir, run_models.fingerprint, run_models.info.get("selection"), data,
                          data_of_run, selection, fingerprint)
    return AnalysisInput(names, configs, dataset, annotations, fingerprint, str(data), selection,
                         None if run is None else Path(run))


def check_data_of_run(run_dir: Path, run_fingerprint: str | None, run_selection: dict[str, Any] | None, data: str,
                      data_of_run: bool, selection: DataSelection, fingerprint: str) -> None:
    """The analyses explain the run's predictions: data other than the run's (its data changed since, another
    --data, other images) is refused."""
    if run_fingerprint in (None, fingerprint):
        return
    if run_selection is not None and selection.record() != run_selection:
        where = (f"these images ({selection.text()}) are not those the run evaluated "
                 f"({DataSelection.from_record(run_selection).text()}): give the run's options, or none to take them")
    elif data_of_run:
        where = f"the run's data, {data}, has changed since the run"
    else:
        where = f"--data {data} is not the data the run evaluated"
    raise ValueError(f"--run {run_dir}: {where} (dataset fingerprint {fingerprint}, the run's "
                     f"{run_fingerprint}); its predictions and weights explain that data only")


def for_each_model(names: Sequence[str], work: Callable[[str], T]) -> list[T]:
    """`work(name)` for every model in turn; the first failure ends the loop as a ModelFailed naming the model."""
    results = []
    for name in names:
        try:
            results.append(work(name))
        except ModelFailed:
            raise
        except (ValueError, OSError, RuntimeError, ImportError) as err:
            raise ModelFailed(name, err) from err
    return results
