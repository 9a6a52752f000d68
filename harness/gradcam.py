#!/usr/bin/env python3
"""FOCUS failure maps: Grad-CAM and Guided Grad-CAM of misclassified uncommon images (the paper's Figure 4).

    focus-gradcam --data demo/focus --models tf_efficientnet_lite0 --checkpoint tf_efficientnet_lite0=W.pth --run R
    focus-gradcam --data demo/focus --models resnet50.tv_in1k --images cat-snow/12.jpg plane-water/3.jpg

The command line of harness.explanations.explain_models (which says what is drawn and written).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python harness/gradcam.py, accelerate launch)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
from typing import TYPE_CHECKING

from focus_common import commands
from harness import options

if TYPE_CHECKING:
    from harness.explanations import GradcamOptions


def build_parser() -> argparse.ArgumentParser:
    parser = commands.parser(None, __doc__.splitlines()[0])
    options.add_data_arguments(parser, run=True)
    options.add_preprocessing_arguments(parser)
    options.add_model_arguments(parser, run=True)
    options.add_runtime_arguments(parser, batch_size=8, workers=False)

    images = parser.add_argument_group("images")
    source = images.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="RUN_DIR",
                        help="take the misclassified images with an uncommon attribute from this run's predictions, "
                             "and each model's weights and preprocessing (and by default the models and --data) "
                             "from the run (default: none: the images of --images)")
    source.add_argument("--images", nargs="+", metavar="FILE_NAME",
                        help="these images, file names as in the dataset (default: none: those of --run)")
    images.add_argument("--max-images", type=options.whole_number(1, 10_000), default=16,
                        help="at most this many images per model")
    images.add_argument("--target-layer", metavar="MODULE",
                        help="dotted module path of the layer to explain (e.g. layer4, blocks.5) (default: found "
                             "per architecture)")
    images.add_argument("--no-aug-smooth", dest="aug_smooth", action="store_false",
                        help="plain Grad-CAM maps, without the test-time smoothing the authors used (grad-cam's "
                             "aug_smooth: horizontal flips x inputs multiplied by 0.9, 1.0, 1.1, maps averaged) "
                             "(default: smoothed maps)")

    output = parser.add_argument_group("output")
    output.add_argument("--output", help="the run folder (default: --run, else runs/focus)")
    options.add_seed_argument(output, "--subset random/stratified and --random-init weights")
    output.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def gradcam_options(args: argparse.Namespace) -> GradcamOptions:
    """The command line as the library's options."""
    from harness.explanations import GradcamOptions

    model = options.model_options_of(args)
    return GradcamOptions(
        **{field: getattr(model, field) for field in model.__dataclass_fields__},
        run=args.run, images=None if args.images is None else tuple(args.images),
        selection=options.selection_of(args), selection_given=options.selection_given(args),
        cache_dir=args.cache_dir, output=args.output, precision=args.precision, cpu=args.cpu,
        batch_size=args.batch_size, max_images=args.max_images, target_layer=args.target_layer,
        aug_smooth=args.aug_smooth, quiet=args.quiet)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return commands.run_command(lambda: explain(args))


def explain(args: argparse.Namespace) -> int:
    from harness.explanations import explain_models
    from harness.models.preparation import model_specs

    indexes = explain_models(args.data, model_specs(args.models, args.models_file), gradcam_options(args))
    if commands.is_main_process():
        for name, index in indexes.items():
            if index is not None:
                print(f"{name}: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
