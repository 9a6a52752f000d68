#!/usr/bin/env python3
"""FOCUS evaluation harness: timm models on FOCUS, one CPU or many GPUs (accelerate).

    python harness/run.py --data demo/focus --models tf_efficientnet_lite0 --checkpoint tf_efficientnet_lite0=W.pth
    accelerate launch harness/run.py --data demo/focus --models paper --precision bf16

Writes a run folder (see harness/runfolder.py): per model the predictions (Parquet, written as they
come, so a killed run resumes where it stopped), metrics.json from the focus_generalization metric,
and for the run a report.md with the paper's Tables 3 and 4 and its figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python harness/run.py, accelerate launch)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import dataclasses
import importlib.metadata
import logging
import shlex
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed

from focus_tools import statistics
from focus_common import locks
import focus_dataset
from focus_common import commands as command
from harness import cli, labels, models, passes, preprocess, report, runfolder
from harness.data import decode_error

logger = logging.getLogger("focus-eval")

try:
    HARNESS_VERSION = importlib.metadata.version("focus-benchmark")
except importlib.metadata.PackageNotFoundError:  # a checkout used without installing
    HARNESS_VERSION = "source"
# Settings that change predictions: a resumed run must match them exactly.
IDENTITY_KEYS = ("model", "weights", "sha256", "init_seed", "preprocessing", "label_space", "mapping", "zero_shot",
                 "precision", "channels_last", "compile", "dataset_fingerprint", "num_images")
PART_SCHEMA = runfolder.PREDICTION_SCHEMA.append(pa.field("error", pa.string()))


def build_parser() -> argparse.ArgumentParser:
    parser = command.parser(None, __doc__.splitlines()[0])
    cli.add_data_arguments(parser)
    cli.add_preprocessing_arguments(parser)
    model = cli.add_model_arguments(parser)
    model.add_argument("--mapping", choices=labels.MAPPINGS, default="paper",
                       help="ImageNet-1k heads: 'paper': top-1 of all classes, unmapped = wrong; 'restricted': argmax "
                            "over the mapped classes")
    model.add_argument("--keep-going", action="store_true",
                       help="a model that fails (missing weights, a bad checkpoint) is reported and the run goes on; "
                            "the run then exits 1 and lists the failures")
    runtime = cli.add_runtime_arguments(parser)
    runtime.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                         help="the channels_last memory format for the models and their inputs: faster convolutions "
                              "on CPUs and GPUs (see the README's benchmarks), the same numbers up to float rounding")
    runtime.add_argument("--compile", action="store_true", help="torch.compile the model")
    runtime.add_argument("--no-share-decode", action="store_true",
                         help="one pass over the data per model; by default models of the same preprocessing "
                              "geometry (size, resize, crop, interpolation) share each decoded batch")

    output = parser.add_argument_group("output")
    output.add_argument("--output", default="runs/focus", help="the run folder")
    output.add_argument("--no-resume", action="store_true", help="discard a model's earlier predictions")
    output.add_argument("--save-every", type=int, default=1024, help="images per predictions part file")
    output.add_argument("--n-bootstrap", type=cli.whole_number(0, 100_000), default=1000,
                        help="bootstrap replicates for the gap intervals (0 to 100,000; 0: none)")
    output.add_argument("--seed", type=int, default=0,
                        help="seed of everything random in the command: the bootstrap intervals, --subset "
                             "random/stratified and --random-init weights")
    output.add_argument("--figures", choices=report.FIGURE_MODES, default="background",
                        help="the report's figures: drawn in a process of their own once the results are out "
                             "(background), before the command returns (now), or not at all (none)")
    output.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


# --------------------------------------------------------------------------------------------
# Predictions: written in parts as they come, checked and written whole when a model is done
# --------------------------------------------------------------------------------------------

def prediction_rows(annotations: pa.Table, indices: np.ndarray, predicted: np.ndarray, top_ids: np.ndarray,
                    top_probs: np.ndarray, ok: np.ndarray, errors: list[str | None], label_space: str) -> pa.Table:
    """Rows of PART_SCHEMA for the images at `indices` of the dataset."""
    rows = annotations.take(pa.array(indices, type=pa.int64()))
    label = rows.column("label").to_numpy()
    if label_space == "imagenet":
        top_focus = labels.imagenet_to_focus_index()[top_ids]
    else:
        top_focus = top_ids
    columns = {name: rows.column(name) for name in runfolder.ANNOTATION_COLUMNS}
    columns.update(
        prediction=pa.array(predicted, type=pa.int64()),
        top5_ids=pa.array(list(top_ids.astype(np.int32)), type=pa.list_(pa.int32())),
        top5_probs=pa.array(list(top_probs.astype(np.float32)), type=pa.list_(pa.float32())),
        top5_correct=pa.array((top_focus == label[:, None]).any(axis=1) & ok),
        correct=pa.array((predicted == label) & ok),
        error=pa.array(errors, type=pa.string()),
    )
    return pa.table({field.name: columns[field.name].cast(field.type) for field in PART_SCHEMA}, schema=PART_SCHEMA)


def check_parts(parts: pa.Table, model_dir: Path, num_images: int) -> pa.Table:
    """Every image's part row, by file_name; an image missing or predicted twice is an error."""
    counts = pc.value_counts(parts.column("file_name")).to_pylist()
    repeated = [c["values"] for c in counts if c["counts"] > 1]
    if repeated:
        raise RuntimeError(f"{model_dir}: {len(repeated)} image(s) predicted more than once, e.g. {repeated[:3]}; "
                           f"rerun with --no-resume")
    if parts.num_rows != num_images:
        raise RuntimeError(f"{model_dir}: {parts.num_rows} predictions for {num_images} images; "
                           f"{passes.rerun_advice(parts.num_rows, num_images)}")
    return parts.sort_by("file_name")


