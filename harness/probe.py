#!/usr/bin/env python3
"""FOCUS feature probes: which locations a model's penultimate features encode (the paper's Tables 5 and 6).

    focus-probe --data demo/focus --models tf_efficientnet_lite0 --checkpoint tf_efficientnet_lite0=W.pth
    accelerate launch harness/probe.py --data focus --models resnet50.tv_in1k --precision bf16

The command line of harness.probing.probe_models: its options parsed into plain values (harness/probing.py
says what is written).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python harness/probe.py, accelerate launch)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
from typing import TYPE_CHECKING

from focus_common import commands
from harness import options
from harness.settings import MIN_SPLIT_IMAGES

if TYPE_CHECKING:
    from harness.probing import ProbeOptions


def build_parser() -> argparse.ArgumentParser:
    parser = commands.parser(None, __doc__.splitlines()[0])
    options.add_data_arguments(parser, run=True)
    options.add_preprocessing_arguments(parser)
    options.add_model_arguments(parser, run=True)
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
    from harness.probe_cells import check_probe_options, parse_pairs
    from harness.probing import ProbeOptions

    model = options.model_options_of(args)
    pairs = parse_pairs(args.pairs)
    check_probe_options(args.min_images, args.test_size)
    return ProbeOptions(
        **{field: getattr(model, field) for field in model.__dataclass_fields__},
        run=args.run, selection=options.selection_of(args), selection_given=options.selection_given(args),
        cache_dir=args.cache_dir, output=args.output, **options.runtime_of(args), resume=not args.no_resume,
        save_every=args.save_every, quiet=args.quiet, min_images=args.min_images, test_size=args.test_size,
        C=args.C, pairs=None if pairs is None else tuple(pairs), top_k=args.top_k)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return commands.run_command(lambda: probe(args), on_stop="run the same command again to resume")


def probe(args: argparse.Namespace) -> int:
    from harness.models.preparation import model_specs
    from harness.probing import probe_models

    reports = probe_models(args.data, model_specs(args.models, args.models_file), probe_options(args))
    if commands.is_main_process():
        for report in reports:
            if report is not None:
                print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
