"""harness.leaderboard.cli: focus-leaderboard's output and exit codes."""

import subprocess
import sys
from pathlib import Path

from harness import leaderboard

from .fabricate import edit_json, fabricate_run


def test_cli_verify_exit_codes_and_output(submission, converted, capsys):
    assert leaderboard.main(["verify", str(submission), "--data", str(converted)]) == 0
    output = capsys.readouterr().out
    assert f"{submission}: accepted\n  every claimed metric matches the recomputation: " in output
    assert "intervals exact with seed 0 and 1000 bootstrap replicates" in output
    edit_json(submission, leaderboard.METRICS_FILE, lambda m: m["G_w"].update(ci_low=-1.0))
    assert leaderboard.main(["verify", str(submission), "--data", str(converted)]) == 1
    output = capsys.readouterr().out
    assert f"{submission}: rejected, 1 problem(s)\n  - metrics.json $.G_w.ci_low: claimed -1.0, recomputed " in output


def test_cli_pack_says_what_it_wrote_and_what_comes_next(run_dir, tmp_path, capsys):
    assert leaderboard.main(["pack", str(run_dir), "--model", "model_b.in1k", "--output", str(tmp_path / "b")]) == 0
    output = capsys.readouterr().out
    assert output.startswith(f"wrote {tmp_path / 'b'}\n  submission.json ")
    assert "  model_b.in1k, 48 images, dataset " in output
    assert output.endswith(f"next: focus-leaderboard verify {tmp_path / 'b'} --data DATASET\n")


def test_module_runs_as_a_script():
    result = subprocess.run([sys.executable, "-m", "harness.leaderboard", "--help"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert result.returncode == 0 and "{pack,verify,render,push}" in result.stdout


def test_cli_reports_an_unloadable_dataset(submission, tmp_path, capsys):
    assert leaderboard.main(["verify", str(submission), "--data", str(tmp_path / "nowhere")]) == 2
    assert f"error: --data {tmp_path / 'nowhere'}: cannot load the FOCUS dataset" in capsys.readouterr().err


def test_cli_render_strict_exits_1_and_prints_the_problems(site, converted, tmp_path, capsys):
    submissions_dir = site[0].parent / "submissions"
    assert leaderboard.main(["render", str(submissions_dir), str(tmp_path / "out"), "--data", str(converted),
                             "--strict"]) == 1
    captured = capsys.readouterr()
    assert "zz_tampered: rejected, 1 problem(s)" in captured.out
    assert "nothing was written (--strict)" in captured.err


def test_cli_pack_names_a_corrupt_metrics_file_in_one_line(tmp_path, truth, capsys):
    folder = fabricate_run(tmp_path / "run", truth.table, "m", accuracy=0.5, num_params=10, paper_name=None, seed=0)
    metrics = folder / "metrics.json"
    metrics.write_bytes(metrics.read_bytes()[:100])
    assert leaderboard.main(["pack", str(tmp_path / "run"), "--model", "m", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {metrics} is not valid JSON: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_cli_an_output_that_cannot_be_written_is_one_line_and_exit_2(site, converted, run_dir, capsys):
    submissions_dir = site[0].parent / "submissions"
    assert leaderboard.main(["render", str(submissions_dir), "/proc/focus-site", "--data", str(converted)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "/proc/focus-site" in err and err.count("\n") == 1
    assert leaderboard.main(["pack", str(run_dir), "--model", "model_a.in1k", "--output", "/proc/focus-sub"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "/proc" in err and err.count("\n") == 1