def write_predictions(model_dir: Path, parts: pa.Table) -> pa.Table:
    """predictions.parquet (decoded images) and failed_images.json (the others); returns the predictions."""
    failed = pc.invert(pc.is_null(parts.column("error")))
    predictions = parts.filter(pc.invert(failed)).drop_columns(["error"])
    failures = parts.filter(failed)
    runfolder.write_parquet(model_dir / runfolder.PREDICTIONS_FILE, predictions)
    runfolder.write_json(model_dir / runfolder.FAILED_FILE, [
        {"file_name": n, "error": e}
        for n, e in zip(failures.column("file_name").to_pylist(), failures.column("error").to_pylist())])
    if predictions.num_rows == 0:
        raise RuntimeError(f"{model_dir}: every image failed to decode; see {runfolder.FAILED_FILE}")
    return predictions


def write_metrics(model_dir: Path, predictions: pa.Table, args: argparse.Namespace) -> dict[str, Any]:
    """metrics.json, written last: its presence marks the model as done."""
    metrics = runfolder.compute_metrics(predictions, n_bootstrap=args.n_bootstrap, seed=args.seed)
    metrics["n_failed_images"] = len(runfolder.read_json(model_dir / runfolder.FAILED_FILE))
    runfolder.write_json(model_dir / runfolder.METRICS_FILE, metrics)
    return metrics


# --------------------------------------------------------------------------------------------
# One model
# --------------------------------------------------------------------------------------------

# What the harness writes in a model's folder (other tools, such as focus-probe, write there too).
HARNESS_FILES = (runfolder.CONFIG_FILE, runfolder.METRICS_FILE, runfolder.FAILED_FILE, runfolder.PREDICTIONS_FILE)


def check_resumable(model_dir: Path, config: dict[str, Any], resume: bool, is_main: bool) -> None:
    """Keep earlier predictions only when they were made with the same settings."""
    cli.check_cache(model_dir / runfolder.CONFIG_FILE, config, IDENTITY_KEYS, holds="predictions",
                    stale=[model_dir / runfolder.PARTS_DIR, *(model_dir / name for name in HARNESS_FILES)],
                    resume=resume, is_main=is_main)


def metrics_settings_match(metrics: dict[str, Any], args: argparse.Namespace) -> bool:
    settings = metrics.get("config", {})
    return settings.get("n_bootstrap") == args.n_bootstrap and settings.get("seed") == args.seed


