"""The `focus-dataset` command line: convert, push, sample, validate.

The parser imports nothing heavy: `--help` and a mistyped option answer at once; each subcommand imports
what it runs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from focus_common import commands as command
from focus_common.messages import quote

# datasets' default largest shard (datasets.config.MAX_SHARD_SIZE, pinned by a test), named here so that --help
# need not import datasets.
DEFAULT_MAX_SHARD_SIZE = "500MB"
MAX_SAMPLE_IMAGES = 1_000_000  # a release's most rows (focus_tools.release.MAX_ROWS, pinned by a test)
REPORT_NAME = "conversion_report.json"  # focus_tools.convert.REPORT_NAME, pinned by a test


def _cmd_convert(args) -> int:
    from focus_tools.convert import convert, holds_conversion_of
    from focus_tools.upload import check_hub_access, push_to_hub

    if args.push_to_hub:  # before the long work, not after it
        check_hub_access(args.push_to_hub)
    if args.push_to_hub and not args.overwrite and holds_conversion_of(
            args.source, args.output, args.uncommon, skip_invalid=args.skip_invalid):
        print(f"{args.output} already holds this release's conversion: pushing it as it is")
        print(push_to_hub(args.output, args.push_to_hub, private=args.private))
        return 0
    report = convert(args.source, args.output, uncommon=args.uncommon, max_shard_size=args.max_shard_size,
                     skip_invalid=args.skip_invalid, overwrite=args.overwrite)
    print(f"wrote {args.output}: {report['num_images']:,} images, fingerprint {report['fingerprint']}, closest "
          f"published version {report['published_version']['num_images']:,} images (Tables 1 and 2: "
          f"focus-dataset validate {args.output})")
    problems = len(report["skipped_rows"]) + len(report["image_problems"]) + len(report["images_without_rows"])
    if problems:
        print(f"{problems} problem(s) recorded in {Path(args.output) / REPORT_NAME}: "
              f"{len(report['skipped_rows'])} skipped row(s), {len(report['image_problems'])} image problem(s), "
              f"{len(report['images_without_rows'])} image(s) without a row")
    if args.push_to_hub:
        print(push_to_hub(args.output, args.push_to_hub, private=args.private))
    return 0


def _cmd_push(args) -> int:
    from focus_tools.parquet import converted_shards
    from focus_tools.schema import FocusDataError
    from focus_tools.upload import check_hub_access, push_to_hub

    folder = Path(args.folder)
    if not converted_shards(folder) or not (folder / REPORT_NAME).is_file():
        raise FocusDataError(f"{folder}: not a folder written by focus-dataset convert (no data/*.parquet shards or "
                             f"no {REPORT_NAME}); convert the release first")
    check_hub_access(args.repo_id)
    print(push_to_hub(folder, args.repo_id, private=args.private))
    return 0


def _cmd_sample(args) -> int:
    from focus_tools.sample import write_sample_release

    output = write_sample_release(args.output, args.num_images, seed=args.seed, as_zip=args.zip)
    print(f"wrote a sample release of {args.num_images} images to {output}")
    return 0


def _cmd_validate(args) -> int:
    from focus_tools.statistics import summary, uncommon_masks_from_data
    from focus_tools.validate import validate, validation_report

    result = validate(args.path)
    report = validation_report(result)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if result.ok else 1
    for warning in result.warnings[: args.max_lines]:
        print(f"warning: {warning}")
    for error in result.errors[: args.max_lines]:
        print(f"error: {error}")
    hidden = max(0, len(result.errors) - args.max_lines) + max(0, len(result.warnings) - args.max_lines)
    if hidden:
        print(f"... and {hidden} more")
    if report["version"] is not None:
        print(summary(result.table, uncommon_masks_from_data(result.table)))
        print(f"\nClosest published version: {report['version']:,} images, {report['description']}.")
        if not report["tables_3_and_4"]:
            print("The paper's Tables 3 and 4 were measured on another version: accuracies on this data are not "
                  "directly comparable with them.")
        differences = report["differences"]
        print(f"Differences from the published Tables 1 and 2 of that version: {len(differences)} cell(s) "
              f"({report['table1_differences']} in Table 1, {report['table2_differences']} in Table 2)")
        for line in differences[: args.max_lines]:
            print(f"  {line}")
        if len(differences) > args.max_lines:
            print(f"  ... and {len(differences) - args.max_lines} more")
    print(f"\n{len(result.errors)} error(s), {len(result.warnings)} warning(s)")
    return 0 if result.ok else 1


def _whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"of at least {minimum}" if maximum is None else f"from {minimum:,} to {maximum:,}"
            raise argparse.ArgumentTypeError(f"expected a whole number {bound}, got {quote(text)}")
        return value
    return parse


def _size(text: str) -> int:
    from focus_tools.parquet import shard_size_limit
    from focus_tools.schema import FocusDataError

    try:
        return shard_size_limit(text)
    except FocusDataError:
        raise argparse.ArgumentTypeError(f"{quote(text)} is not a size; expected e.g. 500MB") from None


def build_parser() -> argparse.ArgumentParser:
    parser = command.parser("focus-dataset",
                            "FOCUS: Familiar Objects in Common and Uncommon Settings, as a typed Hugging Face dataset.")
    commands = parser.add_subparsers(dest="command", required=True)

    def subcommand(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, epilog=command.EXIT_STATUS,
                                   formatter_class=command.HelpFormatter)

    convert_parser = subcommand("convert", "release folder or focus.zip -> Hub-ready Parquet dataset")
    convert_parser.add_argument("source", help="the release folder (holding annotations.db) or focus.zip")
    convert_parser.add_argument("output_positional", nargs="?", metavar="OUTPUT", help="the same as --output")
    convert_parser.add_argument("--output", help="the dataset folder to write (data/*.parquet, README.md, "
                                                 f"{REPORT_NAME})")
    convert_parser.add_argument("--uncommon", metavar="FILE", help="JSON or YAML uncommon table (default: the paper's)")
    convert_parser.add_argument("--max-shard-size", metavar="SIZE", type=_size,
                                help=f"largest Parquet shard, e.g. 500MB (default: {DEFAULT_MAX_SHARD_SIZE})")
    convert_parser.add_argument("--skip-invalid", action="store_true",
                                help="leave out bad annotation rows (listed in the report) instead of stopping")
    convert_parser.add_argument("--overwrite", action="store_true",
                                help="replace OUTPUT if it is an earlier conversion (nothing else is replaced)")
    convert_parser.add_argument("--push-to-hub", metavar="REPO_ID",
                                help="then upload OUTPUT as a Hub dataset (access is checked first; an OUTPUT that "
                                     "already holds this release's conversion is pushed as it is)")
    convert_parser.add_argument("--private", action="store_true", help="with --push-to-hub: a private repository")
    convert_parser.set_defaults(func=_cmd_convert)

    push_parser = subcommand("push", "upload a folder that focus-dataset convert wrote as a Hub dataset")
    push_parser.add_argument("folder", help="the dataset folder convert wrote (data/*.parquet, README.md, "
                                            f"{REPORT_NAME})")
    push_parser.add_argument("repo_id", metavar="REPO_ID", help="the Hub dataset repository, e.g. you/focus")
    push_parser.add_argument("--private", action="store_true", help="create the repository private")
    push_parser.set_defaults(func=_cmd_push)

    sample_parser = subcommand("sample", "write a synthetic release in the public layout")
    sample_parser.add_argument("output_positional", nargs="?", metavar="OUTPUT", help="the same as --output")
    sample_parser.add_argument("--output", help="the release folder to write (with --zip: the zip file)")
    sample_parser.add_argument("--num-images", type=_whole_number(1, MAX_SAMPLE_IMAGES), required=True, metavar="N",
                               help="images in the release, drawn from the published Table 1 (every partition "
                                    "occurs from 8 on)")
    sample_parser.add_argument("--seed", type=int, default=0,
                               help="seed of everything random in the command: the annotations and the images; one "
                                    "seed, one release")
    sample_parser.add_argument("--zip", action="store_true", help="write focus.zip-style archive instead of a folder")
    sample_parser.set_defaults(func=_cmd_sample)

    validate_parser = subcommand("validate", "check a release or a converted dataset")
    validate_parser.add_argument("path", help="release folder, focus.zip, or converted dataset folder")
    validate_parser.add_argument("--max-lines", type=_whole_number(0), default=50, metavar="N",
                                 help="lines to print per kind of finding (default: 50)")
    validate_parser.add_argument("--json", action="store_true",
                                 help="print one JSON object (version, num_images, table1_differences, "
                                      "table2_differences, errors, warnings, ...) instead of the text report")
    validate_parser.set_defaults(func=_cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("convert", "sample"):
        args.output = command.one_of(parser, args.output_positional, args.output, "OUTPUT or --output")
    return command.run_command(lambda: args.func(args), on_stop="what it was writing was removed")
