#!/usr/bin/env python3
"""FOCUS evaluation harness: any image classifier on FOCUS, one CPU or many GPUs (accelerate).

    python harness/run.py --data demo/focus --models tf_efficientnet_lite0 --checkpoint tf_efficientnet_lite0=W.pth
    accelerate launch harness/run.py --data demo/focus --models paper --precision bf16

The command line of harness.evaluation.evaluate_models: it parses its options into plain values and calls
it. Writes a run folder (see harness/runfolder.py): per model the predictions (Parquet, written as they
come, so a killed run resumes where it stopped), metrics.json from the focus_generalization metric, and
for the run a report.md with the paper's Tables 3 and 4 and its figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python harness/run.py, accelerate launch)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import logging
import shlex

from typing import TYPE_CHECKING

from focus_common import commands
from harness import options
from harness.settings import FIGURE_MODES, MAPPINGS

if TYPE_CHECKING:
    from harness.evaluation import EvaluationOptions, EvaluationResult

logger = logging.getLogger("focus-eval")


def build_parser() -> argparse.ArgumentParser:
    parser = commands.parser(None, __doc__.splitlines()[0])
    options.add_data_arguments(parser)
    options.add_preprocessing_arguments(parser)
    model = options.add_model_arguments(parser)
    model.add_argument("--mapping", choices=MAPPINGS, default="paper",
                       help="ImageNet-1k heads: 'paper': top-1 of all classes, unmapped = wrong; 'restricted': argmax "
                            "over the mapped classes")
    model.add_argument("--keep-going", action="store_true",
                       help="a model that fails (missing weights, a bad checkpoint) is reported and the run goes on; "
                            "the run then exits 1 and lists the failures")
    runtime = options.add_runtime_arguments(parser)
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
    options.add_save_every_argument(output, "predictions")
    output.add_argument("--n-bootstrap", type=options.whole_number(0, 100_000), default=1000,
                        help="bootstrap replicates for the gap intervals (0 to 100,000; 0: none)")
    options.add_seed_argument(output, "the bootstrap intervals, --subset random/stratified and --random-init weights")
    output.add_argument("--figures", choices=FIGURE_MODES, default="background",
                        help="the report's figures: drawn in a process of their own once the results are out "
                             "(background), before the command returns (now), or not at all (none)")
    output.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def evaluation_options(args: argparse.Namespace, argv: list[str] | None = None) -> EvaluationOptions:
    """The command line as the library's options."""
    from harness.evaluation import EvaluationOptions

    model = options.model_options_of(args)
    return EvaluationOptions(
        **{field: getattr(model, field) for field in model.__dataclass_fields__},
        selection=options.selection_of(args), cache_dir=args.cache_dir, output=args.output,
        **options.runtime_of(args), channels_last=args.channels_last, compile=args.compile, mapping=args.mapping,
        share_decode=not args.no_share_decode, keep_going=args.keep_going, resume=not args.no_resume,
        save_every=args.save_every, n_bootstrap=args.n_bootstrap, figures=args.figures, quiet=args.quiet,
        command=shlex.join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return commands.run_command(lambda: evaluate(args, argv), on_stop="run the same command again to resume")


def evaluate(args: argparse.Namespace, argv: list[str] | None) -> int:
    """0 when every model was evaluated, 1 when --keep-going left some out (bad input raises: exit 2)."""
    from harness.evaluation import evaluate_models
    from harness.models.preparation import model_specs

    if not args.data:
        raise ValueError("--data: name the dataset (a folder written by focus-dataset convert, the release folder "
                         "or focus.zip, or a Hub dataset id)")
    specs = model_specs(args.models, args.models_file)
    result = evaluate_models(args.data, specs, evaluation_options(args, argv))
    if commands.is_main_process():
        print_result(result)
    return 1 if result.failures else 0


def print_result(result: EvaluationResult) -> None:
    """The report and the results table on stdout; the failures of --keep-going on stderr."""
    written = result.report
    if written is not None:
        print(written.markdown)
        print(written.table)
        print(f"run folder: {result.run_dir}")
        if written.figures_process is not None:
            logger.info("the figures are drawn in the background (pid %d) into %s; `focus-report %s` draws them "
                        "again", written.figures_process.pid, result.run_dir / "figures", result.run_dir)
    if result.failures:
        for name, (_, message) in result.failures.items():
            print(f"error: {message if message.startswith(f'{name}: ') else f'{name}: {message}'}", file=sys.stderr)
        print(f"{len(result.failures)} of {len(result.names)} model(s) failed (--keep-going):",
              file=sys.stderr)
        for name, (kind, message) in result.failures.items():
            print(f"  {name}: {kind}: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