def prediction_step(model: torch.nn.Module, preprocessing: dict[str, Any], label_space: str,
                    args: argparse.Namespace) -> passes.Step:
    """The model on a batch: FOCUS predictions, the top-5 of its own classes (of the mapped ones under the
    restricted mapping), and whether its logits are finite."""
    restricted = label_space == "imagenet" and args.mapping == "restricted"
    among = labels.mapped_imagenet_ids() if restricted else None

    def step(batch: passes.Batch) -> dict[str, torch.Tensor]:
        images = preprocess.normalize(batch.images, preprocessing)
        if args.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits = model(images)
        top_ids, top_probs = labels.topk_predictions(logits, k=5, among=among)
        return {"prediction": labels.focus_predictions(logits, label_space, args.mapping),
                "top_ids": top_ids, "top_probs": top_probs, "finite": passes.all_finite(logits)}
    return step


def prediction_part_rows(dataset, annotations: pa.Table, name: str, label_space: str) -> passes.ToRows:
    """Gathered step outputs as PART_SCHEMA rows; images that could not be decoded are named in the log, logits
    that are not finite are an error (passes.check_finite)."""
    file_names = annotations.column("file_name").to_pylist()

    def to_rows(gathered: dict[str, np.ndarray]) -> pa.Table:
        passes.check_finite(gathered["finite"], gathered, file_names, name, "logits")
        errors = [None if good else decode_error(dataset, int(i)) for i, good in zip(gathered["index"], gathered["ok"])]
        for i, error in zip(gathered["index"], errors):
            if error is not None:
                logger.warning("%s: %s cannot be decoded (%s); left out of the metrics", name, file_names[i], error)
        return prediction_rows(annotations, gathered["index"], gathered["prediction"], gathered["top_ids"],
                               gathered["top_probs"], gathered["ok"], errors, label_space)
    return to_rows


@dataclasses.dataclass
class Evaluation:
    """One model of the run, built and described, ready to be evaluated (alone or with others)."""

    name: str
    model: torch.nn.Module
    info: dict[str, Any]
    preprocessing: dict[str, Any]
    config: dict[str, Any]
    model_dir: Path
    pending: list[int] | None = None  # rows still to predict, once its folder is checked

    @property
    def geometry(self) -> tuple:
        """What decoding, resizing and cropping depend on: models that agree can share one decoded batch."""
        p = self.preprocessing
        return tuple(p["input_size"]), str(p["resize"]), p["crop_pct"], p["crop_mode"], p["interpolation"]

    @property
    def parts_dir(self) -> Path:
        return self.model_dir / runfolder.PARTS_DIR


def prepare_evaluation(accelerator: Accelerator, annotations: pa.Table, fingerprint: str, name: str,
                       checkpoint: str | None, args: argparse.Namespace, overrides: dict[str, Any],
                       run_dir: Path) -> Evaluation:
    """The model (built on every process; an error in any of them, such as missing weights, raised on all)
    and the config.json that describes how it is evaluated."""
    model, info, preprocessing = cli.run_shared(accelerator, lambda: cli.prepare_model(name, args, checkpoint,
                                                                                       overrides))
    label_space = info["label_space"]
    config = {
        "model": name, "source": info["source"], "paper_name": models.PAPER_DISPLAY_NAMES.get(name),
        "architecture": info["architecture"], "weights": info["weights"], "sha256": info["sha256"],
        "random_init": info["weights"] == "random-init", "init_seed": info["init_seed"],
        "num_params": info["num_params"], "input_size": preprocessing["input_size"], "preprocessing": preprocessing,
        "label_space": label_space, "mapping": args.mapping if label_space == "imagenet" else None,
        "zero_shot": info.get("zero_shot"), "precision": args.precision,
        "channels_last": args.channels_last, "compile": args.compile, "batch_size": args.batch_size,
        "num_processes": accelerator.num_processes, "device": str(accelerator.device),
        "dataset_fingerprint": fingerprint, "num_images": annotations.num_rows,
        "harness_version": HARNESS_VERSION, "versions": cli.library_versions(),
    }
    return Evaluation(name, model, info, preprocessing, config, runfolder.model_dir(run_dir, name))


