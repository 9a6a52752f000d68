"""Evaluating models on FOCUS, as a library: `evaluate_models(data, models, options)` with plain values.

    from harness.evaluation import EvaluationOptions, evaluate_models
    result = evaluate_models("demo/focus", ["tf_efficientnet_lite0"],
                             EvaluationOptions(output="runs/notebook", checkpoints={"tf_efficientnet_lite0": path}))
    result.metrics["tf_efficientnet_lite0"]["top1"]

focus-eval (harness/run.py) parses its command line into the same call. Every model's predictions go to
part files as they come (a killed run resumes), are merged into predictions.parquet, and are scored with
the FOCUS metric into metrics.json; the run folder gets run.json, report.md, results.csv/json and figures
(see harness/runfolder.py). Models of one preprocessing geometry share each decoded batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import timm
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed

import focus_dataset
from focus_common import locks
from focus_common.messages import about
from harness import labels, passes, preprocess, report, runfolder, scoring, transforms
from harness.runfolder import library_versions, now
from harness.analysis import ModelFailed
from harness.artifacts import Resumable
from harness.data import DataSelection, check_output_outside_data, decode_error, open_focus
from harness.distributed import SharedError, accelerator_for, run_shared
from harness.models.info import ModelInfo
from harness.models.preparation import ModelOptions, check_models, prepare_model
from harness.models.specs import PAPER_DISPLAY_NAMES, model_source
from focus_tools import statistics

logger = logging.getLogger("focus-eval")

try:
    HARNESS_VERSION = importlib.metadata.version("focus-benchmark")
except importlib.metadata.PackageNotFoundError:  # a checkout used without installing
    HARNESS_VERSION = "source"
# Settings that change predictions: a resumed run must match them exactly.
IDENTITY_KEYS = ("model", "weights", "sha256", "init_seed", "preprocessing", "label_space", "mapping", "zero_shot",
                 "precision", "channels_last", "compile", "dataset_fingerprint", "num_images")
PART_SCHEMA = scoring.PREDICTION_SCHEMA.append(pa.field("error", pa.string()))
# What focus-eval writes in a model's folder besides its config and parts (other tools write there too).
OWNED_FILES = (runfolder.METRICS_FILE, runfolder.FAILED_FILE, runfolder.PREDICTIONS_FILE)


@dataclasses.dataclass(frozen=True)
class EvaluationOptions(ModelOptions):
    """How models are evaluated (and, from ModelOptions, built): the options of focus-eval, as plain values.

    selection: which images (harness.data.DataSelection); output: the run folder; precision "fp32", "bf16" or
    "fp16"; mapping "paper" or "restricted" for ImageNet-1k heads; share_decode: models of one geometry share
    each decoded batch; keep_going: a failing model is reported, the others go on; resume: keep earlier
    predictions made with the same settings; figures "now", "background" or "none"; command: what run.json
    records as the command (default: this process's command line).
    """

    selection: DataSelection = DataSelection()
    cache_dir: str | None = None
    output: str | Path = "runs/focus"
    precision: str = "fp32"
    cpu: bool = False
    batch_size: int = 64
    workers: int = 2
    channels_last: bool = True
    compile: bool = False
    mapping: str = "paper"
    share_decode: bool = True
    keep_going: bool = False
    resume: bool = True
    save_every: int = 1024
    n_bootstrap: int = 1000
    figures: str = "background"
    quiet: bool = False
    command: str | None = None


@dataclasses.dataclass
class EvaluationResult:
    """What evaluate_models did: the models asked for, each evaluated one's metrics, each failed one's (error type,
    message), and the run's report (None when no model was evaluated)."""

    run_dir: Path
    names: list[str]  # every model asked for, presets and wildcards expanded
    metrics: dict[str, dict[str, Any]]
    failures: dict[str, tuple[str, str]]
    report: report.WrittenReport | None


def evaluate_models(data: str | Path, models: Sequence[str],
                    options: EvaluationOptions = EvaluationOptions()) -> EvaluationResult:
    """Evaluate `models` (specs: timm names, hf-hub:, local-dir:, torchvision:, open_clip:, transformers:, 'paper')
    on the FOCUS dataset `data` (a converted folder, a release folder or zip, or a Hub id), into options.output.

    Runs on every process of a distributed launch. Bad input raises (ValueError, OSError, ...); a model that
    fails raises ModelFailed naming it, unless options.keep_going, which records it in the result instead.
    """
    check_output_outside_data(data, options.output)
    with accelerator_for(options.precision, cpu=options.cpu) as accelerator:
        set_seed(options.seed)
        failures: dict[str, tuple[str, str]] = {}
        names = check_models(models, options, failures if options.keep_going else None)
        dataset, subset = open_focus(data, options.selection, cache_dir=options.cache_dir)
        annotations = focus_dataset.annotation_table(dataset)
        fingerprint = statistics.dataset_fingerprint(annotations)
        run_dir = Path(options.output)
        run_shared(accelerator, lambda: record_run(run_dir, data, names, annotations, fingerprint, subset,
                                                   options, accelerator.num_processes), main_only=True)
        for name, (_, message) in failures.items():
            logger.error("%s", about(name, message))
        metrics = _evaluate_all(accelerator, dataset, annotations, fingerprint, names, options, run_dir, failures)
        written = None
        if any(name not in failures for name in names):  # decided alike on every process: metrics are the main's
            written = run_shared(accelerator, lambda: report.write_run_report(run_dir, options.figures),
                                 main_only=True)
        return EvaluationResult(run_dir, list(dict.fromkeys([*names, *failures])), metrics, failures, written)


def _evaluate_all(accelerator: Accelerator, dataset: datasets.Dataset, annotations: pa.Table, fingerprint: str,
                  names: list[str], options: EvaluationOptions, run_dir: Path,
                  failures: dict[str, tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Every model built and evaluated a group at a time; failures go to `failures` with keep_going.

    Models of one geometry share a decoded pass (shared_decode_groups). Only one group is built at a time, so
    that a wildcard of a hundred models holds the weights of its largest group, not of all of them: models are
    taken in the order of their geometry where it is known without building them (timm's pretrained configs),
    and a group is evaluated as soon as the next model does not belong to it.
    """
    free_memory = device_free_memory(accelerator)
    hints = {name: geometry_hint(name, options.preprocess or "paper") for name in names}
    metrics, group = {}, []
    for name in sorted(names, key=hints.get):
        if group and hints[name] != hints[group[0].name] and hints[name] != (1,):
            # Another geometry, known before building: the group's weights go before the next model's come.
            metrics |= _evaluate_group_of(accelerator, dataset, annotations, group, options, failures)
            group = []
        try:
            evaluation = prepare_evaluation(accelerator, annotations, fingerprint, name, options, run_dir)
        except Exception as err:  # noqa: BLE001 - whatever building a model raises is that model's failure
            _fail(name, err, options, failures)
            continue
        if group and len(shared_decode_groups([*group, evaluation], options.share_decode, free_memory)) > 1:
            metrics |= _evaluate_group_of(accelerator, dataset, annotations, group, options, failures)
            group = []
        group.append(evaluation)
    if group:
        metrics |= _evaluate_group_of(accelerator, dataset, annotations, group, options, failures)
    return metrics


def geometry_hint(name: str, protocol: str) -> tuple:
    """What decoding depends on under `protocol`, where timm's pretrained config says it without building the
    model (else last): a sort key that puts models of one geometry side by side, in the order given (a stable
    sort). The paper's protocol fixes everything but the input size."""
    source, library_name = model_source(name)
    config = timm.models.get_pretrained_cfg(library_name) if source == "timm" and timm.is_model(
        library_name.partition(".")[0]) else None
    if config is None:
        return (1,)
    if protocol == "paper":
        return 0, tuple(config.input_size)
    return 0, tuple(config.input_size), config.crop_pct, config.crop_mode, config.interpolation


def _evaluate_group_of(accelerator: Accelerator, dataset: datasets.Dataset, annotations: pa.Table,
                       group: list[Evaluation], options: EvaluationOptions,
                       failures: dict[str, tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """One group's pass (each model alone when the shared pass fails for want of memory, or with keep_going when
    one of its models fails); its models' weights let go of afterwards."""
    done, failed = _evaluate_groups(accelerator, dataset, annotations, [group], options)
    if failed and len(group) > 1 and (options.keep_going or out_of_memory(failed)):
        # Models that fit one at a time but not together (fits_together only estimates) get a pass each, and
        # their parts so far are kept; with keep_going, one model's error (broken weights) must not cost the
        # others of its group their results either.
        logger.warning("%s: the shared pass failed (%s); one pass per model", ", ".join(e.name for e in group),
                       next(iter(failed.values()))[1])
        if accelerator.device.type == "cuda":
            torch.cuda.empty_cache()
        done, failed = _evaluate_groups(accelerator, dataset, annotations, [[e] for e in group], options)
    for name, (kind, message) in failed.items():
        if not options.keep_going:
            raise ModelFailed(name, SharedError(message))
        logger.error("%s", about(name, message))
        failures[name] = (kind, message)
    for evaluation in group:
        evaluation.model = None  # its weights are not needed any more
    return done


def _fail(name: str, error: Exception, options: EvaluationOptions, failures: dict[str, tuple[str, str]]) -> None:
    if not options.keep_going:
        raise ModelFailed(name, error) from error
    logger.error("%s", ModelFailed(name, error))
    failures[name] = (type(error).__name__, str(error))


def record_run(run_dir: Path, data: str | Path, names: list[str], annotations: pa.Table, fingerprint: str,
               subset: dict[str, Any] | None, options: EvaluationOptions, num_processes: int) -> None:
    """run.json, read, changed and written under the run folder's lock: two commands evaluating other models into
    one folder both keep their models in it (the report covers every model evaluated there)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with locks.folder_lock(run_dir, "focus-eval, writing run.json", wait=True):
        run_file = run_dir / runfolder.RUN_FILE
        earlier = runfolder.read_json(run_file) if run_file.exists() else {}
        runfolder.write_json(run_file, {
            "command": options.command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "data": str(Path(data).resolve()) if Path(data).exists() else str(data),
            "dataset_fingerprint": fingerprint, "num_images": annotations.num_rows,
            "subset": subset, "selection": options.selection.record(),
            "version": statistics.closest_published_version(annotations),
            "models": list(dict.fromkeys([*earlier.get("models", []), *names])), "num_processes": num_processes,
            "versions": library_versions(), "date": now(),
        })
    logger.info("FOCUS: %d images (fingerprint %s) from %s; %d process(es)", annotations.num_rows, fingerprint, data,
                num_processes)


# --------------------------------------------------------------------------------------------
# One model: its predictions, made in parts, merged and scored
# --------------------------------------------------------------------------------------------

def prediction_rows(annotations: pa.Table, indices: np.ndarray, predicted: np.ndarray, top_ids: np.ndarray,
                    top_probs: np.ndarray, ok: np.ndarray, errors: list[str | None], label_space: str) -> pa.Table:
    """Rows of PART_SCHEMA (the predictions table and each image's decoding error) for the dataset rows `indices`."""
    top_focus = labels.imagenet_to_focus_index()[top_ids] if label_space == "imagenet" else top_ids
    rows = scoring.prediction_table(annotations.take(pa.array(indices, type=pa.int64())), predicted, top_ids,
                                    top_probs, top_focus, ok)
    return rows.append_column("error", pa.array(errors, type=pa.string()))


def write_predictions(model_dir: Path, parts: pa.Table) -> pa.Table:
    """predictions.parquet (decoded images) and failed_images.json (the others); returns the predictions."""
    failed = pc.invert(pc.is_null(parts.column("error")))
    predicted = parts.filter(pc.invert(failed)).drop_columns(["error"])
    failures = parts.filter(failed)
    runfolder.write_parquet(model_dir / runfolder.PREDICTIONS_FILE, predicted)
    runfolder.write_json(model_dir / runfolder.FAILED_FILE, [
        {"file_name": n, "error": e}
        for n, e in zip(failures.column("file_name").to_pylist(), failures.column("error").to_pylist())])
    if predicted.num_rows == 0:
        raise RuntimeError(f"{model_dir}: every image failed to decode; see {runfolder.FAILED_FILE}")
    return predicted


def write_metrics(model_dir: Path, predicted: pa.Table, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """metrics.json, written last: its presence marks the model as done."""
    metrics = scoring.compute_metrics(predicted, n_bootstrap=n_bootstrap, seed=seed)
    metrics["n_failed_images"] = len(runfolder.read_json(model_dir / runfolder.FAILED_FILE))
    runfolder.write_json(model_dir / runfolder.METRICS_FILE, metrics)
    return metrics


def prediction_step(model: torch.nn.Module, preprocessing: preprocess.Preprocessing, label_space: str, mapping: str,
                    channels_last: bool) -> passes.Step:
    """The model on a batch: FOCUS predictions, the top-5 of its own classes (of the mapped ones under the
    restricted mapping), and whether its logits are finite."""
    among = labels.mapped_imagenet_ids() if label_space == "imagenet" and mapping == "restricted" else None

    def step(batch: passes.Batch) -> dict[str, torch.Tensor]:
        images = transforms.normalize(batch.images, preprocessing)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits = model(images)
        top_ids, top_probs = labels.topk_predictions(logits, k=5, among=among)
        return {"prediction": labels.focus_predictions(logits, label_space, mapping),
                "top_ids": top_ids, "top_probs": top_probs, "finite": passes.all_finite(logits)}
    return step


def prediction_part_rows(dataset: datasets.Dataset, annotations: pa.Table, name: str,
                         label_space: str) -> passes.ToRows:
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
    model: torch.nn.Module | None
    info: ModelInfo
    preprocessing: preprocess.Preprocessing
    config: dict[str, Any]
    resumable: Resumable
    pending: list[int] | None = None  # rows still to predict, once its folder is checked

    @property
    def model_dir(self) -> Path:
        return self.resumable.folder


def prepare_evaluation(accelerator: Accelerator, annotations: pa.Table, fingerprint: str, name: str,
                       options: EvaluationOptions, run_dir: Path) -> Evaluation:
    """The model (built on every process; an error in any of them, such as missing weights, raised on all)
    and the config.json that describes how it is evaluated."""
    model, info, preprocessing = run_shared(accelerator, lambda: prepare_model(name, options))
    label_space = info.label_space
    config = {
        "model": name, "source": info.source, "paper_name": PAPER_DISPLAY_NAMES.get(name),
        "architecture": info.architecture, "weights": info.weights, "sha256": info.sha256,
        "random_init": info.random_init, "init_seed": info.init_seed,
        "num_params": info.num_params, "input_size": list(preprocessing.input_size),
        "preprocessing": preprocessing.to_dict(),
        "label_space": label_space, "mapping": options.mapping if label_space == "imagenet" else None,
        "zero_shot": info.zero_shot, "precision": options.precision,
        "channels_last": options.channels_last, "compile": options.compile, "batch_size": options.batch_size,
        "num_processes": accelerator.num_processes, "device": str(accelerator.device),
        "dataset_fingerprint": fingerprint, "num_images": annotations.num_rows,
        "harness_version": HARNESS_VERSION, "versions": library_versions(),
    }
    resumable = Resumable(runfolder.model_dir(run_dir, name), runfolder.CONFIG_FILE, runfolder.PARTS_DIR,
                          runfolder.METRICS_FILE, PART_SCHEMA, IDENTITY_KEYS, "predictions", OWNED_FILES)
    return Evaluation(name, model, info, preprocessing, config, resumable)


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
        groups.setdefault(evaluation.preprocessing.geometry if share else (evaluation.name,), []).append(evaluation)
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


def evaluate_group(accelerator: Accelerator, dataset: datasets.Dataset, annotations: pa.Table,
                   group: list[Evaluation], options: EvaluationOptions) -> dict[str, dict[str, Any]]:
    """Predictions and metrics of models that share a geometry, in one pass over the data (every process
    takes part); their metrics on the main process.

    The main process holds each model folder's lock throughout, so a second run of one of these models
    into the same output stops at once, naming this one. Each model resumes from its own part files,
    and its predictions are exactly what a pass of its own would give.
    """
    with contextlib.ExitStack() as held:
        def lock() -> None:
            for evaluation in group:
                evaluation.model_dir.mkdir(parents=True, exist_ok=True)
                held.enter_context(locks.folder_lock(evaluation.model_dir, f"focus-eval of {evaluation.name}"))
        run_shared(accelerator, lock, main_only=True)
        metrics = {}
        for evaluation in group:
            done = _done_or_pending(accelerator, annotations, evaluation, options)
            if done is not None:
                metrics[evaluation.name] = done
        todo = [evaluation for evaluation in group if evaluation.name not in metrics]
        if todo:
            metrics |= _predict(accelerator, dataset, annotations, todo, options)
        return metrics


def _done_or_pending(accelerator: Accelerator, annotations: pa.Table, evaluation: Evaluation,
                     options: EvaluationOptions) -> dict[str, Any] | None:
    """The model's metrics when its folder holds them (recomputed for other bootstrap settings); else None, with
    evaluation.pending set and config.json written."""
    resumable, name = evaluation.resumable, evaluation.name
    resumable.check(accelerator, evaluation.config, options.resume)
    if resumable.done_path.exists():
        metrics = run_shared(accelerator, lambda: runfolder.read_json(resumable.done_path))
        config = metrics.get("config", {})
        if config.get("n_bootstrap") == options.n_bootstrap and config.get("seed") == options.seed:
            logger.info("%s: already evaluated in %s", name, evaluation.model_dir)
            return metrics

        def recompute() -> dict[str, Any]:
            logger.info("%s: recomputing the metrics with --n-bootstrap %d --seed %d", name, options.n_bootstrap,
                        options.seed)
            predicted = scoring.read_predictions(evaluation.model_dir / runfolder.PREDICTIONS_FILE)
            return write_metrics(evaluation.model_dir, predicted, options.n_bootstrap, options.seed)
        return run_shared(accelerator, recompute, main_only=True) or {}
    file_names = annotations.column("file_name").to_pylist()
    evaluation.pending = resumable.start(accelerator, evaluation.config, file_names, now())
    logger.info("%s: %s weights, preprocessing %s, %d of %d images to go", name, evaluation.info.weights,
                evaluation.preprocessing.summary(), len(evaluation.pending), len(file_names))
    return None


def _predict(accelerator: Accelerator, dataset: datasets.Dataset, annotations: pa.Table, todo: list[Evaluation],
             options: EvaluationOptions) -> dict[str, dict[str, Any]]:
    """One pass over the rows any of `todo` still needs, each batch decoded once and fed to every model."""
    consumers = []
    for evaluation in todo:
        model = evaluation.model.to(accelerator.device)
        if options.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if options.compile:
            model = torch.compile(model)
        label_space = evaluation.config["label_space"]
        consumers.append(passes.Consumer(
            prediction_step(model, evaluation.preprocessing, label_space, options.mapping, options.channels_last),
            prediction_part_rows(dataset, annotations, evaluation.name, label_space), PART_SCHEMA,
            evaluation.pending, evaluation.resumable.parts_dir))
    preprocessing = todo[0].preprocessing
    if len(todo) > 1:
        logger.info("%s: one decoded pass for %d models (%s)", preprocessing.summary(), len(todo),
                    ", ".join(evaluation.name for evaluation in todo))
    results = passes.run_shared_pass(
        accelerator, dataset, transforms.geometry_transform(preprocessing), preprocessing.input_size, consumers,
        save_every=options.save_every, batch_size=options.batch_size, workers=options.workers,
        desc=" + ".join(evaluation.name for evaluation in todo), quiet=options.quiet)

    def finish() -> dict[str, dict[str, Any]]:
        finished = {}
        for evaluation, result in zip(todo, results):
            model_dir = evaluation.model_dir
            predicted = write_predictions(model_dir, evaluation.resumable.merge(result.rows, annotations.num_rows))
            # The rate of the pass that made the predictions: with a shared decode, the group's.
            evaluation.config.update(finished=now(), images_per_second=result.images_per_second,
                                     shared_decode=[e.name for e in todo] if len(todo) > 1 else None)
            runfolder.write_json(evaluation.resumable.config_path, evaluation.config)
            metrics = write_metrics(model_dir, predicted, options.n_bootstrap, options.seed)
            logger.info("%s: top-1 %.2f%%, %d image(s) failed to decode", evaluation.name, 100 * metrics["top1"],
                        metrics["n_failed_images"])
            finished[evaluation.name] = metrics
        return finished
    return run_shared(accelerator, finish, main_only=True) or {}


def _evaluate_groups(accelerator: Accelerator, dataset: datasets.Dataset, annotations: pa.Table,
                     groups: list[list[Evaluation]], options: EvaluationOptions
                     ) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, str]]]:
    """Evaluate each group: the metrics of the models evaluated, and the error of each group that fails (its
    type's name and message) under each of its models' names.

    Only the message is kept: the exception would keep the failed pass's frames, and with them its
    DataLoader workers and models, alive through what comes next.
    """
    metrics, failed = {}, {}
    for group in groups:
        try:
            metrics |= evaluate_group(accelerator, dataset, annotations, group, options)
        except (ValueError, OSError, RuntimeError, ImportError) as err:
            failed |= {evaluation.name: (type(err).__name__, str(err)) for evaluation in group}
    return metrics, failed


def out_of_memory(failed: Mapping[str, tuple[str, str]]) -> bool:
    """Whether a pass failed for want of device memory. Decided on the message, which every process of a
    run shares (another process's error reaches this one as a SharedError), so all decide alike."""
    return any("out of memory" in message.lower() for _, message in failed.values())
