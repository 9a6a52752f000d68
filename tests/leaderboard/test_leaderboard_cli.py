"""harness.cli: focus-leaderboard's output and exit codes."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from harness.leaderboard import cli, rendering, submission as submission_format

from .fabricate import edit_json, fabricate_run


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
    assert "--max-decoded-mb MAX_DECODED_MB most memory the predictions may take once decoded, counted before " \
           "decoding (default: 512)" in help_text
    assert "--strict write nothing and exit 1 if any submission fails verification (default: False)" in help_text
    assert "2 the command cannot run" in help_text


def test_render_takes_output_as_an_option_and_keeps_the_positional(site, converted, tmp_path, capsys):
    submissions_dir = site[0].parent / "submissions"
    assert cli.main(["render", str(submissions_dir), "--output", str(tmp_path / "a"), "--data",
                             str(converted)]) == 0
    assert cli.main(["render", str(submissions_dir), str(tmp_path / "b"), "--data", str(converted)]) == 0
    assert (tmp_path / "a" / rendering.HTML_FILE).read_text() == (tmp_path / "b" / rendering.HTML_FILE).read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["render", str(submissions_dir), "--data", str(converted)])
    assert exit_info.value.code == 2
    assert "name the folder: OUT or --output" in capsys.readouterr().err
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