def shared_decode_groups(evaluations: list[Evaluation], share: bool,
                         free_memory: int | None) -> list[list[Evaluation]]:
    """The models in groups that share one decoded batch (the same geometry), in the run's order.

    Without `share`, or where a group's models would not fit in `free_memory` bytes together (None: not
    a GPU's, taken to fit), each model has a pass of its own, and the log says so. Every process must
    get the same groups: `free_memory` is the least over the processes (device_free_memory).
    """
    if not share and len(evaluations) > 1:
        logger.info("--no-share-decode: one pass per model (each decodes the images)")
    groups: dict[tuple, list[Evaluation]] = {}
    for evaluation in evaluations:
        groups.setdefault(evaluation.geometry if share else (evaluation.name,), []).append(evaluation)
    result = []
    for group in groups.values():
        if len(group) > 1 and not fits_together([e.model for e in group], free_memory):
            logger.warning("%s: too large to be on the GPU together (%.1f GB free); one pass per model (each decodes "
                           "the images)", ", ".join(e.name for e in group), free_memory / 1e9)
            result += [[evaluation] for evaluation in group]
        else:
            result.append(group)
    return result


def device_free_memory(accelerator: Accelerator) -> int | None:
    """The least free memory of the processes' GPUs, in bytes (the same on every process); None off GPUs."""
    free = torch.cuda.mem_get_info(accelerator.device)[0] if accelerator.device.type == "cuda" else None
    values = [value for value in gather_object([free]) if value is not None]
    return min(values) if values else None


def fits_together(modules: list[torch.nn.Module], free_memory: int | None, headroom: float = 2.0) -> bool:
    """Whether the models' weights, `headroom` times over (for the activations), fit in `free_memory` bytes."""
    if free_memory is None:
        return True
    size = sum(t.numel() * t.element_size() for module in modules for t in (*module.parameters(), *module.buffers()))
    return headroom * size <= free_memory


