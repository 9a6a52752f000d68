"""focus-probe as a library: `probe_models(data, models, options)`, the features and probes of each model.

Kattakinda & Feizi (ICML 2022), Tables 5 and 6. Per model, into the run folder (see harness/runfolder.py):
the features (harness/probe_features.py: features.parquet, features.json, features-parts/), then the probes
(harness/probe_cells.py) and their report (harness/probe_report.py: probes.md with Table 5 and Table 6,
probes.json, probes_heatmap.png). harness/probe.py is its command line.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
from accelerate import Accelerator
from torch import nn

from harness import labels, runfolder
from harness.analysis import AnalysisInput, analysis_input, for_each_model
from harness.data import DataSelection
from harness.distributed import accelerator_for, model_folder_lock, run_shared
from harness.models.info import ModelInfo
from harness.models.preparation import ModelOptions, prepare_model
from harness.probe_cells import (
    MIN_SPLIT_IMAGES,
    PROBE_LOCATIONS,
    add_similar_classes,
    classifier_matrix,
    location_presence,
    probe_cells,
)
from harness.probe_features import extract_features, features_matrix, weights_sha256
from harness.probe_report import PROBES_HEATMAP, PROBES_JSON, PROBES_MD, format_probes, plot_heatmap, probes_json
from harness.runfolder import now

logger = logging.getLogger("focus-probe")


@dataclasses.dataclass(frozen=True)
class ProbeOptions(ModelOptions):
    """focus-probe's options as plain values (and, from ModelOptions, how the models are built).

    run: an earlier focus-eval run whose models, weights, preprocessing and images are probed; selection:
    the images (the run's when selection_given is False); min_images, test_size, C, pairs, top_k: the probes'
    (see build_parser).
    """

    run: str | Path | None = None
    selection: DataSelection = DataSelection()
    selection_given: bool = False
    cache_dir: str | None = None
    output: str | Path | None = None
    precision: str = "fp32"
    cpu: bool = False
    batch_size: int = 64
    workers: int = 2
    resume: bool = True
    save_every: int = 1024
    quiet: bool = False
    min_images: int = 20
    test_size: float = 0.3
    C: float = 1.0
    pairs: tuple[tuple[str, str], ...] | None = None
    top_k: int = 3

    @property
    def run_dir(self) -> Path:
        return Path(self.output or self.run or "runs/focus")


def probe_models(data: str | Path | None, models: Sequence[str],
                 options: ProbeOptions = ProbeOptions()) -> list[Path]:
    """Probe `models` (with options.run: the run's, or those of `models` among them) on `data` (with options.run:
    by default the run's); the probes.md path of each. Runs on every process of a distributed launch."""
    with accelerator_for(options.precision, cpu=options.cpu) as accelerator:
        target = analysis_input(None if data is None else str(data), options.selection, models, options,
                                run=options.run, selection_given=options.selection_given, cache_dir=options.cache_dir,
                                output=options.run_dir)
        return for_each_model(target.names, lambda name: probe_model(accelerator, target, name, options))


def probe_model(accelerator: Accelerator, target: AnalysisInput, name: str,
                options: ProbeOptions) -> Path | None:
    """Features (all processes), then probes and their report (main process); the probes.md path there.

    The model folder's lock is held throughout: a second focus-probe (or a focus-eval) of this model into
    the same folder stops at once, naming this one.
    """
    model_dir = runfolder.model_dir(options.run_dir, name)
    with model_folder_lock(accelerator, model_dir, f"focus-probe of {name}"):
        # Built on every process alike (random weights from --seed); with --run, the run's weights and preprocessing.
        model, info, preprocessing = run_shared(accelerator, lambda: prepare_model(
            name, options, target.run_configs.get(name)))
        sha256 = weights_sha256(model, info)
        table = extract_features(accelerator, target.dataset, target.annotations, target.fingerprint, model, info,
                                 sha256, preprocessing, model_dir, precision=options.precision,
                                 resume=options.resume, batch_size=options.batch_size, workers=options.workers,
                                 save_every=options.save_every, quiet=options.quiet)
        return run_shared(accelerator, lambda: write_probes(table, target, model, info, sha256, options, model_dir),
                          main_only=True)


def write_probes(table: pa.Table, target: AnalysisInput, model: nn.Module, info: ModelInfo, sha256: str,
                 options: ProbeOptions, model_dir: Path) -> Path:
    """The probes on the features `table`, and probes.json, probes.md and the heatmap; the probes.md path."""
    name, annotations, pairs = info.model, target.annotations, options.pairs
    # Features are in file_name order; the annotations are taken in the same order.
    position = {file_name: i for i, file_name in enumerate(annotations.column("file_name").to_pylist())}
    rows = annotations.take(pa.array([position[f] for f in table.column("file_name").to_pylist()], pa.int64()))
    cells = probe_cells(features_matrix(table), rows.column("label").to_numpy(),
                        location_presence(rows.column("locations").to_pylist()), min_images=options.min_images,
                        test_size=options.test_size, seed=options.seed, C=options.C, progress=not options.quiet)
    header = {"model": name, "weights": info.weights, "sha256": sha256, "random_init": info.random_init,
              "dim": model.num_features, "num_images": table.num_rows,
              "dataset_fingerprint": target.fingerprint, "min_images": options.min_images,
              "test_size": options.test_size, "C": options.C, "seed": options.seed, "top_k": options.top_k,
              "pairs": None if pairs is None else [f"{c}/{l}" for c, l in pairs], "locations": PROBE_LOCATIONS,
              "date": now()}
    untrained = [f"{c}/{l}" for c, l in pairs or () if next(
        cell["status"] for cell in cells if (cell["class"], cell["location"]) == (c, l)) != "trained"]
    if untrained:
        logger.warning("%s: no Table 6 row for %s: too few images to split (fewer than %d with or without the "
                       "location)", name, ", ".join(untrained), MIN_SPLIT_IMAGES)
    try:
        classifier = classifier_matrix(model)
        add_similar_classes(cells, classifier, labels.class_names(classifier.shape[0]), options.top_k,
                            None if pairs is None else list(pairs))
    except ValueError as err:
        logger.warning("%s: no Table 6: %s", name, err)
        header["table6_note"] = f"No Table 6: {err}"
    runfolder.write_json(model_dir / PROBES_JSON, probes_json(cells, header))
    runfolder.write_text(model_dir / PROBES_MD, format_probes(cells, header))
    figure = plot_heatmap(cells, f"{name}: probe accuracy (%) per class and location\n"
                                 f"(in parentheses, hatched: fewer than {options.min_images} images on a side)")
    runfolder.save_figure(figure, model_dir / PROBES_HEATMAP, dpi=120)
    trained = [cell for cell in cells if cell["status"] == "trained"]
    logger.info("%s: %d of %d probes trained, %d of them small; %s", name, len(trained), len(cells),
                sum(cell["small"] for cell in trained), model_dir / PROBES_MD)
    return model_dir / PROBES_MD
