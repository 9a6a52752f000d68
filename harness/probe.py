#!/usr/bin/env python3
"""FOCUS feature probes: which locations a model's penultimate features encode (the paper's Tables 5 and 6).

    focus-probe --data demo/focus --models tf_efficientnet_lite0 --checkpoint tf_efficientnet_lite0=W.pth
    accelerate launch harness/probe.py --data focus --models resnet50.tv_in1k --precision bf16

The command line of `probe_models(data, models, options)`. Per model, into the run folder (see
harness/runfolder.py): the features (harness/probe_features.py: features.parquet, features.json,
features-parts/), then the probes (harness/probe_cells.py) and their report (harness/probe_report.py:
probes.md with Table 5 and Table 6, probes.json, probes_heatmap.png).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python harness/probe.py, accelerate launch)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import dataclasses
import logging
from collections.abc import Sequence

import pyarrow as pa
from accelerate import Accelerator
from torch import nn

from focus_common import commands
from harness import labels, options, runfolder
from harness.analysis import AnalysisInput, analysis_input, for_each_model
from harness.data import DataSelection
from harness.distributed import accelerator_for, model_folder_lock, run_shared
from harness.models.info import ModelInfo
from harness.models.preparation import ModelOptions, model_specs, prepare_model
from harness.probe_cells import (
    MIN_SPLIT_IMAGES,
    PROBE_LOCATIONS,
    add_similar_classes,
    check_probe_options,
    classifier_matrix,
    location_presence,
    parse_pairs,
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


def build_parser() -> argparse.ArgumentParser:
    parser = commands.parser(None, __doc__.splitlines()[0])
    options.add_data_arguments(parser)
    options.add_preprocessing_arguments(parser)
    options.add_model_arguments(parser)
    options.add_runtime_arguments(parser)
    probes = parser.add_argument_group("probes")
    probes.add_argument("--min-images", type=int, default=20,
                        help="mark a probe 'small' when its cell has fewer images than this with the location or "
                             "without (it is still trained and shown); cells that cannot be split into a balanced "
                             f"train and test set (fewer than {MIN_SPLIT_IMAGES} on a side) are 'too small'")
    probes.add_argument("--test-size", type=float, default=0.3, help="fraction of the balanced images held out")
    probes.add_argument("--C", type=float, default=1.0, dest="C",
                        help="inverse L2 regularisation of the logistic regression (on standardised features)")
    probes.add_argument("--pairs", nargs="+", metavar="CLASS/LOCATION",
                        help="Table 6 for these pairs only, e.g. car/snow plane/water (default: every trained probe)")
    probes.add_argument("--top-k", type=options.whole_number(1, 1000), default=3,
                        help="ImageNet classes listed per probe in Table 6 (the paper lists 3)")
    options.add_seed_argument(probes, "the balanced samples and splits of the probes, --subset random/stratified "
                                      "and --random-init weights")

    output = parser.add_argument_group("output")
    output.add_argument("--run", metavar="RUN_DIR",
                        help="a focus-eval run: probe its models (or those of --models) with the weights and "
                             "preprocessing it used, on its data unless --data says otherwise (default: none: the "
                             "models of --models, on --data)")
    output.add_argument("--output", help="the run folder (default: --run, else runs/focus)")
    output.add_argument("--no-resume", action="store_true", help="discard cached features and recompute them")
    options.add_save_every_argument(output, "features")
    output.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def probe_options(args: argparse.Namespace) -> ProbeOptions:
    """The command line as the library's options, checked."""
    model = options.model_options_of(args)
    pairs = parse_pairs(args.pairs)
    check_probe_options(args.min_images, args.test_size)
    return ProbeOptions(
        **{field: getattr(model, field) for field in model.__dataclass_fields__},
        run=args.run, selection=options.selection_of(args), selection_given=options.selection_given(args),
        cache_dir=args.cache_dir, output=args.output, **options.runtime_of(args), resume=not args.no_resume,
        save_every=args.save_every, quiet=args.quiet, min_images=args.min_images, test_size=args.test_size,
        C=args.C, pairs=None if pairs is None else tuple(pairs), top_k=args.top_k)


def probe_models(data: str | Path | None, models: Sequence[str], options: ProbeOptions = ProbeOptions()) -> list[Path]:
    """Probe `models` (with options.run: the run's, or those of `models` among them) on `data` (with options.run:
    by default the run's); the probes.md path of each. Runs on every process of a distributed launch."""
    with accelerator_for(options.precision, cpu=options.cpu) as accelerator:
        target = analysis_input(None if data is None else str(data), options.selection, models, options,
                                run=options.run, selection_given=options.selection_given, cache_dir=options.cache_dir,
                                output=options.run_dir)
        return for_each_model(target.names, lambda name: probe_model(accelerator, target, name, options))


def probe_model(accelerator: Accelerator, target: AnalysisInput, name: str, options: ProbeOptions) -> Path | None:
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return commands.run_command(lambda: probe(args), on_stop="run the same command again to resume")


def probe(args: argparse.Namespace) -> int:
    reports = probe_models(args.data, model_specs(args.models, args.models_file), probe_options(args))
    if commands.is_main_process():
        for report in reports:
            if report is not None:
                print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
