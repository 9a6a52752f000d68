"""What focus-eval, focus-probe and focus-gradcam share: their data, model and runtime options and set-up."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import gather_object, set_seed

from focus_common import locks
from focus_common import commands as command
from focus_common.messages import quote
from harness import labels, models, preprocess, runfolder
from harness.runfolder import CONFIG_FILE, RUN_FILE, model_dir, read_json
from harness.data import SUBSETS, open_focus

logger = logging.getLogger(__name__)
T = TypeVar("T")
# What ends a command with its message and exit status 2 (bad input, unreadable or unwritable files, a
# run folder that does not fit); any other exception is a bug and shows its traceback.
COMMAND_ERRORS = (ValueError, OSError, RuntimeError, ImportError)  # ImportError: a missing optional library

LIBRARIES = ("torch", "torchvision", "timm", "accelerate", "datasets", "evaluate", "pyarrow", "numpy", "pillow")


def add_data_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    data = parser.add_argument_group("dataset")
    data.add_argument("--data",
                      help="converted FOCUS folder, Hub dataset repo id, or a raw release folder / focus.zip "
                           "(default: with --run, the run's data; otherwise it must be given)")
    data.add_argument("--limit", type=int, metavar="N",
                      help="evaluate N images only, chosen by --subset (default: every image)")
    data.add_argument("--subset", choices=SUBSETS, default="first",
                      help="which --limit images: the first by file_name (class-skewed: the first ones are all "
                           "birds), random ones, or stratified (each class's share kept), random ones drawn with "
                           "--seed")
    data.add_argument("--categories", nargs="+", metavar="CLASS", help="keep these classes only (default: every class)")
    data.add_argument("--times", nargs="+", metavar="TIME", help="keep these times of day only (default: every time)")
    data.add_argument("--weathers", nargs="+", metavar="WEATHER",
                      help="keep these weathers only (default: every weather)")
    data.add_argument("--locations", nargs="+", metavar="LOCATION",
                      help="keep images with these locations (default: every image)")
    data.add_argument("--locations-match", choices=("any", "all"), default="any",
                      help="with --locations: keep images with any of them, or with all of them")
    data.add_argument("--humans", choices=("yes", "no"), help="keep images with (or without) people (default: both)")
    data.add_argument("--cache-dir", help="datasets cache for Hub downloads and on-the-fly conversion (default: the "
                                          "datasets library's, ~/.cache/huggingface/datasets)")
    return data


# The options that choose which images a command sees (add_data_arguments), with --seed when it draws them:
# focus-eval records them in run.json, and the analyses of a run take them from there.
SELECTION_OPTIONS = ("limit", "subset", "categories", "times", "weathers", "locations", "locations_match", "humans")


def data_selection(args: argparse.Namespace) -> dict[str, Any]:
    """The image selection of a command line, as run.json records it."""
    selection = {key: getattr(args, key) for key in SELECTION_OPTIONS}
    selection["seed"] = args.seed if args.limit is not None and args.subset != "first" else None
    return selection


def selection_text(selection: dict[str, Any]) -> str:
    """The options that make `selection` again, e.g. "--limit 12 --subset stratified --seed 0"."""
    defaults = _selection_defaults()
    words = []
    for key in SELECTION_OPTIONS:
        value = selection.get(key)
        if value != defaults[key]:
            shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
            words.append(f"--{key.replace('_', '-')} {shown}")
    if selection.get("seed") is not None:
        words.append(f"--seed {selection['seed']}")
    return " ".join(words) or "every image"


def _selection_defaults() -> dict[str, Any]:
    parser = argparse.ArgumentParser(add_help=False)
    add_data_arguments(parser)
    return {key: value for key, value in vars(parser.parse_args([])).items() if key in SELECTION_OPTIONS}


def add_model_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    model = parser.add_argument_group(
        "models", "a model is a spec (see harness/models/specs.py): a timm name (resnet50.tv_in1k, 'convnext_*'), "
                  "hf-hub:ORG/NAME, local-dir:PATH, torchvision:NAME[/WEIGHTS], open_clip:ARCH/TAG or "
                  "open_clip:hf-hub:ORG/NAME, transformers:ORG/NAME or transformers:PATH; 'paper' = the paper's five")
    model.add_argument("--models", nargs="+", default=[], metavar="SPEC",
                       help="the models to evaluate (default: those of --models-file; with --run, the run's)")
    model.add_argument("--models-file", metavar="FILE",
                       help="more model specs, one per line ('#' starts a comment) (default: none)")
    model.add_argument("--pretrained-only", action="store_true",
                       help="a timm wildcard ('convnext_*') expands to every pretrained tag it matches")
    model.add_argument("--checkpoint", action="append", default=[], metavar="MODEL=PATH",
                       help="weights for a model: a .pth/.safetensors file (timm or EfficientNet-PyTorch names) or a "
                            "folder saved by timm.models.save_for_hf (default: the model's pretrained weights; with "
                            "--run, the run's)")
    model.add_argument("--random-init", nargs="*", metavar="MODEL",
                       help="random weights for these models, or for every model when none is named (tests and "
                            "throughput only: results are meaningless) (default: none: trained weights)")
    model.add_argument("--label-space", choices=labels.LABEL_SPACES,
                       help="'imagenet': a 1000-way ImageNet-1k head, mapped to FOCUS; 'focus': a 10-way head in "
                            "FOCUS's class order (a checkpoint fine-tuned on FOCUS) (default: the model's own: "
                            "imagenet for timm and torchvision models, focus for CLIP, from the labels for "
                            "transformers)")
    model.add_argument("--prompts", metavar="FILE",
                       help="prompt templates for CLIP models, one per line with {} for the class name (default: "
                            "CLIP's 80 ImageNet templates)")
    return model


def add_preprocessing_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    group = parser.add_argument_group(
        "preprocessing", "how an image becomes the model's input; the overrides (as in timm's validate.py) apply "
                         "on top of either protocol")
    group.add_argument("--preprocess", choices=preprocess.PROTOCOLS,
                       help="'paper': the authors' protocol: shorter side resized to the model's input size s "
                            "(bilinear), center crop s, the model's mean/std; 'timm': the model's own config (timm's "
                            "data config, e.g. 256->224 bicubic; torchvision's weights' transforms; a CLIP or "
                            "transformers model's own) (default: paper for timm and torchvision models, the model's "
                            "own for CLIP and transformers)")
    group.add_argument("--img-size", type=int, metavar="PIXELS", help="input size (default: the model's)")
    group.add_argument("--crop-pct", type=float, metavar="FRACTION",
                       help="crop size / resize size (default: 1.0 with paper, the model's with timm)")
    group.add_argument("--crop-mode", choices=preprocess.CROP_MODES,
                       help="center: resize the shorter side, crop; squash: resize both sides; border: resize the "
                            "longer side, pad (default: center with paper, the model's with timm)")
    group.add_argument("--interpolation", choices=preprocess.INTERPOLATIONS,
                       help="resize filter (default: bilinear with paper, the model's with timm)")
    group.add_argument("--mean", type=float, nargs="+", metavar="MEAN",
                       help="normalisation mean, 1 or 3 values (default: the model's)")
    group.add_argument("--std", type=float, nargs="+", metavar="STD",
                       help="normalisation std, 1 or 3 values (default: the model's)")
    return group


def preprocessing_overrides(args: argparse.Namespace) -> dict:
    """The preprocessing overrides given on the command line (see add_preprocessing_arguments), checked."""
    overrides = {key: getattr(args, key) for key in preprocess.OVERRIDES if getattr(args, key) is not None}
    preprocess.check_overrides(overrides)
    return overrides


def add_runtime_arguments(parser: argparse.ArgumentParser, batch_size: int = 64,
                          workers: bool = True) -> argparse._ArgumentGroup:
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--batch-size", type=int, default=batch_size, help="images per batch per process")
    if workers:
        runtime.add_argument("--workers", type=int, default=2, help="DataLoader workers per process")
    runtime.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                         help="numeric precision of the forward pass (bf16/fp16: autocast mixed precision)")
    runtime.add_argument("--cpu", action="store_true", help="run on the CPU even where a GPU is available")
    return runtime


def open_dataset(args: argparse.Namespace) -> tuple[datasets.Dataset, dict | None]:
    """The dataset named by the data options (see add_data_arguments), and its --limit subset (or None)."""
    if not args.data:
        raise ValueError("--data: name the dataset (a folder written by focus-dataset convert, the release folder "
                         "or focus.zip, or a Hub dataset id)")
    return open_focus(
        args.data, limit=args.limit, subset=args.subset, seed=args.seed, cache_dir=args.cache_dir,
        categories=args.categories, times=args.times, weathers=args.weathers, locations=args.locations,
        locations_match=args.locations_match, humans=None if args.humans is None else args.humans == "yes",
    )


def parse_checkpoints(items: list[str], model_names: list[str]) -> dict[str, str]:
    """`--checkpoint MODEL=PATH` items as {model: path}, each model one the run evaluates."""
    checkpoints = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--checkpoint expects MODEL=PATH, got {item!r}")
        if name not in model_names:
            raise ValueError(f"--checkpoint {quote(item)}: {quote(name)} is not among --models {listed(model_names)}")
        checkpoints[name] = path
    return checkpoints


def check_models(args: argparse.Namespace,
                 failures: dict[str, tuple[str, str]] | None = None) -> tuple[list[str], dict[str, str]]:
    """The specs of --models and --models-file (presets and wildcards expanded, each checked) and their
    --checkpoint files; the names given to --random-init must be among them.

    With `failures` (focus-eval --keep-going), a model whose check fails is left out and its error kept
    there under its name (error type, message), instead of stopping the command.
    """
    given = [*args.models, *(models.read_models_file(args.models_file) if args.models_file else [])]
    if not given:
        raise ValueError("no model to evaluate: name them with --models SPEC ... or --models-file FILE")
    names = models.expand_specs(given, pretrained_only=args.pretrained_only)
    unknown = [name for name in args.random_init or () if name not in names]
    if unknown:
        raise ValueError(f"--random-init {listed(unknown)}: not among the models {listed(names)}")
    checkpoints = parse_checkpoints(args.checkpoint, names)
    checked = []
    for name in names:
        try:
            models.check_model_name(name, pretrained=not random_init(args, name) and name not in checkpoints)
        except models.UnknownModelError as err:
            if failures is None:
                raise
            failures[name] = (type(err).__name__, str(err))
            continue
        checked.append(name)
    return checked, checkpoints


def models_of_run(args: argparse.Namespace) -> tuple[list[str], dict[str, str], dict[str, dict]]:
    """With --run RUN: the models to analyse (--models among the run's, else all of them), their --checkpoint
    files, and each one's config.json, which says which weights and preprocessing the run used.

    --data defaults to the run's dataset. A model the run did not finish is named.
    """
    run_dir = Path(args.run)
    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        raise ValueError(f"--run {run_dir}: no {RUN_FILE}; pass a run folder written by focus-eval")
    run_info = read_json(run_file)
    names = models.expand_specs([*args.models, *(models.read_models_file(args.models_file) if args.models_file
                                                 else [])]) or run_info.get("models", [])
    configs = {}
    for name in names:
        config_file = model_dir(run_dir, name) / CONFIG_FILE
        if not config_file.is_file():
            raise ValueError(f"--run {run_dir}: {name!r} is not a model of the run (it evaluated "
                             f"{listed(run_info.get('models', []))}). Run `focus-eval --data ... --models {name} "
                             f"--output "
                             f"{run_dir}` first, or name the images with --images.")
        configs[name] = read_json(config_file)
    args.run_fingerprint = run_info.get("dataset_fingerprint")
    args.run_selection = run_info.get("selection")
    args.data_of_run = args.data is None
    if args.data is None:
        args.data = run_info.get("data")
    take_selection_of_run(args)
    return names, parse_checkpoints(args.checkpoint, names), configs


def take_selection_of_run(args: argparse.Namespace) -> None:
    """Without selection options of its own, an analysis of a run sees the images the run evaluated (its --limit,
    --subset and filters, and the --seed that drew them)."""
    selection, defaults = args.run_selection, _selection_defaults()
    if not selection or any(getattr(args, key) != defaults[key] for key in SELECTION_OPTIONS):
        return
    for key in SELECTION_OPTIONS:
        setattr(args, key, selection.get(key, defaults[key]))
    if selection.get("seed") is not None:
        args.seed = selection["seed"]
    if selection_text(selection) != "every image":
        logger.info("--run %s: the run's images, %s", args.run, selection_text(selection))


def check_data_of_run(args: argparse.Namespace, fingerprint: str) -> None:
    """With --run, the data must be the run's (the analyses explain its predictions): its data changed since,
    or another --data, is refused."""
    if not getattr(args, "run", None) or args.run_fingerprint in (None, fingerprint):
        return
    selection, run_selection = data_selection(args), getattr(args, "run_selection", None)
    if run_selection is not None and selection != run_selection:
        where = (f"these images ({selection_text(selection)}) are not those the run evaluated "
                 f"({selection_text(run_selection)}): give the run's options, or none to take them")
    elif args.data_of_run:
        where = f"the run's data, {args.data}, has changed since the run"
    else:
        where = f"--data {args.data} is not the data the run evaluated"
    raise ValueError(f"--run {args.run}: {where} (dataset fingerprint {fingerprint}, the run's "
                     f"{args.run_fingerprint}); its predictions and weights explain that data only")


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, checked before any work starts."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low:,} to {high:,}, got {quote(text)}")
        return value
    return parse


def about(name: str, message: str) -> str:
    """`message` about model `name`, named once (many messages start with the model's spec already)."""
    return message if message.startswith(f"{name}: ") else f"{name}: {message}"


def listed(names: Sequence[str], shown: int = 8) -> str:
    """Names for a message: the first few, each clipped, and how many more (a wildcard can expand to a thousand).

    >>> listed(["a", "b"]), listed([str(i) for i in range(10)], shown=2)
    ("['a', 'b']", "['0', '1', ... (8 more)]")
    """
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return "[" + ", ".join(quote(name) for name in names[:shown]) + more + "]"


def random_init(args: argparse.Namespace, name: str) -> bool:
    """Whether --random-init applies to this model (given alone, it applies to every model)."""
    return args.random_init is not None and (not args.random_init or name in args.random_init)


def prepare_model(name: str, args: argparse.Namespace, checkpoint: str | None, overrides: dict,
                  run_config: dict | None = None) -> tuple[torch.nn.Module, dict, dict]:
    """A model of the command line, in eval mode, with where its weights came from and its preprocessing.

    Random weights are drawn after seeding with --seed, so every process (and every run with that
    seed) builds the same ones; info["init_seed"] records it. With `run_config` (a focus-eval run's
    config.json for this model), the model gets the run's weights (its checkpoint, or its random
    weights from its seed), label space and preprocessing, and weights that differ from the run's are
    refused: they would explain predictions they did not make.
    """
    randomly, seed, label_space, prompts = random_init(args, name), args.seed, args.label_space, args.prompts
    if run_config is not None:
        ran_random = run_config.get("weights") == "random-init"
        if randomly and not ran_random:
            raise ValueError(f"--random-init {name}: the run evaluated {name} with trained weights "
                             f"({run_config.get('weights')}); random weights would explain predictions they did not "
                             f"make. Drop --random-init to use the run's weights.")
        randomly, seed = ran_random, run_config.get("init_seed", args.seed)
        label_space = run_config.get("label_space", label_space)
        recorded = str(run_config.get("weights") or "")
        if checkpoint is None and recorded.startswith("checkpoint:"):
            checkpoint = recorded.removeprefix("checkpoint:")
        if ran_random and seed is None:
            raise ValueError(f"the run evaluated {name} with random weights but did not record their seed; rerun "
                             f"focus-eval (it records init_seed), or name the images with --images")
        prompts = prompts_of_run(name, run_config, prompts)
    if randomly:
        set_seed(seed)
    model, info = models.create_model(name, checkpoint=checkpoint, random_init=randomly, label_space=label_space,
                                      prompts=prompts)
    info["init_seed"] = seed if randomly else None
    if run_config is not None:
        run_templates = (run_config.get("zero_shot") or {}).get("templates_sha256")
        if run_templates != (info.get("zero_shot") or {}).get("templates_sha256"):
            raise ValueError(f"{name}: the prompt templates ({prompts or 'CLIP ImageNet templates'}) are not the ones "
                             f"the run used ({run_config['zero_shot']['templates']}); its zero-shot head would be "
                             f"another classifier. Drop --prompts to use the run's")
        if run_config.get("sha256") not in (None, info["sha256"]):
            raise ValueError(f"{name}: these weights ({info['weights']}, sha256 {str(info['sha256'])[:12]}) are not "
                             f"the ones the run used ({run_config.get('weights')}, sha256 "
                             f"{run_config['sha256'][:12]}); drop --checkpoint to use the run's")
        if run_config.get("preprocessing"):
            if args.preprocess or overrides:
                raise ValueError(f"--run {args.run}: the run's preprocessing applies to {name} "
                                 f"({runfolder.preprocessing_summary(run_config['preprocessing'])}); drop "
                                 f"--preprocess and its overrides")
            return model, info, run_config["preprocessing"]
    protocol = args.preprocess or preprocess.DEFAULT_PROTOCOL[info["source"]]
    return model, info, preprocess.resolve_preprocessing(info["data_config"], protocol, **overrides)


def prompts_of_run(name: str, run_config: dict, prompts: str | None) -> str | None:
    """The prompt file a run's zero-shot model was built with (--prompts, when given, must be the same file)."""
    zero_shot = run_config.get("zero_shot") or {}
    if prompts is None and zero_shot.get("templates_sha256"):
        prompts = zero_shot["templates"]
        if not Path(prompts).is_file():
            raise ValueError(f"{name}: the run built its zero-shot head from the prompts in {prompts}, which is gone; "
                             f"pass the same file with --prompts")
    return prompts


def accelerator_available() -> bool:
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def make_accelerator(args: argparse.Namespace) -> Accelerator:
    mixed_precision = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[args.precision]
    # Without an accelerator, accelerate runs a torchrun/MPI launch as one process unless told it is a CPU run.
    return Accelerator(mixed_precision=mixed_precision, cpu=args.cpu or not accelerator_available())


class SharedError(RuntimeError):
    """An error raised on another process of the run, with its message (see shared_error)."""


def shared_error(error: Exception | None) -> Exception | None:
    """This process's error, else the first other process's, else None; a collective every process calls.

    Work done by one process only (the main process's writes) can fail there alone: shared this way,
    the error stops every process instead of leaving the others waiting at the next barrier. Only the
    error's message crosses between processes (an exception object may not pickle), so the others
    raise a SharedError with the same message.
    """
    messages = [m for m in gather_object([None if error is None else str(error)]) if m is not None]
    if error is not None:
        return error
    return SharedError(messages[0]) if messages else None


def run_shared(accelerator: Accelerator, work: Callable[[], T], *, main_only: bool = False) -> T | None:
    """`work()` on every process (on the main process alone with main_only), its error raised on all.

    A collective every process calls, hence also a barrier: what the main process writes is written
    when it returns, and any error there ends every process with the same message. Returns what
    `work` returned, None where it did not run.
    """
    result, error = None, None
    if accelerator.is_main_process or not main_only:
        try:
            result = work()
        except Exception as err:  # noqa: BLE001 - whatever it is, every process must hear of it
            error = err
    if (error := shared_error(error)) is not None:
        raise error
    return result


@contextlib.contextmanager
def model_folder_lock(accelerator: Accelerator, model_dir: Path, holder: str) -> Iterator[None]:
    """Hold a model folder's lock (locks.folder_lock) on the main process, as focus-eval does; every process
    calls this, and a lock held by another command (named in the error) stops them all.

    focus-eval, focus-probe and focus-gradcam write into one model's folder: two of them at once would
    each redo the other's work. `holder` names the command and the model.
    """
    with contextlib.ExitStack() as held:
        def lock() -> None:
            model_dir.mkdir(parents=True, exist_ok=True)
            held.enter_context(locks.folder_lock(model_dir, holder))
        run_shared(accelerator, lock, main_only=True)
        yield


def run_with_accelerator(args: argparse.Namespace,
                         work: Callable[[Accelerator, argparse.Namespace], int]) -> int:
    """A command's set-up and tear-down: logging (quiet on all but the main process), the accelerator,
    and afterwards accelerate's process-wide state released, so that a later command in this process
    may choose another precision."""
    command.set_up_logging()
    accelerator = make_accelerator(args)
    if not accelerator.is_main_process:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        return work(accelerator, args)
    finally:
        accelerator.end_training()
        AcceleratorState._reset_state()


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def check_cache(config_path: Path, config: dict, identity_keys: Sequence[str], *, holds: str, stale: Sequence[Path],
                resume: bool, is_main: bool) -> None:
    """Keep cached results only when `config_path` says they were made with the same settings.

    Results without their config are stale: nothing says how they were made, so the main process
    deletes `stale` (files and folders) and they are made again, as with resume=False. Every
    process of a distributed run calls this and reads the same files, so that all raise alike (one
    raising alone would leave the others at a barrier); only the main process deletes.
    """
    if resume and config_path.is_file():
        try:
            previous = read_json(config_path)
        except ValueError as err:
            raise ValueError(f"{config_path} cannot be read ({err}). Pass --no-resume to start afresh.") from err
        differing = [key for key in identity_keys if previous.get(key) != config.get(key)]
        if differing:
            details = "; ".join(f"{key}: cached {previous.get(key)!r}, now {config.get(key)!r}" for key in differing)
            raise ValueError(f"{config_path.parent} holds {holds} made with other settings ({details}). "
                             f"Pass --no-resume to discard them, or choose another --output.")
        return
    if not is_main:
        return
    found = [path for path in stale if path.exists()]
    if resume and found:
        logger.warning("%s: %s without %s (how they were made): stale, making them again", config_path.parent,
                       ", ".join(path.name for path in found), config_path.name)
    for path in [*stale, config_path]:
        remove_stale_result(path)


def remove_stale_result(path: Path) -> None:
    """Delete what a command wrote at `path`, and nothing else.

    A file (or a symbolic link, which goes, not what it names) is unlinked. A folder is a folder of part
    files (write_part): its part files and staged names go, and the folder too when nothing else is left
    in it. Anything else there (a user's files) is left where it is.
    """
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    for entry in path.iterdir():
        if (entry.name.startswith(("part-", ".part-")) and (entry.is_symlink() or entry.is_file())):
            entry.unlink()
    try:
        path.rmdir()
    except OSError:
        logger.warning("%s: left in place, with files the harness did not write", path)


def read_parts(parts_dir: Path, schema: pa.Schema) -> pa.Table:
    """Every complete part file of a folder, in the order written."""
    parts = sorted(parts_dir.glob("part-*.parquet"))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(pq.read_table(p, schema=schema) for p in parts)


def write_part(parts_dir: Path, rows: pa.Table) -> None:
    """One more part file, renamed into place only when complete (a kill leaves no partial part)."""
    parts_dir.mkdir(parents=True, exist_ok=True)
    number = len(list(parts_dir.glob("part-*.parquet")))
    runfolder.write_parquet(parts_dir / f"part-{number:05d}.parquet", rows)
