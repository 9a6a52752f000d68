"""harness.cli: focus-leaderboard's output and exit codes."""

import argparse
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from focus_common import outputs
from harness import runfolder
from harness.leaderboard import (cli, packing, parquet_pages, pushing, rendering, submission as submission_format,
                                 verification)

from .fabricate import edit_json, fabricate_run, read_only, restamp


def test_cli_verify_exit_codes_and_output(submission, converted, capsys):
    assert cli.main(["verify", str(submission), "--data", str(converted)]) == 0
    output = capsys.readouterr().out
    assert f"{submission}: accepted\n  every claimed metric matches the recomputation: " in output
    assert "intervals exact with seed 0 and 1000 bootstrap replicates" in output
    edit_json(submission, submission_format.METRICS_FILE, lambda m: m["G_w"].update(ci_low=-1.0))
    assert cli.main(["verify", str(submission), "--data", str(converted)]) == 1
    output = capsys.readouterr().out
    assert f"{submission}: rejected, 1 problem(s)\n  - metrics.json $.G_w.ci_low: claimed -1.0, recomputed " in output


def test_cli_pack_says_what_it_wrote_and_what_comes_next(run_dir, tmp_path, capsys):
    assert cli.main(["pack", str(run_dir), "--model", "model_b.in1k", "--output", str(tmp_path / "b")]) == 0
    output = capsys.readouterr().out
    assert output.startswith(f"wrote {tmp_path / 'b'}\n  submission.json ")
    assert "  model_b.in1k, 48 images, dataset " in output
    assert output.endswith(f"next: focus-leaderboard verify {tmp_path / 'b'} --data DATASET\n")


