"""The command-line options that focus-eval, focus-probe and focus-gradcam share, and their parsing into plain values.

Each `add_*` function adds one argument group; each `*_of(args)` function turns the parsed Namespace into
the plain values the library takes (harness.data.DataSelection, harness.models.preparation.ModelOptions).
Nothing below the command-line modules sees a Namespace. The parsers are built from harness.settings alone
and the library is imported when the values are made, so that `--help` and a mistyped option answer before
torch is imported.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from focus_common.messages import quote
from harness.settings import (
    CROP_MODES,
    INTERPOLATIONS,
    LABEL_SPACES,
    MAX_BATCH_SIZE,
    MAX_IMAGES,
    MAX_SEED,
    MAX_WORKERS,
    OVERRIDES,
    PRECISIONS,
    PROTOCOLS,
    SUBSETS,
)

if TYPE_CHECKING:
    from harness.data import DataSelection
    from harness.models.preparation import ModelOptions


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


def add_data_arguments(parser: argparse.ArgumentParser, *, run: bool = False) -> argparse._ArgumentGroup:
    """The dataset options; `run`: the command also takes --run, whose data they default to."""
    data = parser.add_argument_group("dataset")
    data.add_argument("--data",
                      help="converted FOCUS folder, Hub dataset repo id, or a raw release folder / focus.zip "
                           + ("(default: with --run, the run's data; otherwise it must be given)" if run else
                              "(default: none, it must be given)"))
    data.add_argument("--limit", type=whole_number(1, MAX_IMAGES), metavar="N",
                      help="evaluate N images only, chosen by --subset (default: every image)")
    data.add_argument("--subset", choices=SUBSETS, default="stratified",
                      help="which --limit images: each class's share kept (stratified), random ones (both drawn "
                           "with --seed), or the first by file_name (class-skewed: the first ones are all birds)")
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


def selection_of(args: argparse.Namespace) -> DataSelection:
    """The image selection of a command line."""
    from harness.data import DataSelection

    def names(values: list[str] | None) -> tuple[str, ...] | None:
        return None if values is None else tuple(values)
    return DataSelection(limit=args.limit, subset=args.subset, seed=args.seed, categories=names(args.categories),
                         times=names(args.times), weathers=names(args.weathers), locations=names(args.locations),
                         locations_match=args.locations_match,
                         humans=None if args.humans is None else args.humans == "yes")


def selection_given(args: argparse.Namespace) -> bool:
    """Whether the command line chooses images itself (any selection option other than its default)."""
    from harness.data import DataSelection

    return selection_of(args).record() | {"seed": None} != DataSelection().record()


def add_model_arguments(parser: argparse.ArgumentParser, *, run: bool = False) -> argparse._ArgumentGroup:
    """The model options; `run`: the command also takes --run, whose models they default to."""
    model = parser.add_argument_group(
        "models", "a model is a spec (see harness/models/specs.py): a timm name (resnet50.tv_in1k, 'convnext_*'), "
                  "hf-hub:ORG/NAME, local-dir:PATH, torchvision:NAME[/WEIGHTS], open_clip:ARCH/TAG or "
                  "open_clip:hf-hub:ORG/NAME, transformers:ORG/NAME or transformers:PATH; 'paper' = the paper's five")
    model.add_argument("--models", nargs="+", default=[], metavar="SPEC",
                       help="the models (default: those of --models-file" + ("; with --run, the run's)" if run else ")"))
    model.add_argument("--models-file", metavar="FILE",
                       help="more model specs, one per line ('#' starts a comment) (default: none)")
    model.add_argument("--pretrained-only", action="store_true",
                       help="a timm wildcard ('convnext_*') expands to every pretrained tag it matches")
    model.add_argument("--checkpoint", action="append", default=[], metavar="MODEL=PATH",
                       help="weights for a model: a .pth/.safetensors file (timm or EfficientNet-PyTorch names) or a "
                            "folder saved by timm.models.save_for_hf (default: the model's pretrained weights"
                            + ("; with --run, the run's)" if run else ")"))
    model.add_argument("--random-init", nargs="*", metavar="MODEL",
                       help="random weights for these models, or for every model when none is named (tests and "
                            "throughput only: results are meaningless) (default: none: trained weights)")
    model.add_argument("--label-space", choices=LABEL_SPACES,
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
    group.add_argument("--preprocess", choices=PROTOCOLS,
                       help="'paper': the authors' protocol: shorter side resized to the model's input size s "
                            "(bilinear), center crop s, the model's mean/std; 'timm': the model's own config (timm's "
                            "data config, e.g. 256->224 bicubic; torchvision's weights' transforms; a CLIP or "
                            "transformers model's own) (default: paper for timm and torchvision models, the model's "
                            "own for CLIP and transformers)")
    group.add_argument("--img-size", type=int, metavar="PIXELS", help="input size (default: the model's)")
    group.add_argument("--crop-pct", type=float, metavar="FRACTION",
                       help="crop size / resize size (default: 1.0 with paper, the model's with timm)")
    group.add_argument("--crop-mode", choices=CROP_MODES,
                       help="center: resize the shorter side, crop; squash: resize both sides; border: resize the "
                            "longer side, pad (default: center with paper, the model's with timm)")
    group.add_argument("--interpolation", choices=INTERPOLATIONS,
                       help="resize filter (default: bilinear with paper, the model's with timm)")
    group.add_argument("--mean", type=float, nargs="+", metavar="MEAN",
                       help="normalisation mean, 1 or 3 values (default: the model's)")
    group.add_argument("--std", type=float, nargs="+", metavar="STD",
                       help="normalisation std, 1 or 3 values (default: the model's)")
    return group


def parse_checkpoints(items: list[str]) -> dict[str, str]:
    """`--checkpoint MODEL=PATH` items as {model: path}."""
    checkpoints = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--checkpoint expects MODEL=PATH, got {item!r}")
        checkpoints[name] = path
    return checkpoints


def model_options_of(args: argparse.Namespace) -> ModelOptions:
    """What the model and preprocessing options ask for, checked."""
    from harness import preprocess
    from harness.models.preparation import ModelOptions

    overrides = {key: getattr(args, key) for key in OVERRIDES if getattr(args, key) is not None}
    preprocess.check_overrides(overrides)
    return ModelOptions(checkpoints=parse_checkpoints(args.checkpoint),
                        random_init=None if args.random_init is None else tuple(args.random_init),
                        label_space=args.label_space, prompts=args.prompts, preprocess=args.preprocess,
                        overrides=overrides, seed=args.seed, pretrained_only=args.pretrained_only)


def add_seed_argument(group: argparse._ArgumentGroup, what: str) -> None:
    """--seed, the seed of everything random in the command (`what` says what that is)."""
    group.add_argument("--seed", type=whole_number(0, MAX_SEED), default=0,
                       help=f"seed of everything random in the command: {what}")


def add_save_every_argument(group: argparse._ArgumentGroup, what: str) -> None:
    group.add_argument("--save-every", type=whole_number(1, MAX_IMAGES), default=1024,
                       help=f"images per {what} part file")


def add_runtime_arguments(parser: argparse.ArgumentParser, batch_size: int = 64,
                          workers: bool = True) -> argparse._ArgumentGroup:
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--batch-size", type=whole_number(1, MAX_BATCH_SIZE), default=batch_size,
                         help="images per batch per process")
    if workers:
        runtime.add_argument("--workers", type=whole_number(0, MAX_WORKERS), default=2,
                             help=f"DataLoader workers per process (at most {MAX_WORKERS}: 4 per CPU core)")
    runtime.add_argument("--precision", choices=PRECISIONS, default="fp32",
                         help="numeric precision of the forward pass (bf16/fp16: autocast mixed precision)")
    runtime.add_argument("--cpu", action="store_true", help="run on the CPU even where a GPU is available")
    return runtime


def runtime_of(args: argparse.Namespace) -> dict[str, Any]:
    """The runtime options as keyword arguments of the library's options records."""
    return {"batch_size": args.batch_size, "workers": getattr(args, "workers", 0), "precision": args.precision,
            "cpu": args.cpu}
