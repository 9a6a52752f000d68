"""The FOCUS leaderboard: pack a run into a submission, verify it by recomputation, render, push to the Hub.

The focus-leaderboard command, a thin layer over the package's modules: only this module prints, and
its `main` sets up logging once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence


from focus_common import commands as command

# The parser imports nothing heavy (--help and a mistyped option answer at once); each subcommand imports what it
# runs. These defaults are the library's, pinned by a test.
DEFAULT_DATASET_ID = "focus"  # harness.leaderboard.pushing.DEFAULT_DATASET_ID
MAX_PREDICTIONS_MB, MAX_DECODED_MB, MAX_JSON_MB = 50.0, 512.0, 1.0  # harness.leaderboard.strict.Limits, in MiB
DEFAULT_OUTPUT = "leaderboard"


def _limits(args):
    from harness.leaderboard.strict import Limits

    return Limits(predictions_bytes=int(args.max_predictions_mb * 2**20), json_bytes=int(args.max_json_mb * 2**20),
                  decoded_bytes=int(args.max_decoded_mb * 2**20))


def _summary(metrics: dict) -> str:
    from focus_tools import schema
    from harness.leaderboard.submission import headline
    from harness.leaderboard.tables import _percent

    values = headline(metrics)
    return ", ".join(f"{name} {_percent(value)}" + ("" if name in schema.GAPS else "%")
                     for name, value in values.items())


def _print_verification(verification, truth) -> None:
    from harness.leaderboard.submission import display_name
    from harness.leaderboard.verification import POINT_TOLERANCE

    if verification.accepted:
        metadata, metric = verification.metadata, verification.metadata["metric"]
        print(f"{verification.submission}: accepted")
        print(f"  every claimed metric matches the recomputation: {verification.compared_fields:,} fields (points "
              f"within {POINT_TOLERANCE:g}, intervals exact with seed {metric['seed']} and {metric['n_bootstrap']} "
              f"bootstrap replicates)")
        print(f"  {display_name(metadata)} on {truth.num_images:,} images (dataset {truth.fingerprint}): "
              f"{_summary(verification.recomputed)}")
        for other, share in verification.near_copies:
            print(f"  note: a near copy of {other}: the same top-1 on {100 * share:.1f}% of the images, for a "
                  f"different model (flagged on the leaderboard, not rejected)")
        return
    print(f"{verification.submission}: rejected, {len(verification.problems)} problem(s)")
    for problem in verification.problems:
        print(f"  - {problem}")
    if verification.recomputed is None and verification.problems:
        print("  (the claimed metrics were not compared: fix the problems above first)")


def _cmd_pack(args) -> int:
    from harness.leaderboard.packing import pack
    from harness.leaderboard.strict import Limits, read_json_strict
    from harness.leaderboard.submission import SUBMISSION_FILE, SUBMITTED_FILES, display_name

    output = pack(args.run_dir, args.model, args.output, overwrite=args.overwrite)
    metadata = read_json_strict(output / SUBMISSION_FILE, Limits.json_bytes)  # as every JSON the leaderboard reads
    print(f"wrote {output}")
    for name in SUBMITTED_FILES:
        print(f"  {name:<20} {(output / name).stat().st_size:>10,} bytes")
    print(f"  {display_name(metadata)}, {metadata['dataset']['num_images']:,} images, dataset "
          f"{metadata['dataset']['fingerprint']}")
    print(f"next: focus-leaderboard verify {output} --data DATASET")
    return 0


def _cmd_verify(args) -> int:
    from harness.leaderboard.comparisons import verify_among
    from harness.leaderboard.verification import check_submission_folder, ground_truth, verify

    check_submission_folder(args.submission)  # before the dataset loads
    truth = ground_truth(args.data)
    if args.submissions is None:
        verification = verify(args.submission, truth, limits=_limits(args))
    else:
        verification = verify_among(args.submission, truth, args.submissions, limits=_limits(args))
    _print_verification(verification, truth)
    return 0 if verification.accepted else 1


def _cmd_render(args) -> int:
    from harness.leaderboard.rendering import HTML_FILE, MARKDOWN_FILE, StrictRenderError, render
    from harness.leaderboard.verification import ground_truth

    truth = ground_truth(args.data)
    try:
        verifications = render(args.submissions_dir, args.out, truth, strict=args.strict, limits=_limits(args))
    except StrictRenderError as err:
        for verification in err.skipped:
            _print_verification(verification, truth)
        print(f"error: {err}", file=sys.stderr)
        return 1
    accepted = [v for v in verifications if v.accepted]
    print(f"wrote {Path(args.out) / MARKDOWN_FILE} and {Path(args.out) / HTML_FILE}: {len(accepted)} model(s)")
    for verification in verifications:
        if not verification.accepted:
            print(f"not shown: {verification.submission.name}, {len(verification.problems)} problem(s)")
            for problem in verification.problems:
                print(f"  - {problem}")
    return 0


def _cmd_push(args) -> int:
    from harness.leaderboard.errors import RejectedSubmissionError
    from harness.leaderboard.pushing import connect, push
    from harness.leaderboard.verification import check_submission_folder, ground_truth

    check_submission_folder(args.submission)
    # The Hub first: a missing token or a refused repository should not wait for the dataset to load.
    api = None if args.dry_run else connect(args.repo, args.model_repo)
    truth = ground_truth(args.data)
    try:
        result = push(args.submission, args.repo, truth, dry_run=args.dry_run, model_repo=args.model_repo,
                      dataset_id=args.dataset_id, api=api)
    except RejectedSubmissionError as err:
        for verification in err.verifications:
            _print_verification(verification, truth)
        print(f"error: {args.submission}: not pushed", file=sys.stderr)
        return 1
    if result.dry_run:
        print(f"dry run, nothing sent: a pull request on the dataset repository {result.repo_id} would add")
        for op in result.operations:
            print(f"  {op.path_in_repo}  {op.upload_info.size:,} bytes  sha256 {op.upload_info.sha256.hex()}")
        if result.model_repo:
            print(f"and a pull request on the model repository {result.model_repo} would add the model-index block")
        print(f"model-index block for the model card (a dry run writes nothing):\n{result.model_index}", end="")
        return 0
    print(f"opened {result.pr_url}")
    if result.card_url:
        print(f"opened {result.card_url}")
    print(f"model-index block for the model card, in {result.model_index_file}:\n{result.model_index}", end="")
    return 0


def _add_limits(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("size limits (checked before a file is parsed)")
    group.add_argument("--max-predictions-mb", type=float, default=MAX_PREDICTIONS_MB,
                       help="largest predictions.parquet accepted")
    group.add_argument("--max-decoded-mb", type=float, default=MAX_DECODED_MB,
                       help="most memory reading and checking the predictions may hold, copies included, "
                            "counted from the file's page headers before decoding")
    group.add_argument("--max-json-mb", type=float, default=MAX_JSON_MB,
                       help="largest submission.json or metrics.json accepted")


def _subcommand(commands, name: str, help: str) -> argparse.ArgumentParser:
    return commands.add_parser(name, help=help, description=help, epilog=command.EXIT_STATUS,
                               formatter_class=command.HelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    parser = command.parser("focus-leaderboard", __doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    pack_parser = _subcommand(commands, "pack", "run folder -> submission folder")
    pack_parser.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="the harness's run folder (or --run)")
    pack_parser.add_argument("--run", metavar="RUN", help="the harness's run folder (default: RUN_DIR)")
    pack_parser.add_argument("--model", help="the model of the run to submit, as focus-eval named it (default: the "
                                             "run's model, when it has one)")
    pack_parser.add_argument("--output", metavar="DIR",
                             help="the submission folder to write (default: submissions/<model>-<precision>-<weights>, "
                                  "then -restricted, -timm or -custom where they apply)")
    pack_parser.add_argument("--overwrite", action="store_true",
                             help="replace DIR if it is a submission that pack wrote (never anything else)")
    pack_parser.set_defaults(func=_cmd_pack)

    verify_parser = _subcommand(commands, "verify", "recompute a submission's metrics and check its claims")
    verify_parser.add_argument("submission", metavar="SUBMISSION", help="a submission folder")
    verify_parser.add_argument("--data", required=True, metavar="DATASET",
                               help="the ground truth: converted folder, release folder or zip, or Hub id")
    verify_parser.add_argument("--submissions", metavar="DIR",
                               help="the leaderboard's folder of submissions: also reject a copy of an earlier one "
                                    "(the same top-1 on every image, bit-identical top-5 probabilities on 99%% of "
                                    "them, or a symbolic link to it) and note near copies, as render does (default: "
                                    "the submission alone)")
    _add_limits(verify_parser)
    verify_parser.set_defaults(func=_cmd_verify)

    render_parser = _subcommand(commands, "render", "verified submissions -> leaderboard.md and index.html")
    render_parser.add_argument("submissions_dir", metavar="SUBMISSIONS_DIR", help="a folder of submission folders")
    render_parser.add_argument("out", metavar="OUT", nargs="?", help="the output folder (or --output)")
    render_parser.add_argument("--output", metavar="DIR",
                               help="the folder to write leaderboard.md and index.html to (default: OUT, else "
                                    f"{DEFAULT_OUTPUT}/ in the current folder)")
    render_parser.add_argument("--data", required=True, metavar="DATASET", help="the ground truth, as for verify")
    render_parser.add_argument("--strict", action="store_true",
                               help="write nothing and exit 1 if any submission fails verification")
    _add_limits(render_parser)
    render_parser.set_defaults(func=_cmd_render)

    push_parser = _subcommand(commands, "push", "open a pull request with the submission on a Hub dataset repo")
    push_parser.add_argument("submission", metavar="SUBMISSION", help="a submission folder")
    push_parser.add_argument("--repo", required=True, metavar="REPO_ID",
                             help="the leaderboard's Hub dataset repository")
    push_parser.add_argument("--data", required=True, metavar="DATASET",
                             help="the ground truth, as for verify: only a verified submission is pushed")
    push_parser.add_argument("--model-repo", metavar="REPO_ID",
                             help="also open a pull request adding the model-index block to this model's card "
                                  "(default: none)")
    push_parser.add_argument("--dataset-id", default=DEFAULT_DATASET_ID,
                             help="the Hub id of FOCUS that the model-index names")
    push_parser.add_argument("--dry-run", action="store_true",
                             help="print the operations and the block; write nothing, touch no network")
    push_parser.set_defaults(func=_cmd_push)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The focus-leaderboard command: 0 success, 1 a rejected submission, 2 a command that cannot run."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "pack":
        args.run_dir = command.one_of(parser, args.run_dir, args.run, "RUN_DIR or --run")
    if args.command == "render":
        args.out = (DEFAULT_OUTPUT if args.out is None and args.output is None
                    else command.one_of(parser, args.out, args.output, "OUT or --output"))
    return command.run_command(lambda: args.func(args))
