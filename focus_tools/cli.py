"""The `focus-dataset` command line: convert, sample, validate."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import datasets

from focus_common.messages import quote
from focus_tools.schema import FocusDataError
from focus_common import commands as command
from focus_tools.convert import REPORT_NAME, convert
from focus_tools.upload import check_hub_access, push_to_hub
from focus_tools.parquet import converted_shards, read_annotation_columns, shard_size_limit
from focus_tools.release import MAX_ROWS
from focus_tools.sample import write_sample_release
from focus_tools.statistics import summary, uncommon_masks_from_data
from focus_tools.validate import validate, validation_report


def _cmd_convert(args) -> int:
    if args.push_to_hub:  # before the long work, not after it
        check_hub_access(args.push_to_hub)
    report = convert(args.source, args.output, uncommon=args.uncommon, max_shard_size=args.max_shard_size,
                     skip_invalid=args.skip_invalid, overwrite=args.overwrite)
    table = read_annotation_columns(args.output)
    print(f"wrote {args.output} ({len(converted_shards(Path(args.output)))} shard(s))")
    print(summary(table, uncommon_masks_from_data(table)))
    problems = len(report["skipped_rows"]) + len(report["image_problems"]) + len(report["images_without_rows"])
    if problems:
        print(f"\n{problems} problem(s) recorded in {Path(args.output) / REPORT_NAME}: "
              f"{len(report['skipped_rows'])} skipped row(s), {len(report['image_problems'])} image problem(s), "
              f"{len(report['images_without_rows'])} image(s) without a row")
    if args.push_to_hub:
        print(push_to_hub(args.output, args.push_to_hub, private=args.private))
    return 0


def _cmd_sample(args) -> int:
    output = write_sample_release(args.output, args.num_images, seed=args.seed, as_zip=args.zip)
    print(f"wrote a sample release of {args.num_images} images to {output}")
    return 0


def _cmd_validate(args) -> int:
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
                                help=f"largest Parquet shard, e.g. 500MB (default: {datasets.config.MAX_SHARD_SIZE})")
    convert_parser.add_argument("--skip-invalid", action="store_true",
                                help="leave out bad annotation rows (listed in the report) instead of stopping")
    convert_parser.add_argument("--overwrite", action="store_true",
                                help="replace OUTPUT if it is an earlier conversion (nothing else is replaced)")
    convert_parser.add_argument("--push-to-hub", metavar="REPO_ID",
                                help="then upload OUTPUT as a Hub dataset (access is checked first)")
    convert_parser.add_argument("--private", action="store_true", help="with --push-to-hub: a private repository")
    convert_parser.set_defaults(func=_cmd_convert)

    sample_parser = subcommand("sample", "write a synthetic release in the public layout")
    sample_parser.add_argument("output_positional", nargs="?", metavar="OUTPUT", help="the same as --output")
    sample_parser.add_argument("--output", help="the release folder to write (with --zip: the zip file)")
    sample_parser.add_argument("--num-images", type=_whole_number(1, MAX_ROWS), required=True, metavar="N",
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
