"""focus_common/commands.py: every ending of a command is one line and one exit status, clean-ups run on signals."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from focus_common import commands
from focus_common.messages import BadInput, Rejected

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("error, status, line", [
    (BadInput("data/x.jpg: not an image"), 2, "error: data/x.jpg: not an image\n"),
    (OSError("disk full"), 2, "error: disk full\n"),
    (Rejected("the submission was rejected"), 1, "error: the submission was rejected\n"),
])
def test_errors_end_with_one_line_and_their_status(error, status, line, capsys):
    def work():
        raise error
    assert commands.run_command(work) == status
    assert capsys.readouterr().err == line


def test_ctrl_c_ends_with_one_line_the_advice_and_130(capsys):
    def work():
        raise KeyboardInterrupt
    assert commands.run_command(work, on_stop="run the same command again to resume") == 130
    assert capsys.readouterr().err == "stopped (Ctrl-C); run the same command again to resume\n"


def test_a_bug_still_shows_its_traceback():
    def work():
        raise ZeroDivisionError("a bug")
    with pytest.raises(ZeroDivisionError):
        commands.run_command(work)


def test_only_the_main_process_of_a_distributed_run_speaks(capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert commands.run_command(lambda: (_ for _ in ()).throw(BadInput("shared"))) == 2
    assert capsys.readouterr().err == ""


SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from focus_common import commands

    def work():
        marker = Path({marker!r})
        marker.write_text("working")
        try:
            print("started", flush=True)
            time.sleep(60)
        finally:
            marker.unlink()  # a clean-up: a staging folder, a lock
        return 0

    sys.exit(commands.run_command(work, on_stop="nothing was written"))
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT])
def test_stop_signals_clean_up_and_exit_with_one_line(tmp_path, signum):
    marker = tmp_path / "marker"
    process = subprocess.Popen([sys.executable, "-c", SCRIPT.format(repo=str(REPO), marker=str(marker))],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "started\n"
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum and not marker.exists()
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    assert err == f"stopped ({name}); nothing was written\n"


@pytest.mark.parametrize("argv, answer", [
    (["--model", "resnet18"], "unrecognized arguments: --model resnet18; did you mean --models?"),
    (["--modles=resnet18"], "unrecognized arguments: --modles=resnet18; did you mean --models?"),
    (["--subset", "strat"], "invalid choice: 'strat' (choose from 'stratified', 'random', 'first'); did you mean "
                            "'stratified'?"),
    (["--sed", "1", "--modle", "x"], "did you mean --seed (for --sed), --models (for --modle)?"),
    (["--zzzz"], "unrecognized arguments: --zzzz\n"),
])
def test_a_mistake_gets_did_you_mean_and_two_lines_not_the_whole_usage(capsys, argv, answer):
    parser = commands.parser("focus-x", "a command")
    parser.add_argument("--models", nargs="+")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--subset", choices=("stratified", "random", "first"))
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and answer in err
    assert err.count("\n") == 2 and err.endswith("focus-x: see `focus-x --help`\n") and "usage:" not in err


def test_an_unknown_option_after_a_subcommand_is_matched_against_the_subcommands_options(capsys):
    from focus_tools import cli
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["validate", "x", "--max-line", "3"])
    assert "did you mean --max-lines?" in capsys.readouterr().err