def test_module_runs_as_a_script():
    result = subprocess.run([sys.executable, "-m", "harness.leaderboard", "--help"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert result.returncode == 0 and "{pack,verify,render,push}" in result.stdout


def test_cli_reports_an_unloadable_dataset(submission, tmp_path, capsys):
    assert cli.main(["verify", str(submission), "--data", str(tmp_path / "nowhere")]) == 2
    assert f"error: --data {tmp_path / 'nowhere'}: cannot load the FOCUS dataset" in capsys.readouterr().err


def test_cli_render_strict_exits_1_and_prints_the_problems(site, converted, tmp_path, capsys):
    submissions_dir = site[0].parent / "submissions"
    assert cli.main(["render", str(submissions_dir), str(tmp_path / "out"), "--data", str(converted),
                             "--strict"]) == 1
    captured = capsys.readouterr()
    assert "zz_tampered: rejected, 1 problem(s)" in captured.out
    assert "nothing was written (--strict)" in captured.err


def test_cli_pack_names_a_corrupt_metrics_file_in_one_line(tmp_path, truth, capsys):
    folder = fabricate_run(tmp_path / "run", truth.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0)
    metrics = folder / "metrics.json"
    metrics.write_bytes(metrics.read_bytes()[:100])
    assert cli.main(["pack", str(tmp_path / "run"), "--model", "m", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {metrics} is not valid JSON: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_cli_an_output_that_cannot_be_written_is_one_line_and_exit_2(site, converted, run_dir, capsys):
    submissions_dir = site[0].parent / "submissions"
    assert cli.main(["render", str(submissions_dir), "/proc/focus-site", "--data", str(converted)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "/proc/focus-site" in err and err.count("\n") == 1
    assert cli.main(["pack", str(run_dir), "--model", "model_a.in1k", "--output", "/proc/focus-sub"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "/proc" in err and err.count("\n") == 1


def _subcommands() -> dict:
    parser = cli.build_parser()
    (commands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(commands.choices)


def test_every_options_help_shows_its_default_and_the_exit_codes():
    for name, parser in {"focus-leaderboard": cli.build_parser(), **_subcommands()}.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.option_strings and action.dest != "help" and not action.required:
                assert "(default: " in formatter._get_help_string(action), (name, action.dest)
        help_text = " ".join(parser.format_help().split())
        assert "exit status: 0 done 1 done in part: a submission rejected" in help_text, name


def test_help_shows_defaults_and_exit_codes_as_printed():
    help_text = " ".join(_subcommands()["render"].format_help().split())
    assert "--max-decoded-mb MAX_DECODED_MB most memory reading and checking the predictions may hold, copies " \
           "included, counted from the file's page headers before decoding (default: 512)" in help_text
    assert "--strict write nothing and exit 1 if any submission fails verification (default: False)" in help_text
    assert "2 the command cannot run" in help_text


def test_render_takes_output_as_an_option_and_keeps_the_positional(site, converted, tmp_path, capsys):
    submissions_dir = site[0].parent / "submissions"
    assert cli.main(["render", str(submissions_dir), "--output", str(tmp_path / "a"), "--data",
                             str(converted)]) == 0
    assert cli.main(["render", str(submissions_dir), str(tmp_path / "b"), "--data", str(converted)]) == 0
    assert (tmp_path / "a" / rendering.HTML_FILE).read_text() == (tmp_path / "b" / rendering.HTML_FILE).read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["render", str(submissions_dir), str(tmp_path / "a"), "--output", str(tmp_path / "b"),
                          "--data", str(converted)])
    assert "name different folders (OUT or --output: give one)" in capsys.readouterr().err


def test_pack_takes_the_run_as_an_option_and_keeps_the_positional(run_dir, tmp_path, capsys):
    assert cli.main(["pack", "--run", str(run_dir), "--model", "model_b.in1k", "--output",
                             str(tmp_path / "b")]) == 0
    assert cli.main(["pack", str(run_dir), "--model", "model_c.in1k", "--output", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["pack", "--model", "model_b.in1k"])
    assert exit_info.value.code == 2 and "name the folder: RUN_DIR or --run" in capsys.readouterr().err


def test_render_logs_its_progress_once_logging_is_set_up(site, converted, tmp_path):
    result = subprocess.run([sys.executable, "-m", "harness.leaderboard", "render", str(site[0].parent / "submissions"),
                             "--output", str(tmp_path / "site"), "--data", str(converted)], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert result.returncode == 0, result.stderr
    assert "INFO focus-leaderboard: verifying 4 submission folder(s) in " in result.stderr
    assert result.stdout.startswith(f"wrote {tmp_path / 'site' / rendering.MARKDOWN_FILE}")


@pytest.fixture
def no_hang():
    """A command that opened a FIFO would wait for a writer forever: stop it after a minute instead."""
    def stop(signum, frame):
        raise AssertionError("the command waited: did it open a FIFO?")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _special(kind: str, tmp_path: Path) -> Path:
    if kind == "a FIFO":
        os.mkfifo(tmp_path / "fifo")
        return tmp_path / "fifo"
    return Path("/dev/null")


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("kind", ["a FIFO", "a character device"])
def test_a_submission_that_is_a_fifo_or_a_device_is_one_line_and_exit_2(kind, tmp_path, site, converted, capsys,
                                                                        no_hang):
    path, data = _special(kind, tmp_path), ["--data", str(converted)]
    submissions_dir = site[0].parent / "submissions"
    for argv in (["verify", str(path), *data], ["verify", str(path), *data, "--submissions", str(submissions_dir)],
                 ["push", str(path), "--repo", "x/y", *data, "--dry-run"]):
        assert cli.main(argv) == 2
        assert _one_line(capsys) == f"error: {path}: {kind}, not a folder; a submission is the folder that " \
                                    f"focus-leaderboard pack writes\n"
    assert cli.main(["render", str(path), str(tmp_path / "site"), *data]) == 2
    assert _one_line(capsys) == f"error: {path}: not a folder; pass the folder that holds the submission folders\n"
    assert cli.main(["render", str(submissions_dir), str(path), *data]) == 2
    assert _one_line(capsys) == f"error: {path}: cannot write the site here (Not a directory); choose another OUT\n"
    assert cli.main(["pack", str(path), "--model", "model_a.in1k", "--output", str(tmp_path / "out")]) == 2
    assert _one_line(capsys) == f"error: {path}: {kind}, not a folder; pass a focus-eval run folder\n"
    assert cli.main(["pack", str(site[0].parent / "run"), "--model", "model_a.in1k", "--output", str(path)]) == 2
    assert _one_line(capsys).startswith("error: ")


def test_a_fifo_in_place_of_a_submitted_file_is_a_problem_never_opened(submission, truth, no_hang):
    for name in (submission_format.PREDICTIONS_FILE, submission_format.METRICS_FILE):
        (submission / name).unlink()
        os.mkfifo(submission / name)
    problems = verification.verify(submission, truth).problems
    assert "predictions.parquet: a FIFO, not a plain file; a submission holds plain files" in problems
    assert "metrics.json: a FIFO, not a plain file; a submission holds plain files" in problems


def _data_pages(path: Path) -> list[tuple[int, int]]:
    """(first byte, size) of the first data page of each column, after its header."""
    data, metadata = memoryview(path.read_bytes()), pq.ParquetFile(path).metadata
    pages = []
    for j in range(metadata.num_columns):
        chunk = metadata.row_group(0).column(j)
        page = parquet_pages.read_header(data, chunk.data_page_offset,
                                         chunk.data_page_offset + chunk.total_compressed_size)
        pages.append((chunk.data_page_offset + page.header_bytes, page.compressed_bytes))
    return pages


def _flipped(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_bytes_flipped_inside_data_pages_are_a_problem_never_a_crash(submission, truth):
    """The footer intact: every byte of sixteen spread over each column's first data page, flipped in turn."""
    path = submission / submission_format.PREDICTIONS_FILE
    original = path.read_bytes()
    for start, size in _data_pages(path):
        for at in np.linspace(start, start + size - 1, 16).astype(int):
            path.write_bytes(original)
            _flipped(path, int(at))
            restamp(submission)
            result = verification.verify(submission, truth)  # never raises
            assert result.accepted or all("\n" not in problem for problem in result.problems)


def test_a_corrupted_predictions_file_is_a_rejection_in_verify_and_render_and_exit_2_in_pack(
        submission, site, run_dir, converted, tmp_path, capsys):
    path = submission / submission_format.PREDICTIONS_FILE
    start, size = _data_pages(path)[0]
    for at in range(start, start + size):
        _flipped(path, at)
    restamp(submission)
    assert cli.main(["verify", str(submission), "--data", str(converted)]) == 1
    assert "  - predictions.parquet: cannot be read (" in capsys.readouterr().out
    board = Path(shutil.copytree(site[0].parent / "submissions", tmp_path / "submissions"))
    shutil.copytree(submission, board / "zz_corrupted")
    assert cli.main(["render", str(board), str(tmp_path / "site"), "--data", str(converted)]) == 0
    assert "not shown: zz_corrupted, 1 problem(s)\n  - predictions.parquet: cannot be read (" in capsys.readouterr().out
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    predictions = run / "model_a.in1k" / runfolder.PREDICTIONS_FILE
    start, size = _data_pages(predictions)[0]
    for at in range(start, start + size):
        _flipped(predictions, at)
    assert cli.main(["pack", str(run), "--model", "model_a.in1k", "--output", str(tmp_path / "out")]) == 2
    assert f"{predictions}: cannot be read" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_pack_on_a_full_disk_or_into_a_read_only_folder_is_one_line_and_writes_nothing(run_dir, tmp_path, capsys,
                                                                                      monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    output = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(packing.pq, "write_table", full)
        assert cli.main(["pack", str(run_dir), "--model", "model_a.in1k", "--output", str(output)]) == 2
    assert _one_line(capsys) == f"error: {output}: cannot write the submission (No space left on device); nothing " \
                                f"was written\n"
    assert os.listdir(tmp_path) == []  # no output, no staging folder
    parent = tmp_path / "read_only"
    parent.mkdir()
    with read_only(parent):
        assert cli.main(["pack", str(run_dir), "--model", "model_a.in1k", "--output", str(parent / "out")]) == 2
    assert re.fullmatch(rf"error: {re.escape(str(parent / 'out'))}: cannot write OUTPUT here: (Permission denied|"
                        rf"Operation not permitted)\n", _one_line(capsys))
    assert os.listdir(parent) == []


class _Hub:
    """A Hub that takes every request, and records the pull requests asked of it."""

    pull_requests: list = []

    def whoami(self):
        return {"name": "someone"}

    def repo_info(self, *args, **kwargs):
        return None

    def create_commit(self, repo_id, **kwargs):
        self.pull_requests.append(repo_id)


@pytest.mark.parametrize("failure", ["full", "read-only"])
def test_push_that_cannot_write_its_model_index_sends_nothing(failure, submission, converted, capsys, monkeypatch):
    monkeypatch.setattr(pushing, "HfApi", _Hub)
    monkeypatch.setattr(_Hub, "pull_requests", [])
    argv = ["push", str(submission), "--repo", "x/y", "--data", str(converted)]
    if failure == "full":
        def full(*args):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(outputs, "write_new_file", full)
        assert cli.main(argv) == 2
    else:
        with read_only(submission):
            assert cli.main(argv) == 2
    assert re.fullmatch(rf"error: {re.escape(str(submission / submission_format.MODEL_INDEX_FILE))}: cannot be written "
                        rf"\((No space left on device|Permission denied|Operation not permitted)\); nothing was sent\n",
                        _one_line(capsys))
    assert _Hub.pull_requests == [] and sorted(os.listdir(submission)) == sorted(submission_format.SUBMITTED_FILES)


def test_the_parsers_defaults_are_the_libraries():
    """The parser names these values itself, so that --help imports neither pyarrow nor the verifier."""
    from harness.leaderboard import cli, pushing, strict
    assert cli.DEFAULT_DATASET_ID == pushing.DEFAULT_DATASET_ID
    assert (cli.MAX_PREDICTIONS_MB, cli.MAX_DECODED_MB, cli.MAX_JSON_MB) == (
        strict.Limits.predictions_bytes / 2**20, strict.Limits.decoded_bytes / 2**20, strict.Limits.json_bytes / 2**20)


def test_pack_takes_the_runs_model_when_it_has_one_and_asks_when_it_has_several(run_dir, truth, tmp_path, capsys):
    single = tmp_path / "single"
    fabricate_run(single, truth.table, "model_a.in1k", accuracy=0.5, num_params=10, paper_name=None, seed=1)
    assert cli.main(["pack", str(single), "--output", str(tmp_path / "a")]) == 0
    assert "model_a.in1k, 48 images" in capsys.readouterr().out
    assert cli.main(["pack", str(run_dir), "--output", str(tmp_path / "several")]) == 2
    err = capsys.readouterr().err
    assert "the run holds 3 models (" in err and "name the one to submit with --model" in err
    assert not (tmp_path / "several").exists()


def test_pack_refuses_a_run_on_a_subset_before_verify_would(truth, tmp_path, capsys):
    run = tmp_path / "run"
    fabricate_run(run, truth.table, "model_a.in1k", accuracy=0.5, num_params=10, paper_name=None, seed=1)
    edit = json.loads((run / runfolder.RUN_FILE).read_text())
    edit["selection"].update(limit=40, categories=["dog", "cat"])
    runfolder.write_json(run / runfolder.RUN_FILE, edit)
    assert cli.main(["pack", str(run), "--output", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "the run evaluated a subset (--limit 40 --categories dog cat)" in err and "without them" in err
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("command", ["verify", "push"])
def test_a_missing_submission_folder_is_a_usage_error_not_a_rejection(command, converted, tmp_path, capsys):
    extra = ["--repo", "me/board", "--dry-run"] if command == "push" else []
    assert cli.main([command, str(tmp_path / "nowhere"), "--data", str(converted), *extra]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nowhere'}: no such folder; a submission is the folder that focus-leaderboard pack" in err
    assert err.count("\n") == 1


def test_render_writes_to_leaderboard_in_the_current_folder_by_default(submissions, converted, tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["render", str(submissions), "--data", str(converted)]) == 0
    assert (tmp_path / "leaderboard" / "index.html").is_file() and (tmp_path / "leaderboard" / "leaderboard.md").is_file()
    assert "wrote leaderboard/leaderboard.md" in capsys.readouterr().out