def evaluate_group(accelerator: Accelerator, dataset, annotations: pa.Table, group: list[Evaluation],
                   args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Predictions and metrics of models that share a geometry, in one pass over the data (every process
    takes part); their metrics on the main process.

    The main process holds each model folder's lock throughout, so a second run of one of these models
    into the same --output stops at once, naming this one. Each model resumes from its own part files,
    and its predictions are exactly what a pass of its own would give.
    """
    with contextlib.ExitStack() as held:
        def lock() -> None:
            for evaluation in group:
                evaluation.model_dir.mkdir(parents=True, exist_ok=True)
                held.enter_context(locks.folder_lock(evaluation.model_dir, f"focus-eval of {evaluation.name}"))
        cli.run_shared(accelerator, lock, main_only=True)
        metrics = {}
        for evaluation in group:
            done = _done_or_pending(accelerator, annotations, evaluation, args)
            if done is not None:
                metrics[evaluation.name] = done
        todo = [evaluation for evaluation in group if evaluation.name not in metrics]
        if todo:
            metrics |= _predict(accelerator, dataset, annotations, todo, args)
        return metrics


def _done_or_pending(accelerator: Accelerator, annotations: pa.Table, evaluation: Evaluation,
                     args: argparse.Namespace) -> dict[str, Any] | None:
    """The model's metrics when its folder holds them (recomputed for other bootstrap settings); else None, with
    evaluation.pending set and config.json written."""
    model_dir, config, name = evaluation.model_dir, evaluation.config, evaluation.name
    # Every process checks (and raises alike); the main process deletes stale files before any reads parts.
    cli.run_shared(accelerator, lambda: check_resumable(model_dir, config, not args.no_resume,
                                                        accelerator.is_main_process))
    if (model_dir / runfolder.METRICS_FILE).exists():
        metrics = cli.run_shared(accelerator, lambda: runfolder.read_json(model_dir / runfolder.METRICS_FILE))
        if metrics_settings_match(metrics, args):
            logger.info("%s: already evaluated in %s", name, model_dir)
            return metrics

        def recompute() -> dict[str, Any]:
            logger.info("%s: recomputing the metrics with --n-bootstrap %d --seed %d", name, args.n_bootstrap,
                        args.seed)
            return write_metrics(model_dir, runfolder.read_predictions(model_dir / runfolder.PREDICTIONS_FILE), args)
        return cli.run_shared(accelerator, recompute, main_only=True) or {}

    num_images = annotations.num_rows
    evaluation.pending = passes.pending_rows(annotations.column("file_name").to_pylist(), evaluation.parts_dir,
                                             PART_SCHEMA)

    def start() -> None:
        previous = runfolder.read_json(model_dir / runfolder.CONFIG_FILE) if len(evaluation.pending) < num_images \
            else {}
        config["started"] = previous.get("started", cli.now())
        runfolder.write_json(model_dir / runfolder.CONFIG_FILE, config)
        logger.info("%s: %s weights, preprocessing %s, %d of %d images to go", name, evaluation.info["weights"],
                    runfolder.preprocessing_summary(evaluation.preprocessing), len(evaluation.pending), num_images)
    cli.run_shared(accelerator, start, main_only=True)
    return None


def _predict(accelerator: Accelerator, dataset, annotations: pa.Table, todo: list[Evaluation],
             args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """One pass over the rows any of `todo` still needs, each batch decoded once and fed to every model."""
    consumers = []
    for evaluation in todo:
        model = evaluation.model.to(accelerator.device)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if args.compile:
            model = torch.compile(model)
        label_space = evaluation.config["label_space"]
        consumers.append(passes.Consumer(
            prediction_step(model, evaluation.preprocessing, label_space, args),
            prediction_part_rows(dataset, annotations, evaluation.name, label_space), PART_SCHEMA,
            evaluation.pending, evaluation.parts_dir))
    if len(todo) > 1:
        logger.info("%s: one decoded pass for %d models (%s)", runfolder.preprocessing_summary(todo[0].preprocessing),
                    len(todo), ", ".join(evaluation.name for evaluation in todo))
    preprocessing = todo[0].preprocessing
    results = passes.run_shared_pass(
        accelerator, dataset, preprocess.geometry_transform(preprocessing), preprocessing["input_size"], consumers,
        save_every=args.save_every, batch_size=args.batch_size, workers=args.workers,
        desc=" + ".join(evaluation.name for evaluation in todo), quiet=args.quiet)

    def finish() -> dict[str, dict[str, Any]]:
        finished = {}
        for evaluation, result in zip(todo, results):
            model_dir = evaluation.model_dir
            predictions = write_predictions(model_dir, check_parts(result.rows, model_dir, annotations.num_rows))
            # The rate of the pass that made the predictions: with a shared decode, the group's.
            evaluation.config.update(finished=cli.now(), images_per_second=result.images_per_second,
                                     shared_decode=[e.name for e in todo] if len(todo) > 1 else None)
            runfolder.write_json(model_dir / runfolder.CONFIG_FILE, evaluation.config)
            metrics = write_metrics(model_dir, predictions, args)
            logger.info("%s: top-1 %.2f%%, %d image(s) failed to decode", evaluation.name, 100 * metrics["top1"],
                        metrics["n_failed_images"])
            finished[evaluation.name] = metrics
        return finished
    return cli.run_shared(accelerator, finish, main_only=True) or {}


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

def report_under_lock(run_dir: Path, figures: str) -> report.WrittenReport:
    """The run's report and results, written while no other focus-eval writes run.json or its own report."""
    with locks.folder_lock(run_dir, "focus-eval, writing the report", wait=True):
        return report.write_run_report(run_dir, figures)


def _evaluate_groups(accelerator: Accelerator, dataset, annotations: pa.Table, groups: list[list[Evaluation]],
                     args: argparse.Namespace) -> dict[str, tuple[str, str]]:
    """Evaluate each group; the error of each group that fails (its type's name and message), under each of its
    models' names.

    Only the message is kept: the exception would keep the failed pass's frames, and with them its
    DataLoader workers and models, alive through what comes next.
    """
    failed = {}
    for group in groups:
        try:
            evaluate_group(accelerator, dataset, annotations, group, args)
        except cli.COMMAND_ERRORS as err:
            failed |= {evaluation.name: (type(err).__name__, str(err)) for evaluation in group}
    return failed


def out_of_memory(failed: dict[str, tuple[str, str]]) -> bool:
    """Whether a pass failed for want of device memory. Decided on the message, which every process of a
    run shares (another process's error reaches this one as a SharedError), so all decide alike."""
    return any("out of memory" in message.lower() for _, message in failed.values())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run_with_accelerator(args, lambda accelerator, args: evaluate_run(accelerator, args, argv))


def evaluate_run(accelerator: Accelerator, args: argparse.Namespace, argv: list[str] | None) -> int:
    """Evaluate every model of the command line: 0 when all were, 1 when --keep-going left some out, 2 on a
    command that cannot run (bad input, or a model that failed without --keep-going)."""
    set_seed(args.seed)
    failures: dict[str, tuple[str, str]] = {}  # model -> (error type, message): the models --keep-going left out
    try:
        names, checkpoints = cli.check_models(args, failures if args.keep_going else None)
        overrides = cli.preprocessing_overrides(args)
        dataset, subset = cli.open_dataset(args)
    except cli.COMMAND_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    annotations = focus_dataset.annotation_table(dataset)
    fingerprint = statistics.dataset_fingerprint(annotations)
    run_dir = Path(args.output)

    def start() -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        with locks.folder_lock(run_dir, "focus-eval, writing run.json", wait=True):
            record_run()

    def record_run() -> None:
        # Read, changed and written under the run folder's lock: two commands evaluating other models into
        # one --output both keep their models in run.json.
        earlier = runfolder.read_json(run_dir / runfolder.RUN_FILE) if (run_dir / runfolder.RUN_FILE).exists() else {}
        # The report covers every model evaluated in this folder, this command's and earlier ones'.
        names_so_far = list(dict.fromkeys([*earlier.get("models", []), *names]))
        runfolder.write_json(run_dir / runfolder.RUN_FILE, {
            "command": shlex.join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
            "data": str(Path(args.data).resolve()) if Path(args.data).exists() else str(args.data),
            "dataset_fingerprint": fingerprint, "num_images": annotations.num_rows,
            "subset": subset, "selection": cli.data_selection(args),
            "version": statistics.closest_published_version(annotations),
            "models": names_so_far, "num_processes": accelerator.num_processes,
            "versions": cli.library_versions(), "date": cli.now(),
        })
        logger.info("FOCUS: %d images (fingerprint %s) from %s; %d process(es) on %s",
                    annotations.num_rows, fingerprint, args.data, accelerator.num_processes, accelerator.device)

    try:
        cli.run_shared(accelerator, start, main_only=True)
    except cli.COMMAND_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, (_, message) in failures.items():
        print(f"error: {cli.about(name, message)}", file=sys.stderr)
    evaluations = []
    for name in names:
        try:
            evaluations.append(prepare_evaluation(accelerator, annotations, fingerprint, name, checkpoints.get(name),
                                                  args, overrides, run_dir))
        except cli.COMMAND_ERRORS as err:
            print(f"error: {cli.about(name, str(err))}", file=sys.stderr)
            if not args.keep_going:
                return 2
            failures[name] = (type(err).__name__, str(err))
    for group in shared_decode_groups(evaluations, not args.no_share_decode, device_free_memory(accelerator)):
        failed = _evaluate_groups(accelerator, dataset, annotations, [group], args)
        if failed and len(group) > 1 and (args.keep_going or out_of_memory(failed)):
            # Models that fit one at a time but not together (fits_together only estimates) get a pass each,
            # and their parts so far are kept; with --keep-going, one model's error (broken weights) must not
            # cost the others of its group their results either.
            logger.warning("%s: the shared pass failed (%s); one pass per model", ", ".join(e.name for e in group),
                           next(iter(failed.values()))[1])
            if accelerator.device.type == "cuda":
                torch.cuda.empty_cache()
            failed = _evaluate_groups(accelerator, dataset, annotations, [[e] for e in group], args)
        for name, (kind, message) in failed.items():
            print(f"error: {cli.about(name, message)}", file=sys.stderr)
            if not args.keep_going:
                return 2
            failures[name] = (kind, message)
        for evaluation in group:
            evaluation.model = None  # its weights are not needed any more
    evaluated = [name for name in names if name not in failures]
    del evaluations
    try:
        written = cli.run_shared(accelerator, lambda: report_under_lock(run_dir, args.figures),
                                 main_only=True) if evaluated else None
    except cli.COMMAND_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if written is not None:
        print(written.markdown)
        print(written.table)
        print(f"run folder: {run_dir}")
        if written.figures_process is not None:
            logger.info("the figures are drawn in the background (pid %d) into %s; `focus-report %s` draws them "
                        "again", written.figures_process.pid, run_dir / runfolder.FIGURES_DIR, run_dir)
    if failures:
        print(f"{len(failures)} of {len(failures.keys() | set(names))} model(s) failed (--keep-going):",
              file=sys.stderr)
        for name, (kind, message) in failures.items():
            print(f"  {name}: {kind}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
